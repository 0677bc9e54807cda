"""``fedtts fl simulate | report`` and ``fedtts fl deploy …``: federated tuner training, one machine or many.

Why separate from :mod:`.fl`: that module keeps the registry commands; this one owns the run commands
and adds its sub-commands to the same ``fl`` group.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from fedtts.app.cli.errors import CliError
from fedtts.federated.config import DP_MODES, GATE_METRICS, STRATEGIES, FLConfig
from fedtts.federated.data import train_speakers
from fedtts.federated.deploy import (
    Pki,
    flwr_run,
    make_node_key,
    make_pki,
    register_supernode,
    start_superlink,
    start_supernode,
    stop_all,
    wait_port,
    write_flwr_home,
)
from fedtts.federated.report import RunLog, plot_rounds, summary_table
from fedtts.federated.simulate import simulate

__all__ = ["register_fl_runs"]


# FLConfig's messages name its run-config keys; the CLI user typed these options instead
_OPTION_FOR_KEY = {
    "num-rounds": "--rounds",
    "fraction-fit": "--fraction",
    "clip": "--clip",
    "dp": "--dp",
    "noise-multiplier": "--noise-multiplier",
    "min-fit-clients": "--min-fit-clients",
    "dropout": "--dropout",
}


def _cfg_from_args(args: argparse.Namespace, **extra) -> FLConfig:
    """The run's FLConfig; a bad value raises ValueError naming the command-line option."""
    try:
        return _build_cfg(args, **extra)
    except ValueError as e:
        msg = str(e)
        for key, opt in _OPTION_FOR_KEY.items():
            msg = re.sub(rf"(?<![\w-]){re.escape(key)}(?![\w-])", opt, msg, count=1)
        raise ValueError(msg) from None


def _build_cfg(args: argparse.Namespace, **extra) -> FLConfig:
    dp = args.dp
    if getattr(args, "no_dp", False):
        dp = "off"
    return FLConfig(
        num_rounds=args.rounds,
        fraction_fit=args.fraction,
        min_fit_clients=args.min_fit_clients,
        strategy=args.strategy,
        prox_mu=args.prox_mu,
        server_lr=args.server_lr,
        server_momentum=args.server_momentum,
        init_model=args.init_model,
        local_epochs=args.local_epochs,
        lr=args.lr,
        enroll_refine=args.enroll_refine,
        dp=dp,
        noise_multiplier=args.noise_multiplier,
        clip=args.clip,
        secagg=not args.no_secagg,
        dropout=args.dropout,
        eval_every=args.eval_every,
        eval_limit=args.eval_limit,
        gate=not args.no_gate,
        gate_metric=args.gate_metric,
        gate_sigmas=args.gate_sigmas,
        seed=args.seed,
        round_timeout=args.round_timeout,
        progress=not args.no_progress,
        **extra,
    ).validate()


