"""Server strategy: robust bounds → Flower's central-DP wrapper → FedAvg/FedProx (→ FedAdam step).

Why a wrapper around Flower's strategies rather than new maths: aggregation, clipping, noise and the
server optimiser are Flower's (`flwr.server.strategy`, the family `SecAggPlusWorkflow` drives in
flwr 1.42). What is added is what a voice federation needs on top:

* bounds: a NaN/inf or oversized update is dropped where the server can see it; under SecAgg+ the
  server only sees the sum, so the *aggregate* is checked and a bad round is rejected as a whole;
* dropout tolerance: Flower's DP wrappers discard a round if any client failed; here failures are
  ignored and the noise is calibrated to the number of updates actually averaged (std = z·C/m);
* the server optimiser (FedAdam, or FedAvgM's server learning rate and momentum) runs on the
  already-noised average (post-processing, so the DP guarantee holds). Clipping shrinks each update
  to the bound; a server learning rate above 1 restores the step length without touching the noise
  to signal ratio, which only the cohort size and the noise multiplier set.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Strategy,
)

from fedtts.federated.config import FLConfig
from fedtts.federated.robust import check_update

__all__ = ["RoundStats", "FedTTSStrategy", "build_strategy", "expected_cohort", "local_dp_sigma"]

log = logging.getLogger(__name__)


@dataclass
class RoundStats:
    """What the last aggregation saw (read by the round recorder)."""

    aggregated: bool = False  # aggregate_fit ran (SecAgg+ skips it when too few devices are left)
    sampled: int = 0
    results: int = 0
    failures: int = 0
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)
    aggregate_rejected: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    clip: float | None = None


def local_dp_sigma(cfg: FLConfig) -> float:
    """Per-weight noise std of LocalDpMod (Gaussian mechanism with sensitivity = clip)."""
    return cfg.clip * math.sqrt(2 * math.log(1.25 / cfg.local_delta)) / cfg.local_epsilon


def expected_cohort(cfg: FLConfig, population: int) -> int:
    """Clients sampled per round, as Flower's FedAvg computes it."""
    return min(population, max(int(population * cfg.fraction_fit), cfg.min_fit_clients))


def _mean_metrics(results: list[tuple[ClientProxy, FitRes]]) -> dict[str, float]:
    keys = ("train_loss", "start_loss", "compute_s", "enroll_s", "n_clips")
    out: dict[str, float] = {}
    for k in keys:
        vals = [float(r.metrics[k]) for _, r in results if k in r.metrics]
        if vals:
            out[k] = float(np.mean(vals))
    return out


