"""Flower ServerApp: rounds of (SecAgg+) FedAvg/FedProx/FedAdam with central DP, versions and metrics.

Why the legacy workflow inside a current ServerApp: in flwr 1.42 `SecAggPlusWorkflow` only runs under
`DefaultWorkflow` with a `LegacyContext` and a `flwr.server.strategy` strategy; the Message-API
strategies (`flwr.serverapp.strategy`) have no secure-aggregation path. So `@app.main()` (current API,
`Grid`) builds a LegacyContext and runs DefaultWorkflow with SecAgg+ (default) or the plain fit
workflow, wrapped by a round recorder that, after every round, accounts privacy (user-level RDP,
`PrivacyAccountant`), evaluates the global tuner on the server's own held-back speakers, saves the
version (parent, hash, metrics, ε/δ) and writes the metrics JSON + PNG. A restarted server resumes from
the registry's current version, continuing round numbers and the privacy spent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, Message
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.server.workflow.default_workflows import default_fit_workflow
from flwr.serverapp import Grid, ServerApp

from fedtts.federated.config import FLConfig
from fedtts.federated.model import (
    federated_arrays,
    frozen_digest,
    load_start_model,
    merge_federated,
    same_frozen,
    version_named,
    weights_from_version,
)
from fedtts.federated.privacy import AccountantConfig, PrivacyAccountant
from fedtts.federated.report import RunLog, plot_rounds, summary_table
from fedtts.federated.strategy import FedTTSStrategy, build_strategy, expected_cohort
from fedtts.federated.versions import VersionRegistry

__all__ = [
    "app",
    "make_server_app",
    "run_server",
    "CountingGrid",
    "start_weights",
    "weights_from_version",
    "registry_for",
    "RunResult",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ weights ↔ version files
def start_weights(cfg: FLConfig):
    """The FL start point: `init-model`, else the shipped synthetic-data tuner, else the zero tuner."""
    return load_start_model(cfg.init_model)


def _tuner_info(w, **extra: Any) -> str:
    try:
        info = json.loads(w.info)
    except (ValueError, TypeError):
        info = {}
    info = info if isinstance(info, dict) else {}
    return json.dumps({**info, **extra}, default=str)


def registry_for(cfg: FLConfig) -> VersionRegistry:
    if cfg.registry:
        return VersionRegistry(Path(cfg.registry))
    from fedtts.engine.assets import data_dir

    return VersionRegistry(data_dir() / "federated" / "models")


def _digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, np.float32).tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------ bytes on the wire
def _value_bytes(v: Any) -> int:
    if isinstance(v, bytes | str):
        return len(v)
    if isinstance(v, list):
        return sum(_value_bytes(x) for x in v)
    return 8


def _msg_bytes(m: Message) -> int:
    """Payload bytes of a message (Flower's own count_bytes fails on empty lists in 1.42)."""
    if not m.has_content():
        return 0
    total = 0
    for rec in m.content.values():
        if isinstance(rec, ArrayRecord):
            total += rec.count_bytes()
        else:
            total += sum(len(k) + _value_bytes(v) for k, v in rec.items())
    return int(total)


class CountingGrid:
    """Grid proxy: counts bytes each way and bounds every wait (a dead device cannot stall a round)."""

    def __init__(self, grid: Grid, timeout: float) -> None:
        self._grid = grid
        self.timeout = timeout
        self.bytes_down = 0
        self.bytes_up = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout: float | None = None):
        msgs = list(messages)
        self.bytes_down += sum(_msg_bytes(m) for m in msgs)
        replies = list(
            self._grid.send_and_receive(msgs, timeout=self.timeout if timeout is None else timeout)
        )
        self.bytes_up += sum(_msg_bytes(r) for r in replies)
        return replies


# ------------------------------------------------------------------ evaluation
def _evaluate(weights, limit: int) -> dict[str, float]:
    """Server-side evaluation on the server's own public held-back speakers (never client data)."""
    try:
        from fedtts.eval.clone_eval import evaluate_tuner
    except ImportError as e:
        log.warning("server evaluation unavailable (%s)", e)
        return {}
    from threadpoolctl import threadpool_limits

    # One BLAS thread: this runs in the server thread of a simulation, beside the Ray workers on the
    # same cores, and a multi-threaded OpenBLAS matmul there has spun without end (seen twice, in the
    # acceptance bench and in the simulation test). The matrices are small, so one thread costs nothing.
    with threadpool_limits(limits=1, user_api="blas"):
        res = evaluate_tuner(weights, limit=limit or None)
    return {k: float(v) for k, v in res.items() if isinstance(v, int | float)}


class RunResult(dict):
    """What `run_server` returns: rows, registry path, metrics/plot paths."""


