"""On-device Flower ClientApp: enroll the user's own voice locally, fit the shared tuner, reply an update.

Why this shape: the recordings, the GE2E embedding, the target style and the personal voice pack stay
in this process (and its local cache); the only thing that leaves is the new tuner weights after the
privacy mods ran on them — clipped (`fixedclipping_mod`, central DP) or clipped+noised (`LocalDpMod`),
then masked by `secaggplus_mod` so the server only ever sees the cohort's sum.

API combination (flwr 1.42): SecAgg+ exists only as the legacy `SecAggPlusWorkflow`, which speaks the
legacy FitIns/FitRes record layout. So this is a current-API `ClientApp` with an `@app.train()` handler
that reads/writes that layout, and the privacy mods are the `flwr.client.mod` ones that understand it.
Which mods run is decided per message from what the server sent (SecAgg+ stage records, the DP mode in
the fit config), so one app serves every server configuration.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.app.message_type import MessageType
from flwr.client.mod import (
    LocalDpMod,
    adaptiveclipping_mod,
    fixedclipping_mod,
    make_ffn,
    secaggplus_mod,
)
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

from fedtts.federated import enrollment
from fedtts.federated.config import FitInstructions, FitKey, MissingConfigKey
from fedtts.federated.data import node_clips
from fedtts.federated.model import (
    StartModelMismatch,
    federated_arrays,
    frozen_digest,
    load_start_model,
    merge_federated,
)
from fedtts.train.tuner import FitConfig, fit_tuner, tuner_loss
from fedtts.voice.tuner import TunerWeights

__all__ = [
    "app",
    "LocalData",
    "local_fit",
    "start_model",
    "privacy_mod",
    "load_enrollment",
    "enroll_cached",
    "SimulatedDropout",
]

log = logging.getLogger(__name__)

STATE_KEY = "fedtts.enrollment"


class SimulatedDropout(RuntimeError):
    """A device that goes away mid-round (simulation of real churn)."""


@dataclass
class LocalData:
    """The node's own training pair: clip features [n, 262] and its own target style [256]."""

    label: str
    features: np.ndarray
    style: np.ndarray

    @property
    def targets(self) -> np.ndarray:
        return np.repeat(self.style[None].astype(np.float32), len(self.features), axis=0)


def _cache_file(clips: list[str], refine_steps: int = 0) -> Path:
    """The device's cached target for these clips (the shared cache of `federated.enrollment`)."""
    return enrollment.style_file(clips, refine_steps)


