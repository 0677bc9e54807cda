"""Flower ServerApp: rounds of (SecAgg+) FedAvg/FedProx/FedAdam with central DP, versions and metrics.

Why the legacy workflow inside a current ServerApp: in flwr 1.42 `SecAggPlusWorkflow` only runs under
`DefaultWorkflow` with a `LegacyContext` and a `flwr.server.strategy` strategy; the Message-API
strategies (`flwr.serverapp.strategy`) have no secure-aggregation path. So `@app.main()` (current API,
`Grid`) builds a LegacyContext and runs DefaultWorkflow with SecAgg+ (default) or the plain fit
workflow, wrapped by a round recorder that, after every round, accounts privacy (user-level RDP,
`PrivacyAccountant`), evaluates the global tuner on the server's own held-back speakers, passes it
through the release gate (`gate.py`: a model scoring worse than its parent by more than the noise is
stored as rejected and the round is undone), saves the version (parent, hash, metrics, ε/δ, status) and
writes the metrics JSON + PNG. A restarted server resumes from the registry's current version,
continuing round numbers and the privacy spent (rejected rounds and rounds without a new model count).
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
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.server.workflow.default_workflows import default_fit_workflow
from flwr.serverapp import Grid, ServerApp
from threadpoolctl import threadpool_limits

from fedtts.engine.assets import registry_dir
from fedtts.eval.clone_eval import evaluate_tuner_speakers, server_means
from fedtts.federated.config import FLConfig
from fedtts.federated.gate import GateDecision, release_gate
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
from fedtts.federated.report import RunLog, plot_rounds, summary_table, table_header, table_row
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

    return VersionRegistry(registry_dir())


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
def _evaluate(weights, limit: int) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Server-side evaluation on the server's own public held-back speakers (never client data):
    the mean scores (row metrics) and each speaker's (what the release gate compares)."""
    try:  # the evaluation stack (Whisper, speaker embeddings) is imported when scoring starts
        per = evaluate_tuner_speakers(weights, limit=limit or None)
    except ImportError as e:
        log.warning("server evaluation unavailable (%s)", e)
        return {}, {}
    return server_means(per), per


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
        self.printed_header = False
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
        snap = self.strategy.snapshot()
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
            # SecAgg+ skips aggregate_fit when too few devices are left: then every sampled one failed
            "failures": st.failures if st.aggregated else st.sampled,
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
            self._release(row, after, eps, delta)
            if row["gate"] == "rejected":  # undo the round: the next one starts from the kept model
                self.strategy.restore(snap)
                _set_params(context, before)
        else:
            row["version"] = self.registry.current()
            log.warning("round %s produced no new global model (kept v%s)", self.global_round, row["version"])
        row["current"] = self.registry.current()
        self.registry.save_server_state({"round": self.global_round, "dp_rounds": self.dp_rounds})
        self.runlog.add(row)
        plot_rounds(self.runlog.rounds, self.plot_path)
        self._print_row(row)
        if self.bar is not None:
            self.bar.set_postfix(ok=f"{st.accepted}/{st.sampled}", eps=_f(eps), sim=_f(row.get("similarity")))
            self.bar.update(1)

    def _release(self, row: dict[str, Any], after: list[np.ndarray], eps, delta) -> None:
        """Evaluate the round's model, gate it, store it (current only if the gate lets it through)."""
        num = self.registry.next_version()
        weights = merge_federated(self.base, after, version=f"fl-v{num}")
        weights.info = _tuner_info(self.base, fl_round=self.global_round, fl_epsilon=eps, fl_delta=delta)
        scores: dict[str, dict[str, float]] = {}
        if self.cfg.eval_every and self.global_round % self.cfg.eval_every == 0:
            means, scores = _evaluate(weights, self.cfg.eval_limit)
            row.update(means)
        decision = self._gate(scores)
        row["gate"], row["gate_reason"] = decision.status, decision.reason
        meta = {k: row[k] for k in row if k not in ("reject_reasons",)}
        meta["gate_detail"] = decision.as_dict()
        if scores:
            meta["scores"] = scores  # per speaker: the next round's gate compares with these
        mv = self.registry.save(
            version_named(weights),
            meta,
            epsilon=eps,
            delta=delta,
            make_current=decision.release,
            status=decision.status,
            reason=decision.reason,
        )
        row["version"], row["parent"] = mv.version, mv.parent
        if not decision.release:
            log.warning(
                "round %s: v%s rejected by the release gate, v%s stays current: %s",
                self.global_round,
                mv.version,
                mv.parent,
                decision.reason,
            )

    def _gate(self, scores: dict[str, dict[str, float]]) -> GateDecision:
        parent = self.registry.current()
        if not self.cfg.gate:
            return GateDecision("ungated", "release gate off (--no-gate)", self.cfg.gate_metric)
        pv = next((v for v in self.registry.list() if v.version == parent), None)
        parent_scores = pv.metrics.get("scores") if pv is not None else None
        return release_gate(scores, parent_scores, parent, self.cfg.gate_metric, self.cfg.gate_sigmas)

    def _print_row(self, row: dict[str, Any]) -> None:
        """The round's line of the summary table, as it finishes (above the progress bar if there is one)."""
        lines = [] if self.printed_header else [table_header()]
        self.printed_header = True
        lines.append(table_row(row))
        text = "\n".join(lines)
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    @staticmethod
    def _params(context: Context) -> list[np.ndarray]:
        rec = context.state.array_records[MAIN_PARAMS_RECORD]
        return parameters_to_ndarrays(compat.arrayrecord_to_parameters(rec, keep_input=True))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _set_params(context: Context, arrays: list[np.ndarray]) -> None:
    """Put `arrays` back as the global model the next round sends."""
    params = ndarrays_to_parameters([np.asarray(a, np.float32) for a in arrays])
    context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(params, True)


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
    """The whole server side of a run (shared by simulation and deployment).

    One BLAS thread throughout: in a simulation this runs in a thread of the process that also drives
    the Ray workers on the same cores, and a multi-threaded OpenBLAS call there has spun without end
    (a matmul in the evaluation, the bank SVD of the exchange basis). The matrices are small.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_server(grid, context, cfg)


def _run_server(grid: Grid, context: Context, cfg: FLConfig) -> RunResult:
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
        scores: dict[str, dict[str, float]] = {}
        if cfg.eval_every:
            means, scores = _evaluate(w0, cfg.eval_limit)
            row.update(means)
        num = registry.next_version()
        first = replace(w0, version=f"fl-v{num}", info=_tuner_info(w0, fl_round=0, fl_source=str(w0.version)))
        meta = {**row, "scores": scores} if scores else row  # the first round's gate compares with these
        mv = registry.save(version_named(first), meta, epsilon=0.0, delta=None)
        row["version"] = mv.version
        runlog.add(row)
    mv, arrays = registry.load()
    base = weights_from_version(arrays, version=f"fl-v{mv.version}")
    if not same_frozen(base, w0):
        raise RuntimeError(
            f"registry {registry.root} v{mv.version} was not federated from this start model "
            f"({cfg.init_model or 'tuner_v0_synthetic.npz'}): its frozen arrays (w_t, w_c, feature stats) differ"
        )
    # rounds run and privacy spent: the latest of any version (a rejected one too), or of the rounds
    # that stored none, never only the current version's (after a rejection or a rollback that is older)
    done = [v.metrics for v in registry.list()] + [registry.server_state()]
    round_offset = max(int(m.get("round", 0)) for m in done)
    dp_rounds = max(int(m.get("dp_rounds", 0)) for m in done)
    log.info("resuming from registry v%s (round %s, %s DP rounds spent)", mv.version, round_offset, dp_rounds)
    if cfg.gate and cfg.eval_every != 1:
        log.warning(
            "release gate needs a score every round (eval-every 1, here %s): rounds whose model or parent "
            "was not evaluated are made current ungated",
            cfg.eval_every,
        )

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
        return cfg.fit_instructions(rnd, start_sha).to_config()

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
    for r in rows:
        if r.get("gate") == "rejected":
            print(f"round {r['round']}: v{r['version']} rejected, v{r['current']} kept: {r['gate_reason']}")
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