def _add_run_args(p: argparse.ArgumentParser) -> None:
    d = FLConfig()  # the one set of defaults
    p.add_argument("--rounds", type=int, default=d.num_rounds)
    p.add_argument(
        "--fraction", type=float, default=d.fraction_fit, help="clients sampled per round (fraction)"
    )
    p.add_argument(
        "--min-fit-clients", type=int, default=d.min_fit_clients, help="at least this many per round"
    )
    p.add_argument(
        "--dropout", type=float, default=d.dropout, help="probability a sampled client drops mid-round"
    )
    p.add_argument("--strategy", choices=STRATEGIES, default=d.strategy)
    p.add_argument("--prox-mu", type=float, default=d.prox_mu, help="FedProx proximal term")
    p.add_argument(
        "--server-lr", type=float, default=d.server_lr, help="FedAdam eta / FedAvgM server learning rate"
    )
    p.add_argument("--server-momentum", type=float, default=d.server_momentum, help="FedAvgM server momentum")
    p.add_argument(
        "--init-model",
        default=d.init_model,
        help="start model .npz (default: shipped tuner_v0_synthetic.npz)",
    )
    p.add_argument("--local-epochs", type=int, default=d.local_epochs)
    p.add_argument("--lr", type=float, default=d.lr, help="client learning rate (Adam)")
    p.add_argument(
        "--enroll-refine",
        type=int,
        default=d.enroll_refine,
        help="gradient-inversion steps of each device's first enrollment (torch; minutes once, then cached)",
    )
    p.add_argument("--dp", choices=DP_MODES, default=d.dp)
    p.add_argument("--no-dp", action="store_true", help="same as --dp off")
    p.add_argument("--no-secagg", action="store_true", help="plain aggregation (server sees each update)")
    p.add_argument("--noise-multiplier", type=float, default=d.noise_multiplier, help="DP noise std / clip")
    p.add_argument("--clip", type=float, default=d.clip, help="L2 bound of one client's update")
    p.add_argument(
        "--eval-every", type=int, default=d.eval_every, help="server-side evaluation every k rounds (0: off)"
    )
    p.add_argument(
        "--eval-limit", type=int, default=d.eval_limit, help="held-back speakers per evaluation (0: all)"
    )
    p.add_argument(
        "--no-gate",
        action="store_true",
        help="make every new global model current (default: a model whose server score drops by more than "
        "--gate-sigmas standard errors is stored as rejected)",
    )
    p.add_argument(
        "--gate-metric", choices=GATE_METRICS, default=d.gate_metric, help="score the gate compares"
    )
    p.add_argument(
        "--gate-sigmas",
        type=float,
        default=d.gate_sigmas,
        help="tolerated drop, in standard errors of the mean per-speaker score change",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--round-timeout", type=float, default=d.round_timeout, help="seconds to wait for replies per stage"
    )
    p.add_argument("--no-progress", action="store_true")


def _cmd_simulate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    registry = args.registry or str(out / "models")
    if args.clients < 2:  # checked before any import: a usage error, not a failed run
        raise CliError(f"--clients must be at least 2 (one per training speaker), got {args.clients}", 2)
    try:
        cfg = _cfg_from_args(args, registry=registry, out_dir=str(out))

        n_spk = len(train_speakers())
    except ValueError as e:
        raise CliError(str(e), 2) from e
    if args.clients > n_spk:
        raise CliError(
            f"--clients must be in [2, {n_spk}] (one client per training speaker), got {args.clients}", 2
        )
    t0 = time.perf_counter()
    res = simulate(cfg, args.clients, verbose=args.verbose)
    print(
        f"simulation of {args.clients} clients x {args.rounds} rounds took {time.perf_counter() - t0:.1f} s"
    )
    print(f"plot: {res['plot']}")
    return 0


# ------------------------------------------------------------------ deploy
def _pids(d: Path) -> Path:
    p = Path(d) / "pids"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _save_pid(d: Path, proc) -> None:
    (_pids(d) / f"{proc.name}.pid").write_text(str(proc.popen.pid))
    print(f"started {proc.name} (pid {proc.popen.pid}), log {proc.log}")


def _cmd_deploy_init(args: argparse.Namespace) -> int:
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    pki = make_pki(Path(args.dir) / "pki", hosts)
    print(f"CA {pki.ca_cert} (give this to every device); SuperLink cert {pki.server_cert} for {hosts}")
    return 0