# ------------------------------------------------------------------ the round recorder
class RoundRecorder:
    """Fit workflow wrapper: runs one round, then accounts, evaluates, versions and logs it."""

    def __init__(
        self,
        cfg: FLConfig,
        inner: Callable[[Any, Context], None],
        strategy: FedTTSStrategy,
        grid: CountingGrid,
        registry: VersionRegistry,
        base,
        accountant: PrivacyAccountant | None,
        runlog: RunLog,
        round_offset: int,
        dp_rounds: int,
        plot_path: Path,
    ) -> None:
        self.cfg, self.inner, self.strategy, self.grid = cfg, inner, strategy, grid
        self.registry, self.base, self.accountant, self.runlog = registry, base, accountant, runlog
        self.round_offset, self.dp_rounds, self.plot_path = round_offset, dp_rounds, plot_path
        self.global_round = round_offset
        self.bar = None
        if cfg.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=cfg.num_rounds, desc="fedtts FL rounds", unit="round", leave=True)

    def privacy(self) -> tuple[float | None, float | None]:
        if self.cfg.dp in ("central", "adaptive") and self.accountant is not None:
            if self.dp_rounds == 0:
                return 0.0, float(self.accountant.cfg.delta)
            return self.accountant.epsilon(self.dp_rounds), float(self.accountant.cfg.delta)
        if self.cfg.dp == "local":  # basic composition of the per-round local guarantee
            return self.cfg.local_epsilon * self.dp_rounds, self.cfg.local_delta * self.dp_rounds
        return None, None

    def __call__(self, grid: Any, context: Context) -> None:
        cfgrec = context.state.config_records[MAIN_CONFIGS_RECORD]
        self.global_round = self.round_offset + int(cfgrec[Key.CURRENT_ROUND])
        before = self._params(context)
        down0, up0 = self.grid.bytes_down, self.grid.bytes_up
        t0 = time.perf_counter()
        self.inner(grid, context)
        round_s = time.perf_counter() - t0
        after = self._params(context)
        st = self.strategy.stats
        if st.results > 0:
            self.dp_rounds += 1  # conservative: every round in which users trained costs privacy
        eps, delta = self.privacy()
        changed = _digest(after) != _digest(before)
        row: dict[str, Any] = {
            "round": self.global_round,
            "clients_sampled": st.sampled,
            "clients_ok": st.accepted,
            "results": st.results,
            "failures": st.failures,
            "rejected": len(st.rejected) + (st.results if st.aggregate_rejected else 0),
            "reject_reasons": st.rejected + ([st.aggregate_rejected] if st.aggregate_rejected else []),
            "updated": changed,
            "epsilon": eps,
            "delta": delta,
            "clip": st.clip,
            "bytes_down": self.grid.bytes_down - down0,
            "bytes_up": self.grid.bytes_up - up0,
            "round_s": round(round_s, 3),
            "dp_rounds": self.dp_rounds,
            **{k: round(v, 5) for k, v in st.metrics.items()},
        }
        row["bytes_total"] = row["bytes_down"] + row["bytes_up"]
        if changed:
            num = self.registry.next_version()
            weights = merge_federated(self.base, after, version=f"fl-v{num}")
            weights.info = _tuner_info(self.base, fl_round=self.global_round, fl_epsilon=eps, fl_delta=delta)
            if self.cfg.eval_every and self.global_round % self.cfg.eval_every == 0:
                row.update(_evaluate(weights, self.cfg.eval_limit))
            meta = {k: row[k] for k in row if k not in ("reject_reasons",)}
            mv = self.registry.save(version_named(weights), meta, epsilon=eps, delta=delta)
            row["version"], row["parent"] = mv.version, mv.parent
        else:
            row["version"] = self.registry.current()
            log.warning("round %s produced no new global model (kept v%s)", self.global_round, row["version"])
        self.runlog.add(row)
        plot_rounds(self.runlog.rounds, self.plot_path)
        if self.bar is not None:
            self.bar.set_postfix(ok=f"{st.accepted}/{st.sampled}", eps=_f(eps), sim=_f(row.get("similarity")))
            self.bar.update(1)

    @staticmethod
    def _params(context: Context) -> list[np.ndarray]:
        from flwr.common import parameters_to_ndarrays

        rec = context.state.array_records[MAIN_PARAMS_RECORD]
        return parameters_to_ndarrays(compat.arrayrecord_to_parameters(rec, keep_input=True))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _wait_nodes(grid: Grid, need: int, timeout: float) -> int:
    t_end = time.monotonic() + timeout
    while True:
        n = len(list(grid.get_node_ids()))
        if n >= need or time.monotonic() > t_end:
            return n
        time.sleep(1.0)


def _noop(grid: Any, context: Context) -> None:
    return None


