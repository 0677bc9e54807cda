"""Run configuration of a federated tuner run (one typed dataclass ↔ Flower run config) and the
per-round instructions the server sends to devices (one typed dataclass ↔ fit config).

Why one place: the same settings arrive from `fedtts fl simulate` flags, from `flwr run --run-config`
and from the app's pyproject.toml; the server forwards the client-side part in each round's
instructions, so devices never need their own copy. The defaults live only in `FLConfig` (the CLI
flags and the app's pyproject.toml take theirs from it; a test checks the pyproject), and both
configs are read strictly: a missing key is an error that names it, as Flower's own mods do
(`fixedclipping_mod` without `clipping_norm`), never a silent fallback to a default that may differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "FLConfig",
    "FitKey",
    "FitInstructions",
    "MissingConfigKey",
    "STRATEGIES",
    "DP_MODES",
    "GATE_METRICS",
    "run_key",
]

STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadam")
DP_MODES = ("central", "adaptive", "local", "off")
GATE_METRICS = ("ge2e_norm", "similarity", "ge2e")  # server-side scores of `evaluate_tuner`


class MissingConfigKey(KeyError):
    """A run-config or fit-config key is missing (a drifted app pyproject, an older server)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else "missing config key"


def run_key(field_name: str) -> str:
    """Run-config key of an `FLConfig` field (`foo_bar` ↔ `foo-bar`)."""
    return field_name.replace("_", "-")