def _cmd_deploy_superlink(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    pki = Pki(d / "pki/ca.crt", d / "pki/ca.key", d / "pki/server.pem", d / "pki/server.key")
    if not pki.server_cert.is_file():
        raise CliError(f"run `fedtts fl deploy init --dir {d}` first", 2)
    proc = start_superlink(d, pki, host=args.host, port=args.port, env={"FLWR_HOME": str(d / "flwr_home")})
    _save_pid(d, proc)
    connect = (
        f"{args.public_host or ('127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host)}:{args.port}"
    )
    write_flwr_home(d / "flwr_home", connect, pki.ca_cert)
    ok = wait_port(connect.rsplit(":", 1)[0], args.port, 30)
    print(f"SuperLink {'listening' if ok else 'NOT reachable'} at {connect} (TLS, SuperNode auth on)")
    return 0 if ok else 1


def _cmd_deploy_node_key(args: argparse.Namespace) -> int:
    priv, pub = make_node_key(Path(args.dir) / "keys", args.name)
    print(f"private key {priv} (stays on this device); register {pub} with the SuperLink operator")
    return 0


def _cmd_deploy_register(args: argparse.Namespace) -> int:
    print(register_supernode(Path(args.public_key), Path(args.dir) / "flwr_home", name=args.name).strip())
    return 0


def _cmd_deploy_supernode(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    key = Path(args.key) if args.key else d / "keys" / args.name
    ca = Path(args.ca) if args.ca else d / "pki" / "ca.crt"
    proc = start_supernode(
        d,
        args.name,
        args.superlink,
        ca,
        key,
        data_dir=Path(args.data_dir),
        env={"FLWR_HOME": str(d / "flwr_home")},
    )
    _save_pid(d, proc)
    return 0


def _cmd_deploy_run(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    try:
        cfg = _cfg_from_args(
            args,
            registry=args.registry or str(d / "models"),
            out_dir=str(d / "out"),
            population=args.population,
        )
    except ValueError as e:
        raise CliError(str(e), 2) from e
    rc = cfg.to_run_config()
    rc["progress"] = False
    r = flwr_run(d / "flwr_home", rc, timeout=args.timeout, log=d / "logs" / "flwr_run.log")
    print(r.stdout[-6000:])
    if r.returncode != 0:
        print(r.stderr[-3000:], file=sys.stderr)
    return r.returncode


def _cmd_deploy_stop(args: argparse.Namespace) -> int:
    """Stop the processes this folder's pid files name (and only if they are Flower processes)."""
    n = 0
    for f in sorted(_pids(Path(args.dir)).glob("*.pid")):
        pid = int(f.read_text())
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            cmd = ""
        if "flower-super" in cmd:
            try:
                os.killpg(pid, signal.SIGTERM)
                n += 1
            except ProcessLookupError:
                pass
        f.unlink()
    print(f"stopped {n} process(es)")
    return 0


def _cmd_deploy_local(args: argparse.Namespace) -> int:
    """Everything on loopback: CA, SuperLink, N registered SuperNodes on N data folders, `flwr run`."""
    d = Path(args.dir)
    data_dirs = [Path(x) for x in args.data_dirs]
    if len(data_dirs) < 2:
        raise CliError("give at least 2 --data-dirs (one per SuperNode)", 2)
    try:
        cfg = _cfg_from_args(
            args,
            registry=args.registry or str(d / "models"),
            out_dir=str(d / "out"),
            population=len(data_dirs),
        )
    except ValueError as e:
        raise CliError(str(e), 2) from e
    env = {"FLWR_HOME": str(d / "flwr_home")}
    pki = make_pki(d / "pki", ["127.0.0.1", "localhost"])
    procs = []
    try:
        sl = start_superlink(d, pki, env=env)
        procs.append(sl)
        host, port = sl.extra["address"].split(":")
        if not wait_port(host, int(port), 60):
            raise CliError(f"SuperLink did not come up, see {sl.log}", 1)
        write_flwr_home(d / "flwr_home", sl.extra["address"], pki.ca_cert)
        for i, dd in enumerate(data_dirs):
            priv, pub = make_node_key(d / "keys", f"node{i}")
            register_supernode(pub, d / "flwr_home")
            procs.append(start_supernode(d, f"node{i}", sl.extra["address"], pki.ca_cert, priv, dd, env=env))

        rc = cfg.to_run_config()
        rc["progress"] = False
        r = flwr_run(d / "flwr_home", rc, timeout=args.timeout, log=d / "logs" / "flwr_run.log", env=env)
        print(r.stdout[-6000:])
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
        return r.returncode
    finally:
        stop_all(procs)


def _cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.metrics)
    try:
        data = RunLog.load(path)
        rows = data["rounds"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "round" in r for r in rows):
            raise TypeError("'rounds' is not a list of rounds")
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})", 2) from e
    except (ValueError, TypeError, KeyError) as e:  # JSONDecodeError is a ValueError
        raise CliError(
            f"{path}: not a run's fl_metrics.json ({type(e).__name__}: {e}); "
            "give the file `fedtts fl simulate` writes in its --out folder",
            2,
        ) from e
    if not rows:
        raise CliError(f"{path}: the run has no finished rounds yet", 2)
    data["rounds"] = rows
    print(summary_table(data["rounds"]))
    if args.plot:
        print(plot_rounds(data["rounds"], Path(args.plot)))
    if args.json:
        print(json.dumps(data["rounds"][-1], indent=1))
    return 0