def enroll_cached(clips: list[str], refine_steps: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(features, target style, seconds spent) of these clips: from the device's cache, else enrolled
    (`federated.enrollment.enroll_cached`, the cache the privacy audit shares)."""
    enr = enrollment.enroll_cached(clips, refine_steps)
    assert enr.style is not None  # style=True always yields one
    return enr.features, enr.style, enr.seconds


def load_enrollment(context: Context, refine_steps: int = 0) -> tuple[LocalData, float]:
    """Enrollment of this node's speaker: from `context.state`, else the local cache file, else computed.

    Returns the data and the seconds spent enrolling (0 when cached). The voice pack is not kept here:
    it is the user's, installed by `fedtts voice`, and never part of a message.
    """
    state = context.state
    if STATE_KEY in state.array_records:  # later rounds: no need to look at the clips again
        meta = state.config_records[STATE_KEY] if STATE_KEY in state.config_records else {}
        if int(meta.get("refine", 0)) == int(refine_steps):  # else the server asked for another target
            feats, style = state.array_records[STATE_KEY].to_numpy_ndarrays()
            return LocalData(str(meta.get("label", "")), feats, style), 0.0
    label, clips = node_clips(dict(context.node_config))
    feats, style, spent = enroll_cached(clips, refine_steps)
    state.array_records[STATE_KEY] = ArrayRecord([feats, style])
    state.config_records[STATE_KEY] = ConfigRecord({"label": label, "refine": int(refine_steps)})
    return LocalData(label, feats, style), spent


def start_model(cfg: dict | FitInstructions):
    """The run's start model as this device loads it, checked against the server's `start-sha256`.

    The frozen arrays (w_t, w_c, feature statistics) never travel: the device loads them from its own
    copy of the start model (`start-model` path, "" = the shipped `tuner_v0_synthetic.npz`) and refuses
    to train when their digest is not the one the server federates.
    """
    if isinstance(cfg, FitInstructions):
        path, expected = cfg.start_model, cfg.start_sha256
    else:  # a missing hash is refused below, with the reason
        path, expected = str(cfg.get(FitKey.START_MODEL, "")), str(cfg.get(FitKey.START_SHA256, ""))
    w = load_start_model(path)
    got = frozen_digest(w)
    if not expected or got != expected:
        raise StartModelMismatch(
            f"start model {path or 'tuner_v0_synthetic.npz'} has frozen-array sha256 {got[:12]}, "
            f"the server federates {expected[:12] or '(none sent)'}: refusing to train"
        )
    return w


def local_fit(
    global_arrays: list[np.ndarray], data: LocalData, cfg: dict | FitInstructions, start=None
) -> tuple[list[np.ndarray], dict]:
    """The local step: `fit_tuner` of the FEDERATED arrays from the global ones (FedProx if mu > 0).

    `global_arrays` are the round's `TunerWeights.FEDERATED` arrays; the rest of the tuner comes from
    `start` (default: `start_model(cfg)`, hash-checked). `cfg` is the round's fit config (every key of
    `FitKey`, else MissingConfigKey). Returns the new FEDERATED arrays.
    """
    ins = cfg if isinstance(cfg, FitInstructions) else FitInstructions.from_config(cfg)

    frozen = start if start is not None else start_model(ins)
    base = merge_federated(frozen, list(global_arrays))
    fc = FitConfig(
        epochs=ins.local_epochs,
        lr=ins.lr,
        batch_size=ins.batch_size,
        l2=ins.l2,
        prox_mu=ins.proximal_mu,
        seed=ins.seed,
        trainable=TunerWeights.FEDERATED,
    ).validate()
    start_loss = tuner_loss(base, data.features, data.targets)
    new, curve = fit_tuner(base, data.features, data.targets, fc)
    arrays = federated_arrays(new, frozen)  # the local step, projected on the public subspace
    return arrays, {"start_loss": float(start_loss), "train_loss": float(curve[-1]) if curve else start_loss}


def _dp_mod(msg: Message, ctxt: Context, call_next):
    """Pick the clipping/noise mod the server asked for (fit config `fedtts-dp`)."""
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    if FitKey.DP not in fitins.config:  # never train unclipped because the server forgot to say
        raise MissingConfigKey(f"fit config lacks {FitKey.DP!r}: refusing to train without the DP mode")
    mode = str(fitins.config[FitKey.DP])
    if mode == "central":
        return fixedclipping_mod(msg, ctxt, call_next)
    if mode == "adaptive":
        return adaptiveclipping_mod(msg, ctxt, call_next)
    if mode == "local":
        ins = FitInstructions.from_config(fitins.config)
        mod = LocalDpMod(
            clipping_norm=ins.clip, sensitivity=ins.clip, epsilon=ins.local_epsilon, delta=ins.local_delta
        )
        return mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def privacy_mod(msg: Message, ctxt: Context, call_next):
    """SecAgg+ (when the server runs it) around the DP mod around the training handler."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    mods = [secaggplus_mod] if RECORD_KEY_CONFIGS in msg.content.config_records else []
    return make_ffn(call_next, [*mods, _dp_mod])(msg, ctxt)


app = ClientApp(mods=[privacy_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round: global weights in, locally fitted weights (+ example count) out."""
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    ins = FitInstructions.from_config(dict(fitins.config))  # with `proximal_mu` when FedProx added it
    rnd = ins.fl_round
    pid = int(context.node_config.get("partition-id", context.node_id % (2**31)))
    rng = np.random.default_rng([ins.seed, rnd, pid])
    if ins.dropout > 0 and rng.random() < ins.dropout:
        raise SimulatedDropout(f"node {pid} dropped out of round {rnd} (p={ins.dropout})")
    t0 = time.perf_counter()
    data, enroll_s = load_enrollment(context, ins.enroll_refine)
    arrays, fit_metrics = local_fit(parameters_to_ndarrays(fitins.parameters), data, ins)
    compute_s = time.perf_counter() - t0
    # Under DP every user weighs the same (the DP bound is per user, not per clip).
    # (capped at SecAgg+'s max_weight of 100 so the masked weighted sum cannot overflow)
    weight = 1 if ins.uniform_weight else min(len(data.features), 100)
    metrics = {
        "n_clips": len(data.features),
        "compute_s": round(compute_s, 4),
        "enroll_s": round(enroll_s, 4),
        "train_loss": round(fit_metrics["train_loss"], 4),
        "start_loss": round(fit_metrics["start_loss"], 4),
    }
    res = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(arrays), weight, metrics)
    content = compat.fitres_to_recorddict(res, keep_input=False)
    return Message(content, reply_to=msg)
