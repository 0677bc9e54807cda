"""Real deployment: a TLS CA, a SuperLink with SuperNode authentication, SuperNodes on local data, `flwr run`.

Why generate everything here: a federation of phones/laptops needs (1) TLS so updates are encrypted in
transit, with a CA the operator controls, and (2) node authentication so only registered devices may
join. `fedtts fl deploy` does each step with the stock Flower executables (`flower-superlink`,
`flower-supernode`, `flwr supernode register`, `flwr run`), so the same commands work across machines.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "APP_DIR",
    "Pki",
    "make_pki",
    "make_node_key",
    "write_flwr_home",
    "free_port",
    "Proc",
    "start_superlink",
    "register_supernode",
    "start_supernode",
    "flwr_run",
    "wait_port",
    "stop_all",
]

APP_DIR = Path(__file__).resolve().parent / "app"
CONN = "fedtts"


def _bin(name: str) -> str:
    """A Flower executable next to this interpreter (venv-safe), else on PATH."""
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else (shutil.which(name) or name)


@dataclass
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_pki(out: Path, hosts: list[str] | None = None, days: int = 30) -> Pki:
    """A private CA and a SuperLink certificate for `hosts` (IP addresses and/or DNS names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hosts = hosts or ["127.0.0.1", "localhost"]
    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedtts federation CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def pem_key(k) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    pki = Pki(out / "ca.crt", out / "ca.key", out / "server.pem", out / "server.key")
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.ca_key.write_bytes(pem_key(ca_key))
    pki.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.server_key.write_bytes(pem_key(key))
    for p in (pki.ca_key, pki.server_key):
        p.chmod(0o600)
    return pki


def make_node_key(out: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode's P-384 key pair in OpenSSH format (private stays on the device; .pub is registered)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    k = ec.generate_private_key(ec.SECP384R1())
    priv, pub = out / name, out / f"{name}.pub"
    priv.write_bytes(
        k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    priv.chmod(0o600)
    pub.write_bytes(
        k.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        + f" fedtts-{name}\n".encode()
    )
    return priv, pub


def write_flwr_home(home: Path, address: str, ca_cert: Path) -> Path:
    """`$FLWR_HOME/config.toml` with one SuperLink connection named "fedtts" (TLS, our CA)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "config.toml"
    cfg.write_text(
        f'[superlink]\ndefault = "{CONN}"\n\n[superlink.{CONN}]\n'
        f'address = "{address}"\nroot-certificates = "{Path(ca_cert).resolve()}"\n'
    )
    return cfg


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 30.0) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.3)
    return False


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    extra: dict = field(default_factory=dict)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group we started, then SIGKILL if it lingers."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(5)


def _spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    e = {**os.environ, **(env or {})}
    e.setdefault("OMP_NUM_THREADS", "1")
    p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=e, start_new_session=True)
    fh.close()
    return Proc(name, p, log, {"cmd": cmd})


def start_superlink(
    work: Path, pki: Pki, host: str = "127.0.0.1", port: int | None = None, env: dict | None = None
) -> Proc:
    """`flower-superlink` with TLS and SuperNode authentication (state in a SQLite file)."""
    port = port or free_port()
    cmd = [
        _bin("flower-superlink"),
        "--ssl-ca-certfile", str(pki.ca_cert),
        "--ssl-certfile", str(pki.server_cert),
        "--ssl-keyfile", str(pki.server_key),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
        "--database", str(Path(work) / "superlink.db"),
        "--host", host,
        "--port", str(port),
    ]  # fmt: skip
    proc = _spawn("superlink", cmd, Path(work) / "logs" / "superlink.log", env)
    proc.extra["address"] = f"{host}:{port}"
    return proc


def _flwr(
    args: list[str], flwr_home: Path, timeout: float, env: dict | None = None
) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {}), "FLWR_HOME": str(flwr_home)}
    return subprocess.run(
        [_bin("flwr"), *args], env=e, capture_output=True, text=True, timeout=timeout, check=False
    )


def register_supernode(pub: Path, flwr_home: Path, timeout: float = 60.0, name: str | None = None) -> str:
    """`flwr supernode register <key.pub>`: allow-list a device's key on the SuperLink."""
    args = ["supernode", "register", str(pub), CONN]
    if name:
        args += ["--name", name]
    r = _flwr(args, flwr_home, timeout)
    if r.returncode != 0:
        raise RuntimeError(f"flwr supernode register failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    return r.stdout


def start_supernode(
    work: Path,
    name: str,
    superlink: str,
    ca_cert: Path,
    private_key: Path,
    data_dir: Path | None = None,
    node_config: dict | None = None,
    port: int | None = None,
    env: dict | None = None,
) -> Proc:
    """`flower-supernode` pointed at a local data folder, authenticating with its own key."""
    cfg = dict(node_config or {})
    if data_dir is not None:
        cfg["data-dir"] = str(Path(data_dir).resolve())
    parts = [f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}" for k, v in cfg.items()]
    cmd = [
        _bin("flower-supernode"),
        "--superlink", superlink,
        "--root-certificates", str(ca_cert),
        "--auth-supernode-private-key", str(private_key),
        "--host", "127.0.0.1",
        "--port", str(port or free_port()),
        "--max-retries", "60",
        "--max-wait-time", "120",
    ]  # fmt: skip
    if parts:
        cmd += ["--node-config", " ".join(parts)]
    return _spawn(f"supernode-{name}", cmd, Path(work) / "logs" / f"supernode-{name}.log", env)


def flwr_run(
    flwr_home: Path,
    run_config: dict,
    app_dir: Path = APP_DIR,
    timeout: float = 900.0,
    log: Path | None = None,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """`flwr run <app> fedtts --run-config ... --stream` (blocks until the run ends, streaming its log)."""

    def val(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(v)

    rc = " ".join(f"{k}={val(v)}" for k, v in run_config.items())
    args = ["run", str(app_dir), CONN, "--stream"]
    if rc:
        args += ["--run-config", rc]
    r = _flwr(args, flwr_home, timeout, env)
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(r.stdout + "\n--- stderr ---\n" + r.stderr)
    return r


def stop_all(procs: list[Proc]) -> None:
    for p in reversed(procs):
        p.stop()
