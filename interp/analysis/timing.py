"""How long a run will take: the time ``--dry-run`` prints and a long run states as it starts.

A plan's engine time is priced from one timed forward pass: the work of every chunk follows
from the plan's layout (:func:`chunk_work`). Running the engine's own chunks would first need
the plan's source runs, as long as a tenth of a real model's run, so only a plan that small
is timed on its own chunks (see :func:`time_plan`). On the organism (run patch: heads, MLPs,
residual stream, per position, ablations, edges) the estimate came within 0.85-1.02x of the
run, on a machine other jobs were using. Commands made of chunks of prompts (``run
eviction``, ``run block-relevance``) get a rougher time (:func:`time_work`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from time import perf_counter

import torch

from interp.engine.batched import Engine
from interp.engine.memory import Costs, Step, WorkEstimate

ENOUGH_SECONDS = 1.0
"""What is timed shorter than this is timed again, up to five times, and the median counts: a
pass of milliseconds on a machine other jobs share can lose its time slice and read as several
times slower; a longer one averages that out by itself."""
REFINE_SECONDS = 3.0
"""The most :func:`time_plan` spends running the engine's own chunks (see there)."""
RUN_BUDGET_SECONDS = 10.0
"""What a run spends timing its engine plans as it starts (``--dry-run`` times every plan):
once spent, the remaining plans are priced by their work at the rate of the measured plan of
nearest prompt width. A 13-task task-vector run has 78 plans, and timing each one cost minutes
before any work began."""
SAMPLED = (0.5, 0.7, 0.9)
"""The chunks the engine runs to time itself: these quantiles of the chunks by work (the
largest chunk would cost the most to time, the smallest are mostly overhead)."""