@dataclass
class FLConfig:
    """All knobs of a run; field `foo_bar` is run-config key `foo-bar`."""

    num_rounds: int = 3
    fraction_fit: float = 0.2
    min_fit_clients: int = 3  # 2 would let each of the pair read the other's update off the new model
    strategy: str = "fedavg"
    prox_mu: float = 0.01  # FedProx proximal term (also sent to clients)
    server_lr: float = 0.05  # FedAdam eta; FedAvgM server learning rate
    server_momentum: float = 0.0  # FedAvgM
    local_epochs: int = 5
    lr: float = 1e-3  # Adam; 1e-2 overshoots on a device's 1-4 clips (loss rises after 1 epoch)
    batch_size: int = 32
    l2: float = 1e-3
    enroll_refine: int = 0  # gradient-inversion steps when a device first enrolls (0: bank match only)
    dp: str = "central"  # central (fixed clip) | adaptive (adaptive clip) | local (LocalDpMod) | off
    noise_multiplier: float = 0.5
    clip: float = 0.5  # L2 bound of one client's update (whole tuner)
    local_epsilon: float = 10.0  # LocalDpMod per-round epsilon (dp=local)
    local_delta: float = 1e-5
    secagg: bool = True
    secagg_shares: float = 1.0  # fraction of the cohort each client shares keys with
    secagg_threshold: float = 0.5  # fraction of shares needed to unmask
    secagg_range: float = 8.0  # quantisation range of weights (|w| <= range)
    max_update_norm: float = 50.0  # robust bound where no DP clipping applies
    round_timeout: float = 300.0  # seconds the server waits for replies per stage
    dropout: float = 0.0  # simulated mid-round dropout probability per client
    eval_every: int = 1  # server-side evaluate_tuner every k rounds (0: never)
    eval_limit: int = 4  # held-back speakers per evaluation (0: all)
    gate: bool = True  # release gate: a worse global model is stored as rejected, not made current
    gate_metric: str = "ge2e_norm"  # the server-side score the gate compares (gate.py: why this one)
    gate_sigmas: float = 2.0  # tolerated drop, in standard errors of the mean per-speaker change
    population: int = 0  # users in the federation (0: number of connected nodes)
    seed: int = 0
    registry: str = ""  # model registry folder ("" = data_dir()/federated/models)
    out_dir: str = ""  # metrics JSON + plot ("" = <registry>/..)
    init_model: str = ""  # starting weights .npz when the registry is empty ("" = shipped v0)
    progress: bool = False  # tqdm bar in the server (the CLI turns it on; a deployed server logs)

    def validate(self) -> FLConfig:
        if self.num_rounds < 1:
            raise ValueError(f"num-rounds must be >= 1, got {self.num_rounds}")
        if not 0 < self.fraction_fit <= 1:
            raise ValueError(f"fraction-fit must be in (0, 1], got {self.fraction_fit}")
        if self.min_fit_clients < 1:
            raise ValueError(f"min-fit-clients must be >= 1, got {self.min_fit_clients}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.dp not in DP_MODES:
            raise ValueError(f"dp must be one of {DP_MODES}, got {self.dp!r}")
        if self.dp in ("central", "adaptive") and self.noise_multiplier <= 0:
            raise ValueError(f"noise-multiplier must be > 0 with dp={self.dp}, got {self.noise_multiplier}")
        if self.clip <= 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        if self.max_update_norm <= 0:
            raise ValueError(f"max-update-norm must be > 0, got {self.max_update_norm}")
        if self.dp == "local" and (self.local_epsilon <= 0 or not 0 < self.local_delta < 1):
            raise ValueError("local DP needs local-epsilon > 0 and 0 < local-delta < 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.secagg and self.min_fit_clients < 2:
            raise ValueError("SecAgg+ needs min-fit-clients >= 2")
        if not 0 < self.secagg_shares <= 1 or not 0 < self.secagg_threshold <= 1:
            raise ValueError("secagg-shares and secagg-threshold are fractions in (0, 1]")
        if self.secagg_range <= 0 or self.round_timeout <= 0:
            raise ValueError("secagg-range and round-timeout must be > 0")
        if self.local_epochs < 1 or not 0 < self.lr <= 1 or self.batch_size < 1:
            raise ValueError("local-epochs >= 1, 0 < lr <= 1, batch-size >= 1 required")
        if self.prox_mu < 0 or self.server_lr <= 0 or self.l2 < 0:
            raise ValueError("prox-mu >= 0, l2 >= 0, server-lr > 0 required")
        if not 0 <= self.server_momentum < 1:
            raise ValueError(f"server-momentum must be in [0, 1), got {self.server_momentum}")
        if self.enroll_refine < 0:
            raise ValueError(f"enroll-refine must be >= 0, got {self.enroll_refine}")
        if self.eval_every < 0 or self.eval_limit < 0 or self.population < 0:
            raise ValueError("eval-every, eval-limit and population must be >= 0")
        if self.gate_metric not in GATE_METRICS:
            raise ValueError(f"gate-metric must be one of {GATE_METRICS}, got {self.gate_metric!r}")
        if not self.gate_sigmas >= 0:
            raise ValueError(f"gate-sigmas must be >= 0, got {self.gate_sigmas}")
        return self

    # ------------------------------------------------------------ run config mapping
    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any] | None, **overrides: Any) -> FLConfig:
        """Build from a Flower run config: hyphenated keys, every field present (Flower fills them
        from the app's pyproject.toml); an unknown key is a ValueError, a missing one MissingConfigKey."""
        known = {f.name: f for f in fields(cls)}
        kw: dict[str, Any] = {}
        for key, value in (run_config or {}).items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ValueError(f"unknown run-config key {key!r}")
            kw[name] = _coerce(known[name].type, value)
        kw.update(overrides)
        missing = [run_key(n) for n in known if n not in kw]
        if missing:
            raise MissingConfigKey(
                f"run config lacks {', '.join(repr(k) for k in missing)}: declare it in the Flower app's "
                "pyproject.toml [tool.flwr.app.config] (src/fedtts/federated/app) or pass it with --run-config"
            )
        return cls(**kw).validate()

    def to_run_config(self) -> dict[str, bool | int | float | str]:
        """Hyphenated keys, values coerced to the declared types (Flower checks them against the app)."""
        return {run_key(f.name): _coerce(f.type, getattr(self, f.name)) for f in fields(self)}

    def replace(self, **kw: Any) -> FLConfig:
        return dataclasses.replace(self, **kw).validate()

    @property
    def clips_on_client(self) -> bool:
        return self.dp in ("central", "adaptive", "local")

    def fit_instructions(self, fl_round: int, start_sha256: str) -> FitInstructions:
        """What a device needs for round `fl_round`: the client-side part of this config."""
        return FitInstructions(
            fl_round=int(fl_round),
            local_epochs=self.local_epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            l2=self.l2,
            enroll_refine=self.enroll_refine,
            seed=self.seed,
            dropout=self.dropout,
            dp=self.dp,
            clip=self.clip,
            local_epsilon=self.local_epsilon,
            local_delta=self.local_delta,
            uniform_weight=self.dp != "off",  # under DP the bound is per user: every user weighs the same
            start_model=self.init_model,  # "" = the shipped tuner_v0_synthetic.npz
            start_sha256=start_sha256,  # devices refuse a start model whose frozen arrays differ
        )