def run_server(grid: Grid, context: Context, cfg: FLConfig) -> RunResult:
    """The whole server side of a run (shared by simulation and deployment)."""
    cfg.validate()
    registry = registry_for(cfg)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else registry.root.parent
    runlog = RunLog(out_dir / "fl_metrics.json", cfg.to_run_config())
    plot_path = out_dir / "fl_rounds.png"
    w0 = start_weights(cfg)
    start_sha = frozen_digest(w0)
    if registry.current() is None:
        row: dict[str, Any] = {
            "round": 0,
            "source": str(w0.version),
            "epsilon": 0.0,
            "dp_rounds": 0,
            "start_model": cfg.init_model or "tuner_v0_synthetic.npz",
            "start_sha256": start_sha,
        }
        if cfg.eval_every:
            row.update(_evaluate(w0, cfg.eval_limit))
        num = registry.next_version()
        first = replace(w0, version=f"fl-v{num}", info=_tuner_info(w0, fl_round=0, fl_source=str(w0.version)))
        mv = registry.save(version_named(first), row, epsilon=0.0, delta=None)
        row["version"] = mv.version
        runlog.add(row)
    mv, arrays = registry.load()
    base = weights_from_version(arrays, version=f"fl-v{mv.version}")
    if not same_frozen(base, w0):
        raise RuntimeError(
            f"registry {registry.root} v{mv.version} was not federated from this start model "
            f"({cfg.init_model or 'tuner_v0_synthetic.npz'}): its frozen arrays (w_t, w_c, feature stats) differ"
        )
    round_offset = int(mv.metrics.get("round", 0))
    dp_rounds = int(mv.metrics.get("dp_rounds", 0))
    log.info("resuming from registry v%s (round %s, %s DP rounds spent)", mv.version, round_offset, dp_rounds)

    need = cfg.population or cfg.min_fit_clients
    n_nodes = _wait_nodes(grid, need, cfg.round_timeout)
    population = cfg.population or n_nodes
    if population < cfg.min_fit_clients:
        raise RuntimeError(f"only {population} nodes connected, need min-fit-clients={cfg.min_fit_clients}")
    m = expected_cohort(cfg, population)
    accountant = None
    if cfg.dp in ("central", "adaptive"):
        accountant = PrivacyAccountant(AccountantConfig(cfg.noise_multiplier, m / population, population))
        accountant.rounds = dp_rounds

    trainable = federated_arrays(base, w0)  # only these travel, as coordinates from the start model
    recorder_ref: list[RoundRecorder] = []

    def fit_config(server_round: int) -> dict[str, Any]:
        rnd = recorder_ref[0].global_round if recorder_ref else server_round
        return {
            "fedtts-round": int(rnd),
            "local-epochs": cfg.local_epochs,
            "lr": cfg.lr,
            "batch-size": cfg.batch_size,
            "l2": cfg.l2,
            "enroll-refine": cfg.enroll_refine,
            "seed": cfg.seed,
            "dropout": cfg.dropout,
            "fedtts-dp": cfg.dp,
            "clip": cfg.clip,
            "local-epsilon": cfg.local_epsilon,
            "local-delta": cfg.local_delta,
            "uniform-weight": cfg.dp != "off",
            "start-model": cfg.init_model,  # "" = the shipped tuner_v0_synthetic.npz
            "start-sha256": start_sha,  # clients refuse a start model whose frozen arrays differ
        }

    strategy = build_strategy(cfg, trainable, population, fit_config)
    cgrid = CountingGrid(grid, cfg.round_timeout)
    inner: Callable[[Any, Context], None]
    if cfg.secagg:
        inner = SecAggPlusWorkflow(
            num_shares=cfg.secagg_shares,
            reconstruction_threshold=cfg.secagg_threshold,
            clipping_range=cfg.secagg_range,
            max_weight=100.0,
            timeout=cfg.round_timeout,
        )
    else:
        inner = default_fit_workflow
    recorder = RoundRecorder(
        cfg, inner, strategy, cgrid, registry, w0, accountant, runlog, round_offset, dp_rounds, plot_path
    )  # w0: merges are made on the start model (the exchanged coordinates are relative to it)
    recorder_ref.append(recorder)
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=cfg.num_rounds), strategy=strategy)
    try:
        DefaultWorkflow(fit_workflow=recorder, evaluate_workflow=_noop)(cgrid, legacy)  # type: ignore[arg-type]
    finally:
        recorder.close()
    rows = [r for r in runlog.rounds if r["round"] > round_offset]
    print(summary_table(rows), flush=True)
    eps, delta = recorder.privacy()
    if eps is not None:
        print(f"privacy spent (user level): epsilon={eps:.3f} delta={delta:.2e} population={population}")
    print(
        f"registry: {registry.root} (current v{registry.current()}); metrics {runlog.path}; plot {plot_path}"
    )
    return RunResult(rows=rows, registry=str(registry.root), metrics=str(runlog.path), plot=str(plot_path))


def make_server_app(cfg: FLConfig | None = None, results: list | None = None) -> ServerApp:
    """A ServerApp bound to `cfg` (simulation), or reading the Flower run config (deployment)."""
    sa = ServerApp()

    @sa.main()
    def _main(grid: Grid, context: Context) -> None:
        c = cfg if cfg is not None else FLConfig.from_run_config(dict(context.run_config))
        res = run_server(grid, context, c)
        if results is not None:
            results.append(res)

    return sa


app = make_server_app()
