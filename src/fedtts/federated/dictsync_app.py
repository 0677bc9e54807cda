"""Flower apps for the federated pronunciation dictionary (maths in fedtts.federated.dictsync).

Why two phases over Flower: the count sketch must be summed with SecAgg+ (SecAggPlusWorkflow +
secaggplus_mod) so the server never sees one device's sketch; the reveal round is a plain QUERY
message because its records are already k-threshold encrypted. Devices find their dictionary via
node_config "dict-path" (deployment: ``flower-supernode --node-config "dict-path='…'"``) or, in
simulation, via the partition id indexing the folder list given to ``make_client_app``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import (
    Code,
    FitIns,
    FitRes,
    Parameters,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat
from flwr.server import ServerConfig
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp

from fedtts.federated.dictsync import (
    SHARED_DICT_FILE,
    DevicePolicy,
    SketchConfig,
    SyncReport,
    client_noise,
    derive_secrets,
    device_sketch,
    finish_sync,
    load_device_entries,
    make_reveals,
    pack_reveals,
    recover_entries,
    select_entries,
    unpack_reveals,
)

__all__ = ["SyncOutcome", "RecordingGrid", "make_client_app", "make_server_app", "simulate", "message_bytes"]

log = logging.getLogger(__name__)

KEY_CFG = "dictsync.cfg"
KEY_SALT = "dictsync.salt"
REC = "dictsync"


# ----------------------------------------------------------------------------- client


def _dict_path(context: Context, dict_paths: Sequence[str] | None) -> Path:
    nc = context.node_config
    if "dict-path" in nc:
        return Path(str(nc["dict-path"]))
    if dict_paths is not None and "partition-id" in nc:
        return Path(dict_paths[int(nc["partition-id"])])
    raise ValueError("no dictionary for this node: set node_config 'dict-path'")


def _device_key(context: Context) -> bytes:
    """Per-device secret kept in the node state: fixes this device's Shamir x for a given salt."""
    rec = context.state.config_records.get("dictsync.device")
    if rec is None or "key" not in rec:
        rec = ConfigRecord({"key": secrets.token_bytes(32)})
        context.state.config_records["dictsync.device"] = rec
    return bytes(rec["key"])