def register_fl_runs(sub) -> None:
    s = sub.add_parser("simulate", help="federated tuner training on this machine (Flower simulation, Ray)")
    s.add_argument("--clients", type=int, default=10, help="simulated devices (one training speaker each)")
    s.add_argument(
        "--out", default="outputs/fl_sim", help="folder for models/, fl_metrics.json, fl_rounds.png"
    )
    s.add_argument("--verbose", action="store_true", help="Flower debug logs")
    _add_run_args(s)
    s.set_defaults(func=_cmd_simulate)

    rep = sub.add_parser("report", help="summary table / plot of a run's fl_metrics.json")
    rep.add_argument("metrics")
    rep.add_argument("--plot", help="write the PNG here")
    rep.add_argument("--json", action="store_true", help="print the last round as JSON")
    rep.set_defaults(func=_cmd_report)

    dep = sub.add_parser("deploy", help="real federation: TLS CA, SuperLink, SuperNodes, flwr run")
    dsub = dep.add_subparsers(dest="deploy_cmd")

    def add(name: str, fn, help_: str) -> argparse.ArgumentParser:
        q = dsub.add_parser(name, help=help_)
        q.add_argument("--dir", default="fl_deploy", help="working folder (certs, keys, logs, pids, models)")
        q.set_defaults(func=fn)
        return q

    q = add("init", _cmd_deploy_init, "operator: create the CA and the SuperLink certificate")
    q.add_argument("--hosts", default="127.0.0.1,localhost", help="SuperLink IPs/DNS names (comma separated)")
    q = add("superlink", _cmd_deploy_superlink, "operator: start flower-superlink (TLS + SuperNode auth)")
    q.add_argument("--host", default="0.0.0.0")
    q.add_argument("--port", type=int, default=9092)
    q.add_argument("--public-host", help="address devices/flwr use to reach it (default 127.0.0.1)")
    q = add("node-key", _cmd_deploy_node_key, "device: create this SuperNode's key pair")
    q.add_argument("--name", required=True)
    q = add("register", _cmd_deploy_register, "operator: allow a device's public key")
    q.add_argument("public_key")
    q.add_argument("--name", default=None)
    q = add("supernode", _cmd_deploy_supernode, "device: start flower-supernode on a local data folder")
    q.add_argument("--name", required=True)
    q.add_argument("--superlink", required=True, help="host:port of the SuperLink")
    q.add_argument("--data-dir", required=True, help="folder of the user's own clips (never uploaded)")
    q.add_argument("--key", help="private key (default <dir>/keys/<name>)")
    q.add_argument("--ca", help="CA certificate (default <dir>/pki/ca.crt)")
    q = add("run", _cmd_deploy_run, "operator: start a training run with flwr run")
    _add_run_args(q)
    q.add_argument("--population", type=int, default=0, help="registered devices (0: connected nodes)")
    q.add_argument("--timeout", type=float, default=3600.0)
    q = add("stop", _cmd_deploy_stop, "stop the SuperLink/SuperNodes started from this folder")
    q = add("local", _cmd_deploy_local, "all of it on 127.0.0.1 (SuperLink + one SuperNode per data folder)")
    q.add_argument("--data-dirs", nargs="+", required=True)
    q.add_argument("--timeout", type=float, default=1800.0)
    _add_run_args(q)
