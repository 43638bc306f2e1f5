"""What an atlas will cost: each part's own estimate, or the run it will reuse.

A dry run asks every part that is not reused for its estimate (loading the model as that part
does, and timing a few of its chunks), so the atlas's estimate is the sum of estimates the
parts themselves stand behind. During a run the atlas only lists what it will reuse and run:
each part then makes its own estimate as it starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from circuits.atlas.config import Part
from interp.analysis.base import CostEstimate


@dataclass
class PartCost:
    """One part's estimate (None when reused or not estimated) and its seconds."""

    part: Part
    estimate: CostEstimate | None
    seconds: float | None
    reuse: Path | None = None


@dataclass
class AtlasCosts:
    """The parts' costs, in the shape ``--dry-run`` prints and checks."""

    parts: list[PartCost] = field(default_factory=list)
    measured_in: float = 0.0

    @property
    def seconds(self) -> float | None:
        known = [p.seconds for p in self.parts if p.reuse is None]
        if any(s is None for s in known):
            return None
        return sum(known)

    def lines(self) -> list[str]:
        out = []
        for i, p in enumerate(self.parts, start=1):
            head = f"part {i}/{len(self.parts)}: {p.part.kind} on {p.part.task}"
            if p.reuse is not None:
                out.append(f"{head}: reuses {p.reuse.name} (no cost)")
                continue
            took = f" (~{p.seconds:.0f} s)" if p.seconds is not None else ""
            out.append(f"{head}: will run{took}")
            if p.estimate is not None:
                out += [f"  {line}" for line in p.estimate.lines()]
        return out

    def check(self, budget_gb: float, sources_knob=None) -> None:
        for p in self.parts:
            if p.estimate is not None:
                p.estimate.costs.check(budget_gb, p.estimate.knob)


def atlas_estimate(
    model: str, parts: list[Part], out: Path | None, workers: int = 1, timed: bool = True
) -> CostEstimate:
    """The atlas's estimate: each part reused from ``out`` or estimated by its own analysis
    (and timed, with ``timed``)."""
    from circuits.atlas.parts import find_reusable
    from interp.analysis.registry import get

    start = time.perf_counter()
    costs = AtlasCosts()
    for part in parts:
        reuse = find_reusable(out, part, model) if out is not None else None
        if reuse is not None or not timed:
            costs.parts.append(PartCost(part, None, None, reuse))
            continue
        t0 = time.perf_counter()
        analysis = get(part.kind)
        estimate = analysis.estimate(model, part.task, part.config, workers)
        seconds = None
        if estimate is not None:
            if hasattr(estimate.costs, "largest"):  # chunks of prompts: timed on the model
                estimate = estimate.with_time(analysis.load(model, part.config))
            seconds = estimate.seconds(time.perf_counter() - t0)
        costs.parts.append(PartCost(part, estimate, seconds))
    costs.measured_in = 2 * (time.perf_counter() - start)
    notes = ("each part also trains or fits what its own estimate lists besides",)
    return CostEstimate(costs, knob="each part's own options", notes=notes)
