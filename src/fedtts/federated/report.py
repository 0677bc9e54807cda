"""Per-round metrics of a federated run: JSON log, PNG plot, CLI summary.

Why a file: a run is judged afterwards (similarity vs. ε, bytes, dropouts), and the web UI's
federation panel and the benchmark read the same JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["RunLog", "plot_rounds", "summary_table", "table_header", "table_row"]


class RunLog:
    """Rounds appended as they finish; the file is rewritten atomically each time."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"config": config, "rounds": []}
        if self.path.is_file():  # a restarted server appends to its previous log
            try:
                old = json.loads(self.path.read_text())
                self.data["rounds"] = list(old.get("rounds", []))
            except (json.JSONDecodeError, OSError):
                pass

    @property
    def rounds(self) -> list[dict[str, Any]]:
        return self.data["rounds"]

    def add(self, row: dict[str, Any]) -> None:
        self.rounds.append(row)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=float))
        tmp.replace(self.path)

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        return json.loads(Path(path).read_text())


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            xs.append(r["round"])
            ys.append(float(v))
    return xs, ys


def plot_rounds(rows: list[dict[str, Any]], out: Path, title: str = "fedtts federated run") -> Path:
    """Similarity, loss, ε, clients, bytes and client compute time per round, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("similarity", "held-back similarity (server eval)"),
        ("train_loss", "client loss after local fit"),
        ("epsilon", "ε spent (user level)"),
        ("clients_ok", "clients aggregated"),
        ("bytes_total", "bytes exchanged"),
        ("compute_s", "client compute s (mean)"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (key, label) in zip(axes.ravel(), panels, strict=True):
        xs, ys = _series(rows, key)
        if key == "train_loss":
            xs2, ys2 = _series(rows, "start_loss")
            if xs2:
                ax.plot(xs2, ys2, "o--", color="0.6", label="before fit")
        ax.plot(xs, ys, "o-", label=label)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.grid(alpha=0.3)
        if key == "train_loss" and xs:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _fmt(v: Any, spec: str) -> str:
    if v is None:
        return "-"
    return format(v, spec)


_GATE = {"accepted": "ok", "rejected": "REJECTED", "ungated": "ungated"}


def table_header() -> str:
    head = (
        f"{'round':<5} {'ver':>4} {'ok/sampled':>10} {'drop':>4} {'rej':>3} {'loss':>7} "
        f"{'sim':>6} {'eps':>7} {'kB':>8} {'s':>6}  gate"
    )
    return head + "\n" + "-" * len(head)


def table_row(r: dict[str, Any]) -> str:
    """One round: `gate` is the release gate's verdict on the round's new model ("-": none was made).
    The line starts with the round number, not blanks: filtering indented traceback lines out of a
    log (`grep -v '^ '`) must not take the rows with them."""
    return (
        f"{r['round']:<5} {_fmt(r.get('version'), 'd'):>4} "
        f"{str(r.get('clients_ok', 0)) + '/' + str(r.get('clients_sampled', 0)):>10} "
        f"{r.get('failures', 0):>4} {r.get('rejected', 0):>3} {_fmt(r.get('train_loss'), '.4f'):>7} "
        f"{_fmt(r.get('similarity'), '.3f'):>6} {_fmt(r.get('epsilon'), '.3f'):>7} "
        f"{r.get('bytes_total', 0) / 1000:>8.1f} {_fmt(r.get('round_s'), '.1f'):>6}  "
        f"{_GATE.get(str(r.get('gate')), '-')}"
    )


def summary_table(rows: list[dict[str, Any]]) -> str:
    return "\n".join([table_header(), *(table_row(r) for r in rows)])