class FitKey:
    """Keys of a round's fit config (server → device), spelled once for both sides."""

    ROUND = "fedtts-round"
    LOCAL_EPOCHS = "local-epochs"
    LR = "lr"
    BATCH_SIZE = "batch-size"
    L2 = "l2"
    ENROLL_REFINE = "enroll-refine"
    SEED = "seed"
    DROPOUT = "dropout"
    DP = "fedtts-dp"
    CLIP = "clip"
    LOCAL_EPSILON = "local-epsilon"
    LOCAL_DELTA = "local-delta"
    UNIFORM_WEIGHT = "uniform-weight"
    START_MODEL = "start-model"
    START_SHA256 = "start-sha256"
    PROXIMAL_MU = "proximal_mu"  # added by Flower's FedProx itself (absent with other strategies)


@dataclass(frozen=True)
class FitInstructions:
    """A round's instructions as the device reads them (`FitKey` ↔ field), built by the server from
    `FLConfig.fit_instructions`; `proximal_mu` is the only optional key (Flower's FedProx adds it)."""

    fl_round: int
    local_epochs: int
    lr: float
    batch_size: int
    l2: float
    enroll_refine: int
    seed: int
    dropout: float
    dp: str
    clip: float
    local_epsilon: float
    local_delta: float
    uniform_weight: bool
    start_model: str
    start_sha256: str
    proximal_mu: float = 0.0

    def to_config(self) -> dict[str, bool | int | float | str]:
        """The fit config the server sends (FedProx adds `proximal_mu` to it on its own)."""
        return {key: getattr(self, name) for name, key in _FIT_KEYS.items() if name != "proximal_mu"}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FitInstructions:
        """Read a received fit config; a missing key raises MissingConfigKey naming it."""
        missing = [k for n, k in _FIT_KEYS.items() if k not in config and n != "proximal_mu"]
        if missing:
            raise MissingConfigKey(
                f"fit config lacks {', '.join(repr(k) for k in missing)} (the server sends every "
                "key of fedtts.federated.config.FitKey; is it an older fedtts?)"
            )
        types = {f.name: f.type for f in fields(cls)}
        kw = {n: _coerce(types[n], config[k]) for n, k in _FIT_KEYS.items() if k in config}
        return cls(**kw)


_FIT_KEYS: dict[str, str] = {
    "fl_round": FitKey.ROUND,
    "local_epochs": FitKey.LOCAL_EPOCHS,
    "lr": FitKey.LR,
    "batch_size": FitKey.BATCH_SIZE,
    "l2": FitKey.L2,
    "enroll_refine": FitKey.ENROLL_REFINE,
    "seed": FitKey.SEED,
    "dropout": FitKey.DROPOUT,
    "dp": FitKey.DP,
    "clip": FitKey.CLIP,
    "local_epsilon": FitKey.LOCAL_EPSILON,
    "local_delta": FitKey.LOCAL_DELTA,
    "uniform_weight": FitKey.UNIFORM_WEIGHT,
    "start_model": FitKey.START_MODEL,
    "start_sha256": FitKey.START_SHA256,
    "proximal_mu": FitKey.PROXIMAL_MU,
}


def _coerce(type_name: Any, value: Any) -> Any:
    t = str(type_name)
    if t == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if t == "int":
        return int(value)
    if t == "float":
        return float(value)
    return str(value)
