"""One-machine federation with Flower's simulation engine (Ray): one virtual SuperNode per speaker.

Why Ray with tiny resources: the host has 2 cores shared with other work, so at most two ClientApps
run at once (`num_cpus` per client = 1) and each is pinned to one BLAS thread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fedtts.federated.config import FLConfig

__all__ = ["simulate", "backend_config"]

log = logging.getLogger(__name__)


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
    from fedtts.federated.data import train_speakers
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
    run_simulation(
        server_app=make_server_app(cfg, results),
        client_app=client_app,
        num_supernodes=num_clients,
        backend_config=backend_config(cpus_per_client),  # type: ignore[arg-type]
        verbose_logging=verbose,
    )
    if not results:
        raise RuntimeError("the simulated ServerApp did not finish (see the log above)")
    return results[0]