def seconds_of(call) -> float:
    """The time ``call`` takes: the median of up to five runs, stopping once
    :data:`ENOUGH_SECONDS` have been spent."""
    times: list[float] = []
    while len(times) < 5 and sum(times) < ENOUGH_SECONDS:
        tick = perf_counter()
        call()
        times.append(perf_counter() - tick)
    return sorted(times)[(len(times) - 1) // 2]  # of an even number, the lower middle


def chunk_work(layout, rows: list[int], kind: str, n_pos: int, n_layers: int) -> int:
    """A chunk's work in position-layers: each row computes the positions from the chunk's
    start through every layer from its own start (on the fast path; otherwise from the chunk's
    earliest layer), plus its read-out. On the organism and SmolLM2 a chunk's measured time
    follows it with a correlation of 0.98-0.995."""
    if kind == "bare":  # rows with no edits are read off the base run
        return 0
    if kind == "last":  # the last layer's tail at the read-out position alone
        return 2 * len(rows)
    pos = min(layout.starts[j][0] for j in rows)
    first = min(layout.starts[j][1] for j in rows)
    layers = [layout.starts[j][1] if layout.native else first for j in rows]
    return sum((n_pos - pos) * (n_layers - layer) + 1 for layer in layers)


@torch.no_grad()
def time_plan(engine: Engine, plan, clean, corrupted=None, workers: int = 1) -> dict:
    """``seconds``: how long ``engine.run(plan, clean, corrupted)`` will take, and
    ``measured_in``: what measuring took.

    One forward pass over a chunk's worth of the base prompts is timed, which gives seconds
    per position-layer; the source runs (full passes over every prompt) and the plan's work
    (:func:`chunk_work`, spread over ``workers``) are priced at that rate, plus the one-time
    cost the first pass paid (the fast path's plain copy of the model). Where the source runs
    and a few chunks would take under :data:`REFINE_SECONDS` by that price, the engine then
    runs them and its own rate replaces the plain pass's: small models are bound by the cost
    of each operation rather than by arithmetic, so a chunk that computes a few positions
    costs more per position-layer than a full pass (1.4x off on the organism's per-position
    sweep without it)."""
    start = perf_counter()
    base = corrupted if plan.base == "corrupted" and corrupted is not None else clean
    lay = engine.layout(plan, clean, base)
    cfg, (batch, n_pos) = engine.model.cfg, base.tokens.shape
    rows = min(engine.rows_per_chunk(n_pos), max(1, len(plan)))
    pick = torch.arange(rows) % batch
    tokens, mask = base.tokens[pick], base.attention_mask[pick]
    if lay.native:
        body = engine.model.plain_model().base_model  # no logits: chunks read out one position

        def forward(n: int) -> None:
            body(input_ids=tokens[:n], attention_mask=mask[:n])
    else:

        def forward(n: int) -> None:
            engine.model.run_with_hooks(tokens[:n], [], mask[:n])

    forward(1)  # the first pass pays the one-time costs, which the run pays too
    once = perf_counter() - start
    per_unit = seconds_of(lambda: forward(rows)) / (rows * n_pos * cfg.n_layers)
    work = [chunk_work(lay, c, kind, n_pos, cfg.n_layers) for kind, c in lay.chunks]
    order = sorted(range(len(work)), key=work.__getitem__)
    picks = sorted({order[int(q * len(order))] for q in SAMPLED} if work else ())
    sources = (1 + (corrupted is not None)) * batch * n_pos * cfg.n_layers
    if per_unit * (sources + sum(work[i] for i in picks)) > REFINE_SECONDS:
        seconds = once + per_unit * (sources + sum(work) / max(1, workers))
        return {"seconds": seconds, "measured_in": perf_counter() - start}
    tick = perf_counter()
    metric = "logit_diff" if corrupted is not None else "prob"  # one that applies
    job = engine.prepare(plan, clean, corrupted, metric)
    prepared = perf_counter() - tick
    per_unit = seconds_of(lambda: [engine.run_chunk(job, i) for i in picks]) / max(
        1, sum(work[i] for i in picks)
    )
    seconds = once + prepared + per_unit * sum(work) / max(1, workers)
    return {"seconds": seconds, "measured_in": perf_counter() - start}


_BUDGET: ContextVar[float | None] = ContextVar("iclscope_timing_budget", default=None)


@contextmanager
def measuring_budget(seconds: float | None) -> Iterator[None]:
    """Inside, :func:`time_steps` measures plans until ``seconds`` are spent and prices the
    rest by their work (None: measure every plan)."""
    token = _BUDGET.set(seconds)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def plan_units(engine: Engine, plan, clean, corrupted=None, workers: int = 1) -> float:
    """A plan's work in position-layers as :func:`time_plan` prices it: its source runs and its
    chunks (:func:`chunk_work`), the chunks spread over ``workers``."""
    base = corrupted if plan.base == "corrupted" and corrupted is not None else clean
    lay = engine.layout(plan, clean, base)
    cfg, (batch, n_pos) = engine.model.cfg, base.tokens.shape
    work = sum(chunk_work(lay, c, kind, n_pos, cfg.n_layers) for kind, c in lay.chunks)
    sources = (1 + (corrupted is not None)) * batch * n_pos * cfg.n_layers
    return sources + work / max(1, workers)


def time_steps(engine: Engine, steps: list[Step], costs: Costs) -> Costs:
    """``costs`` (the :func:`~interp.engine.memory.estimate_steps` of ``steps``) with each
    step's time (:func:`time_plan`), or, once a :func:`measuring_budget` is spent, its work
    (:func:`plan_units`) at the seconds per unit of the measured step whose prompts are
    nearest in width."""
    budget = _BUDGET.get()
    rates: list[tuple[int, float]] = []  # (prompt width, seconds per unit) of measured steps
    spent, timed = 0.0, []
    for (name, plan, clean, corrupted), (_, est) in zip(steps, costs.steps):
        width = clean.tokens.shape[1]
        if budget is not None and rates and spent >= budget:
            rate = min(rates, key=lambda r: abs(r[0] - width))[1]
            units = plan_units(engine, plan, clean, corrupted, est.workers)
            found = {"seconds": rate * units, "measured_in": 0.0}
        else:
            found = time_plan(engine, plan, clean, corrupted, est.workers)
            spent += found["measured_in"]
            if budget is not None:
                units = plan_units(engine, plan, clean, corrupted, est.workers)
                rates.append((width, found["seconds"] / max(1.0, units)))
        timed.append((name, replace(est, **found)))
    return Costs(timed)


def time_work(work: WorkEstimate, module) -> WorkEstimate:
    """``work`` with its time: one forward pass of ``module`` (a torch causal LM) over random
    tokens of the largest chunk's shape, scaled by tokens to every chunk and pass. Rough: an
    eviction run's decodes take less than a full pass, its attention patterns more."""
    n, positions = work.largest
    if not n or not positions:
        return work
    start = perf_counter()
    vocab = module.get_input_embeddings().num_embeddings
    tokens = torch.randint(vocab, (n, positions), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        module(input_ids=tokens[:1, :8])  # warm-up: the first call pays one-time costs
        per_token = seconds_of(lambda: module(input_ids=tokens)) / tokens.numel()
    per_chunk = work.forward_passes / max(1, work.chunks)
    seconds = per_token * work.tokens * per_chunk / max(1, work.workers)
    return replace(work, seconds=seconds, measured_in=perf_counter() - start)
