"""User-level privacy accounting (RDP via dp-accounting) for DP-FedAvg rounds.

Why: every round the server must print the (epsilon, delta) spent so far, with
delta < 1/population, so users can see what the federation costs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AccountantConfig", "PrivacyAccountant"]


@dataclass
class AccountantConfig:
    """Noise multiplier z (std = z * clip), sampling rate q = clients/population."""

    noise_multiplier: float
    sampling_rate: float
    population: int
    delta: float | None = None  # default: 1 / (10 * population)

    def validate(self) -> AccountantConfig:
        if self.noise_multiplier <= 0:
            raise ValueError(f"noise_multiplier must be > 0, got {self.noise_multiplier}")
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"sampling_rate must be in (0, 1], got {self.sampling_rate}")
        if self.population < 1:
            raise ValueError(f"population must be >= 1, got {self.population}")
        if self.delta is None:
            self.delta = 1.0 / (10 * self.population)
        if not 0 < self.delta < 1.0 / self.population:
            raise ValueError(f"delta must be in (0, 1/population={1 / self.population:g}), got {self.delta}")
        return self


@dataclass
class PrivacyAccountant:
    """Composes one Poisson-subsampled Gaussian event per round (user-level DP)."""

    cfg: AccountantConfig
    rounds: int = 0
    history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cfg.validate()

    def epsilon(self, rounds: int | None = None) -> float:
        """Epsilon after `rounds` rounds (default: rounds stepped so far)."""
        import dp_accounting
        from dp_accounting.rdp import RdpAccountant

        n = self.rounds if rounds is None else rounds
        if n == 0:
            return 0.0
        # integer orders: the library's fractional orders near 1 fail to converge (noisy warnings)
        acc = RdpAccountant(orders=[float(a) for a in range(2, 257)])
        event = dp_accounting.PoissonSampledDpEvent(
            self.cfg.sampling_rate, dp_accounting.GaussianDpEvent(self.cfg.noise_multiplier)
        )
        acc.compose(dp_accounting.SelfComposedDpEvent(event, n))
        return float(acc.get_epsilon(self.cfg.delta))

    def step(self) -> tuple[float, float]:
        """Account one more round; return cumulative (epsilon, delta)."""
        self.rounds += 1
        eps = self.epsilon()
        self.history.append(eps)
        return eps, float(self.cfg.delta)
