"""One-machine federation with Flower's simulation engine (Ray): one virtual SuperNode per speaker.

Why Ray with tiny resources: the host has 2 cores shared with other work, so at most two ClientApps
run at once (`num_cpus` per client = 1) and each is pinned to one BLAS thread.

Why a log filter: Flower logs a failed ClientApp three times, two of them with the whole Ray traceback
(~150 lines). A device dropping out or refusing to train is an expected event of a federation, counted
in the round's row; so it becomes one line (`--verbose` keeps Flower's full log).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from fedtts.federated.config import FLConfig
from fedtts.federated.data import train_speakers

__all__ = ["simulate", "backend_config", "ClientFailureFilter", "failure_line"]

log = logging.getLogger(__name__)

# "module.Type: message" lines of a (remote) traceback; the first is the exception that started it
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*): (\S.*)$", re.MULTILINE)
_RAY_PREFIX = "An exception was raised when processing a message by"


def failure_line(ex: BaseException) -> str:
    """'Type: message' of the exception that made a ClientApp fail, from Flower's wrapped Ray error."""
    text = str(ex)
    m = _EXC_LINE.search(text)
    if m:
        return f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2).strip()}"
    last = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (last[-1] if last else type(ex).__name__)[:300]


class ClientFailureFilter(logging.Filter):
    """On the `flwr` logger during a simulation: one line per failed ClientApp instead of three records
    and two Ray tracebacks (the vce worker logs the exception, then `traceback.format_exc()`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        msg = record.msg
        if isinstance(msg, BaseException):  # `log(ERROR, ex)`: the one record turned into a line
            log.warning("client failed: %s", failure_line(msg))
            return False
        text = str(msg)
        return not (text.startswith("Traceback (most recent call last)") or text.startswith(_RAY_PREFIX))


def backend_config(cpus_per_client: float = 1.0, total_cpus: int | None = None) -> dict:
    total = total_cpus or min(2, os.cpu_count() or 1)
    return {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
        "init_args": {
            "address": "local",  # always our own Ray instance, never another user's running cluster
            "num_cpus": total,
            "num_gpus": 0,
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,
        },
    }


def simulate(cfg: FLConfig, num_clients: int, cpus_per_client: float = 1.0, verbose: bool = False) -> dict:
    """Run `cfg.num_rounds` rounds over `num_clients` simulated devices; returns the server's RunResult."""
    from flwr.simulation import run_simulation

    from fedtts.federated.client_app import app as client_app
    from fedtts.federated.server_app import make_server_app

    cfg.validate()
    n_spk = len(train_speakers())
    if not 2 <= num_clients <= n_spk:
        raise ValueError(f"--clients must be in [2, {n_spk}] (one client per training speaker)")
    if cfg.population and cfg.population != num_clients:
        raise ValueError("population must equal the number of simulated clients")
    cfg = cfg.replace(population=num_clients)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # inherited by the Ray workers
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if cfg.out_dir:
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    results: list = []
    flwr_log = logging.getLogger("flwr")
    quiet = None if verbose else ClientFailureFilter()
    if quiet is not None:
        flwr_log.addFilter(quiet)
    try:
        run_simulation(
            server_app=make_server_app(cfg, results),
            client_app=client_app,
            num_supernodes=num_clients,
            backend_config=backend_config(cpus_per_client),  # type: ignore[arg-type]
            verbose_logging=verbose,
        )
    finally:
        if quiet is not None:
            flwr_log.removeFilter(quiet)
    if not results:
        raise RuntimeError("the simulated ServerApp did not finish (see the log above)")
    return results[0]
