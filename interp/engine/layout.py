"""How a plan runs, decided before any forward pass: each row's start, the chunks of rows that
share a forward pass (:class:`Layout`), and the plan with its source runs cached (:class:`Job`).

A :class:`Job` is everything a chunk's forward pass reads besides the model's weights, so it is
what an executor ships to other machines' engines once. Both are plain data, kept apart from
the engine that makes and runs them so that the engine's module holds the run itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from torch import Tensor

from interp.engine.metrics import Metric
from interp.engine.plan import InterventionPlan
from interp.engine.sources import SourceBank
from interp.models.module_forward import Recording


@dataclass
class Layout:
    """How a plan runs: whether on the fast path and resumed, each row's start (position,
    layer), the rows that start from a layer's tail, and the chunks, one forward pass each:
    ``("last", rows)`` for rows edited only in the last layer's tail, ``("pass", rows)`` for a
    resumed pass (rows in order of their start layer), and ``("bare", rows)`` for rows with no
    edits, read off the base run with no forward pass at all."""

    native: bool
    resume: bool
    tails: dict[int, int]
    starts: list[tuple[int, int]]
    chunks: list[tuple[str, list[int]]]
    resume_hooks: list[str]


@dataclass
class Job:
    """A plan with its source runs cached: everything a chunk's forward pass reads besides the
    model's weights (plain tensors, the plan and the metric), so it can be shipped once to
    other machines' engines, which then need only chunk numbers."""

    plan: InterventionPlan
    layout: Layout
    banks: dict[str, SourceBank]
    base_rec: Recording
    base_tokens: Tensor  # (batch, pos)
    base_mask: Tensor  # (batch, pos)
    metric: Metric
    s_q: Tensor  # (batch,)
    n_pos: int
    base_at_sq: Tensor | None = None  # (batch, d_vocab): the base run's logits at s_q


def chunk_rows(order: list[int], start, per: int, min_rows: int) -> list[list[int]]:
    """Split rows (sorted by start position) into forward passes of at most ``per`` rows.
    Rows starting at the same position go together; neighbouring positions are merged while a
    chunk has fewer than ``min_rows`` rows, trading a little recomputation for fewer calls."""
    groups = [list(g) for _, g in itertools.groupby(order, key=lambda j: start(j)[0])]
    chunks: list[list[int]] = []
    current: list[int] = []
    for group in groups:
        if current and (len(current) >= min_rows or len(current) + len(group) > per):
            chunks.append(current)
            current = []
        current += group
        while len(current) > per:
            chunks.append(current[:per])
            current = current[per:]
    if current:
        chunks.append(current)
    return chunks
