"""Which family the demo's circuit runs on: the one whose demonstrations help most.

A circuit of in-context learning is only worth dissecting where the model uses its context.
The demo has already scored every family at 0 shots and at the circuit's shots, so the choice
reads that table and costs no forward pass: among the classification families whose labels are
single tokens on the model (the circuit reads each label at one position), the one with the
largest gain from 0 shots to k shots; when none gains, the arbitrary-label family, whose labels
can only come from the demonstrations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class CircuitChoice:
    """The chosen ``task``, ``why`` in one sentence, and the ``gains`` (accuracy at ``shots``
    minus at 0 shots) of every eligible family, largest first."""

    task: str
    why: str
    shots: int
    gains: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        """The keys the demo's summary.json records the choice under."""
        return {
            "circuit_task": self.task,
            "circuit_task_reason": self.why,
            "circuit_task_gains": {k: round(v, 6) for k, v in self.gains.items()},
        }


def choose_circuit_task(
    by_shots: pd.DataFrame, eligible: Sequence[str], fallback: str, shots: int = 4
) -> CircuitChoice:
    """From the evaluation table (``task``, ``kind``, ``shots``, ``accuracy``): the family of
    ``eligible`` (classification, single-token labels) with the largest gain from 0 to
    ``shots`` (the largest evaluated count when ``shots`` was not), the first in suite order on
    a tie; ``fallback`` when no eligible family gains."""
    table = by_shots[by_shots.task.isin(eligible)]
    counts = set(by_shots.shots)
    k = shots if shots in counts else max(counts)
    acc = table.pivot_table(index="task", columns="shots", values="accuracy", sort=False)
    gains: dict[str, float] = {}
    if 0 in acc.columns and k in acc.columns:
        order = [t for t in eligible if t in acc.index]
        gains = {t: float(acc.at[t, k] - acc.at[t, 0]) for t in order}
    gains = dict(sorted(gains.items(), key=lambda kv: -kv[1]))  # stable: suite order on ties
    listed = ", ".join(f"{t} {g:+.3f}" for t, g in gains.items()) or "none was scored"
    best = next(iter(gains), None)
    if best is not None and gains[best] > 0:
        others = [f"{t} {g:+.3f}" for t, g in gains.items() if t != best]
        why = (
            f"{best} gains the most from its demonstrations among the classification families "
            f"whose labels are single tokens on this model: {acc.at[best, 0]:.3f} at 0 shots, "
            f"{acc.at[best, k]:.3f} at {k} ({gains[best]:+.3f}"
            + (f"; {', '.join(others)}" if others else "")
            + ")"
        )
        return CircuitChoice(best, why, k, gains)
    why = (
        f"no classification family gains from 0 to {k} shots ({listed}), so the circuit runs "
        f"on the arbitrary-label family {fallback}, whose labels only the demonstrations give"
    )
    return CircuitChoice(fallback, why, k, gains)