def make_client_app(dict_paths: Sequence[str] | None = None, policy: DevicePolicy | None = None) -> ClientApp:
    """ClientApp: TRAIN (through secaggplus_mod) returns the noisy sketch, QUERY returns reveal records."""
    policy = (policy or DevicePolicy()).validate()
    paths = None if dict_paths is None else [str(p) for p in dict_paths]
    app = ClientApp(mods=[secaggplus_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        cfg = SketchConfig.from_json(str(fitins.config[KEY_CFG]))
        salt = bytes(fitins.config[KEY_SALT])
        policy.check(cfg)
        entries = select_entries(load_device_entries(_dict_path(context, paths)), cfg.max_entries, salt)
        sk = device_sketch((derive_secrets(e, salt, cfg) for e in entries), cfg)
        vec = (sk + client_noise(sk.shape, cfg.client_sigma)).ravel()
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([vec]), num_examples=1, metrics={})
        return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        conf = msg.content.config_records[REC]
        cfg = SketchConfig.from_json(str(conf["cfg"]))
        salt = bytes(conf["salt"])
        policy.check(cfg)
        noisy = msg.content.array_records["sketch"]["sketch"].numpy().reshape(cfg.n_hashes, cfg.n_buckets)
        entries = load_device_entries(_dict_path(context, paths))
        recs, _withheld = make_reveals(entries, salt, cfg, _device_key(context), noisy)
        return Message(RecordDict({REC: ConfigRecord({"reveals": pack_reveals(recs)})}), reply_to=msg)

    return app


# ----------------------------------------------------------------------------- server


def message_bytes(msg: Message) -> list[bytes]:
    """Every byte string inside a message's content (for transcripts / leak checks)."""
    out: list[bytes] = []
    if not msg.has_content():
        return out
    c = msg.content
    for rec in c.config_records.values():
        for k, v in rec.items():
            out.append(str(k).encode())
            for item in v if isinstance(v, list) else [v]:
                out.append(item if isinstance(item, bytes) else str(item).encode())
    for rec in c.array_records.values():
        for arr in rec.values():
            out.append(bytes(arr.data))
    for rec in c.metric_records.values():
        out.append(repr(dict(rec)).encode())
    return out


class RecordingGrid(Grid):
    """A Grid that forwards everything and keeps every reply the server receives."""

    def __init__(self, inner: Grid) -> None:
        self._inner = inner
        self.received: list[bytes] = []
        self._lock = threading.Lock()

    def _keep(self, msgs: Iterable[Message]) -> list[Message]:
        msgs = list(msgs)
        with self._lock:
            for m in msgs:
                self.received.extend(message_bytes(m))
        return msgs

    def set_run(self, run):
        return self._inner.set_run(run)

    @property
    def run(self):
        return self._inner.run

    def create_message(self, *args, **kwargs):
        return self._inner.create_message(*args, **kwargs)

    def get_node_ids(self):
        return self._inner.get_node_ids()

    def push_messages(self, messages):
        return self._inner.push_messages(messages)

    def pull_messages(self, message_ids):
        return self._keep(self._inner.pull_messages(message_ids))

    def send_and_receive(self, messages, *, timeout=None):
        return self._keep(self._inner.send_and_receive(messages, timeout=timeout))


class _SketchStrategy(Strategy):
    """Legacy Strategy driven by SecAggPlusWorkflow: sends (cfg, salt), keeps the unmasked sum."""

    def __init__(self, cfg: SketchConfig, salt: bytes, min_available: int) -> None:
        self.cfg, self.salt, self.min_available = cfg, salt, min_available
        self.sum: np.ndarray | None = None
        self.node_ids: list[int] = []
        self.failures = 0

    def initialize_parameters(self, client_manager):
        return ndarrays_to_parameters([])

    def configure_fit(self, server_round, parameters: Parameters, client_manager):
        n = max(client_manager.num_available(), self.min_available)
        clients = client_manager.sample(num_clients=n, min_num_clients=self.min_available)
        ins = FitIns(parameters, {KEY_CFG: self.cfg.to_json(), KEY_SALT: self.salt})
        return [(c, ins) for c in clients]

    def aggregate_fit(self, server_round, results, failures):
        self.failures = len(failures)
        if results:
            # SecAggPlusWorkflow hands every result the same aggregate: the num_examples-weighted
            # mean; all weights are 1, so mean * survivors is the sum.
            mean = parameters_to_ndarrays(results[0][1].parameters)[0]
            self.sum = np.asarray(mean, np.float64) * len(results)
            self.node_ids = sorted(p.node_id for p, _ in results)
        return None, {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None


@dataclass
class SyncOutcome:
    """Server-side result of one sync (also written to out_dir)."""

    report: SyncReport | None = None
    noisy_sketch: np.ndarray | None = None
    received: list[bytes] = field(default_factory=list)  # only with record=True
    error: str | None = None


def _secagg_params() -> tuple[float, float]:
    """All-to-all shares for small federations; t > shares/2 so a lying server can't get both
    the mask seed and the key share of one device."""
    return 1.0, 0.67


def make_server_app(
    cfg: SketchConfig,
    out_dir: Path | str | None,
    outcome: SyncOutcome | None = None,
    min_available: int | None = None,
    record: bool = False,
    salt: bytes | None = None,
    timeout: float | None = 120.0,
) -> ServerApp:
    """ServerApp: SecAgg+ round for the sketch, then the reveal round, then STAR recovery."""
    cfg.validate()
    outcome = outcome if outcome is not None else SyncOutcome()
    min_n = max(2, min_available if min_available is not None else cfg.min_clients)
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        g: Grid = RecordingGrid(grid) if record else grid
        epoch_salt = salt if salt is not None else secrets.token_bytes(32)  # fresh per sync
        strategy = _SketchStrategy(cfg, epoch_salt, min_n)
        shares, thr = _secagg_params()
        clip = max(2.0, 1.0 + 8.0 * cfg.client_sigma)
        workflow = DefaultWorkflow(
            fit_workflow=SecAggPlusWorkflow(
                num_shares=shares,
                reconstruction_threshold=thr,
                max_weight=1.0,
                clipping_range=clip,
                timeout=timeout,
            )
        )
        workflow(g, LegacyContext(context, config=ServerConfig(num_rounds=1), strategy=strategy))
        if strategy.sum is None:
            outcome.error = "secure aggregation failed (too few devices?)"
            return
        noisy = strategy.sum.reshape(cfg.n_hashes, cfg.n_buckets)
        if cfg.noise == "central":
            noisy = noisy + client_noise(noisy.shape, cfg.sigma)
        survivors = len(strategy.node_ids)

        conf = ConfigRecord({"cfg": cfg.to_json(), "salt": epoch_salt})
        arr = ArrayRecord({"sketch": Array(noisy.ravel().astype(np.float64))})
        msgs = [
            Message(
                content=RecordDict({REC: conf, "sketch": arr}),
                dst_node_id=nid,
                message_type=MessageType.QUERY,
                group_id="reveal",
            )
            for nid in strategy.node_ids
        ]
        replies = g.send_and_receive(msgs, timeout=timeout)
        reveals = {}
        for m in replies:
            if m.has_error():
                continue
            try:
                reveals[m.metadata.src_node_id] = unpack_reveals(
                    bytes(m.content.config_records[REC]["reveals"])
                )
            except (KeyError, ValueError) as e:
                log.warning("dropping malformed reveal from node %s: %s", m.metadata.src_node_id, e)
        found, stats = recover_entries(reveals, epoch_salt, cfg, noisy)
        outcome.report, shared = finish_sync(found, stats, cfg, survivors)
        outcome.noisy_sketch = noisy
        if record:
            outcome.received = g.received  # type: ignore[attr-defined]
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            shared.save(out / SHARED_DICT_FILE)
            (out / "dictsync_report.json").write_text(outcome.report.to_json() + "\n", encoding="utf-8")

    return app


def simulate(
    dict_paths: Sequence[str | Path],
    cfg: SketchConfig,
    out_dir: Path | str | None = None,
    policy: DevicePolicy | None = None,
    record: bool = False,
    num_cpus: int = 2,
    verbose: bool = False,
    salt: bytes | None = None,
) -> SyncOutcome:
    """One sync on Flower's simulation engine: one virtual SuperNode per dictionary folder."""
    from flwr.simulation import run_simulation

    cfg.validate()
    paths = [str(p) for p in dict_paths]
    for p in paths:  # fail early (with file:line) before starting Ray
        load_device_entries(p)
    outcome = SyncOutcome()
    server = make_server_app(cfg, out_dir, outcome, min_available=len(paths), record=record, salt=salt)
    client = make_client_app(paths, policy)
    backend = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": num_cpus, "num_gpus": 0, "include_dashboard": False},
    }
    run_simulation(server, client, num_supernodes=len(paths), backend_config=backend, verbose_logging=verbose)
    if outcome.report is None and outcome.error is None:
        outcome.error = "the ServerApp did not finish (see the Flower log)"
    return outcome