class FedTTSStrategy(Strategy):
    """Orchestrates bounds, DP and the server optimiser around a Flower base strategy."""

    def __init__(
        self,
        cfg: FLConfig,
        base: Strategy,
        dp: DifferentialPrivacyClientSideFixedClipping | DifferentialPrivacyClientSideAdaptiveClipping | None,
        server_opt: FedAdam | FedAvgM | None,
        initial: list[np.ndarray],
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.base = base
        self.dp = dp
        self.server_opt = server_opt
        self.outer: Strategy = dp if dp is not None else base
        self.current = [np.asarray(a, np.float32) for a in initial]
        self.stats = RoundStats()

    def __repr__(self) -> str:
        return f"FedTTSStrategy({self.cfg.strategy}, dp={self.cfg.dp}, secagg={self.cfg.secagg})"

    # -------------------------------------------------------------- delegation
    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return ndarrays_to_parameters(self.current)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.current = parameters_to_ndarrays(parameters)
        ins = self.outer.configure_fit(server_round, parameters, client_manager)
        self.stats = RoundStats(sampled=len(ins), clip=self.clip_now())
        return ins

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters):
        return None

    def clip_now(self) -> float | None:
        return float(self.dp.clipping_norm) if self.dp is not None else None

    # -------------------------------------------------------------- undo (release gate)
    def snapshot(self) -> dict[str, Any]:
        """What a round changes on the server: the global arrays and the server optimiser's state."""
        opt = vars(self.server_opt) if self.server_opt is not None else {}
        return {
            "current": [a.copy() for a in self.current],
            "opt": {k: copy.deepcopy(v) for k, v in opt.items() if k in _OPT_STATE},
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Undo a rejected round: the next one starts from the kept model, and neither FedAvgM's
        momentum nor FedAdam's moments carry the rejected step into later rounds."""
        self.current = [a.copy() for a in snap["current"]]
        for k, v in snap["opt"].items():
            setattr(self.server_opt, k, copy.deepcopy(v))

    # -------------------------------------------------------------- bounds
    def bound(self) -> float:
        """Largest acceptable update norm: the clip (+ quantisation slack) where clients clip."""
        clip = self.clip_now()
        if clip is not None:
            return 1.05 * clip + 1e-2
        if self.cfg.dp == "local":  # clip + 4 sigma of the local Gaussian noise over every weight
            dim = sum(int(c.size) for c in self.current)
            return self.cfg.clip + 4.0 * local_dp_sigma(self.cfg) * math.sqrt(dim)
        return float(self.cfg.max_update_norm)

    def _fits(self, arrays: list[np.ndarray]) -> bool:
        """Same number of arrays as the global model, each of the same shape."""
        return len(arrays) == len(self.current) and all(
            a.shape == c.shape for a, c in zip(arrays, self.current, strict=False)
        )

    def _delta(self, res: FitRes) -> list[np.ndarray]:
        arrays = parameters_to_ndarrays(res.parameters)
        if not self._fits(arrays):
            return []
        with np.errstate(all="ignore"):
            return [a.astype(np.float64) - c for a, c in zip(arrays, self.current, strict=True)]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        st = self.stats
        st.aggregated = True
        # SecAggPlusWorkflow lists a dropped client's error twice; count devices, not list entries
        st.results = len(results)
        st.failures = max(st.sampled - st.results, 0) if st.sampled else len(failures)
        st.metrics = _mean_metrics(results)
        for f in failures:
            log.info("round %s: client failure ignored: %s", server_round, f)
        bound = self.bound()
        if self.cfg.secagg and results:
            # Every FitRes carries the same unmasked aggregate: check it, all or nothing.
            reason = check_update(self._delta(results[0][1]), bound) or self._shape_reason(results[0][1])
            if reason:
                st.aggregate_rejected = reason
                log.warning(
                    "round %s: SecAgg+ aggregate rejected (%s); global model kept", server_round, reason
                )
                return None, {}
            kept = results
        else:
            kept = []
            for proxy, res in results:
                reason = self._shape_reason(res) or check_update(self._delta(res), bound)
                if reason:
                    st.rejected.append(reason)
                    log.warning(
                        "round %s: update from node %s rejected: %s", server_round, proxy.node_id, reason
                    )
                else:
                    kept.append((proxy, res))
        st.accepted = len(kept)
        if not kept:
            return None, {}
        if self.dp is not None:
            self.dp.num_sampled_clients = len(kept)  # noise std = z * C / (updates averaged)
            params, _ = self.dp.aggregate_fit(server_round, kept, [])
        else:
            params, _ = self.base.aggregate_fit(server_round, kept, [])
        if params is not None and self.server_opt is not None:
            # FedAdam/FedAvgM on the (noised) average: feed it as the single "result" of the round.
            avg = FitRes(kept[0][1].status, params, 1, {})
            params, _ = self.server_opt.aggregate_fit(server_round, [(kept[0][0], avg)], [])
        if params is not None:
            # SecAgg+ dequantises to float64: keep the global model float32 (half the bytes every round)
            self.current = [np.asarray(a, np.float32) for a in parameters_to_ndarrays(params)]
            params = ndarrays_to_parameters(self.current)
        return params, {k: float(v) for k, v in st.metrics.items()}

    def _shape_reason(self, res: FitRes) -> str | None:
        arrays = parameters_to_ndarrays(res.parameters)
        if not self._fits(arrays):
            return f"wrong shapes {[a.shape for a in arrays]}"
        return None


# server-optimiser state a round changes: FedAvgM (weights, momentum), FedAdam/FedOpt (weights, moments)
_OPT_STATE = ("initial_parameters", "momentum_vector", "current_weights", "m_t", "v_t")


def build_strategy(
    cfg: FLConfig,
    initial: list[np.ndarray],
    population: int,
    fit_config: Callable[[int], dict[str, Scalar]],
) -> FedTTSStrategy:
    """The strategy stack for `cfg` (the DP wrappers are Flower's own)."""
    init = ndarrays_to_parameters([np.asarray(a, np.float32) for a in initial])
    common = {
        "fraction_fit": cfg.fraction_fit,
        "fraction_evaluate": 0.0,
        "min_fit_clients": cfg.min_fit_clients,
        "min_evaluate_clients": 0,
        "min_available_clients": max(cfg.min_fit_clients, min(population, cfg.population or population)),
        "on_fit_config_fn": fit_config,
        "initial_parameters": init,
        "accept_failures": True,
    }
    base: Strategy = (
        FedProx(proximal_mu=cfg.prox_mu, **common) if cfg.strategy == "fedprox" else FedAvg(**common)
    )
    m = expected_cohort(cfg, population)
    dp: DifferentialPrivacyClientSideFixedClipping | DifferentialPrivacyClientSideAdaptiveClipping | None = (
        None
    )
    if cfg.dp == "central":
        dp = DifferentialPrivacyClientSideFixedClipping(base, cfg.noise_multiplier, cfg.clip, m)
    elif cfg.dp == "adaptive":
        dp = DifferentialPrivacyClientSideAdaptiveClipping(
            base, cfg.noise_multiplier, m, initial_clipping_norm=cfg.clip
        )
    # the server optimiser only ever sees one "result" a round: the (noised) average
    single = {
        "initial_parameters": init,
        "fraction_fit": 1.0,
        "fraction_evaluate": 0.0,
        "min_fit_clients": 1,
        "min_available_clients": 1,
    }
    server_opt: FedAdam | FedAvgM | None = None
    if cfg.strategy == "fedavgm":
        server_opt = FedAvgM(
            server_learning_rate=cfg.server_lr, server_momentum=cfg.server_momentum, **single
        )
    elif cfg.strategy == "fedadam":
        server_opt = FedAdam(eta=cfg.server_lr, eta_l=cfg.lr, **single)
    return FedTTSStrategy(cfg, base, dp, server_opt, initial)
