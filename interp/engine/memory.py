"""What a plan will cost before it runs: the ``--dry-run`` estimate.

A worker (this process with the local executor, each Ray actor with the Ray one) holds three
things at its peak:

* the **model**: its weights, twice where the engine's fast path runs (the hooked backend's
  copy and the plain Hugging Face copy the module forward drives);
* the **sources**: the job shipped to it, i.e. the source banks (every prompt's clean and
  corrupted activation at each patched hook, plus the mean, zeros and plan tensors) and the base
  run's recording (the residual stream at each resume layer; on the fast path also every
  layer's residual stream, keys and values, to resume mid-prompt);
* one **chunk**'s activations, sized by the engine's own rule (``Engine.rows_per_chunk``).

Workers do not share any of it, so the estimate is per worker whatever their number; more
workers make a sweep faster, not smaller. A plan over the budget is refused with the knob that
brings it under: ``--max-batch`` when one chunk is the problem, ``--prompts`` when the sources
are, a bigger machine when the model alone does not fit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from interp.engine.batched import Engine, mlp_width, row_floats
from interp.engine.plan import InterventionPlan
from interp.errors import IclscopeError
from interp.prompts import PromptBatch

GIB = 2**30


@dataclass(frozen=True)
class Estimate:
    """A plan's size, chunking and per-worker peak memory (GiB), before any forward pass."""

    rows: int
    chunks: int
    rows_per_chunk: int
    forward_passes: int
    """Chunks plus the source runs (clean, and corrupted when given): each at most one full
    forward of a chunk, less where rows resume from a later layer or position."""
    fast_path: bool
    model_gb: float
    sources_gb: float
    chunk_gb: float
    row_gb: float
    """One row's share of a chunk's activations."""
    workers: int
    seconds: float | None = None
    """The engine's wall time for the plan, from one timed forward pass
    (:func:`interp.analysis.timing.time_plan`); None where it was not measured."""
    measured_in: float = 0.0
    """The seconds the measurement itself took."""

    @property
    def peak_gb(self) -> float:
        return self.model_gb + self.sources_gb + self.chunk_gb

    def lines(self) -> list[str]:
        return [
            f"plan: {self.rows} rows in {self.chunks} chunks of up to {self.rows_per_chunk} rows",
            f"forward passes: {self.forward_passes} (the chunks and the source runs)",
            f"peak memory per worker: {self.peak_gb:.3f} GiB = model {self.model_gb:.3f} + "
            f"sources {self.sources_gb:.3f} + one chunk {self.chunk_gb:.3f}"
            + (" (fast path: two copies of the weights)" if self.fast_path else ""),
            f"workers: {self.workers}, {self.workers * self.peak_gb:.3f} GiB in all",
        ]

    def as_dict(self) -> dict:
        return asdict(self) | {"peak_gb": self.peak_gb}

    def check(self, budget_gb: float, sources_knob: str = "--prompts") -> None:
        """Refuse a plan whose peak per worker exceeds ``budget_gb``, naming the knob
        (``sources_knob``: the command's option that sets how many prompts are cached)."""
        if self.peak_gb <= budget_gb:
            return
        what = (
            f"the plan needs about {self.peak_gb:.3f} GiB per worker (model "
            f"{self.model_gb:.3f} + sources {self.sources_gb:.3f} + one chunk "
            f"{self.chunk_gb:.3f}), over the budget of {budget_gb:.3f} GiB"
        )
        room = budget_gb - self.model_gb - self.sources_gb
        per_row = self.row_gb
        if room >= per_row:
            fix = (
                f"lower --max-batch to {int(room / per_row)} rows per forward pass "
                f"(now {self.rows_per_chunk}); more workers do not lower it"
            )
        elif budget_gb - self.model_gb >= per_row:
            fix = (
                f"use fewer {sources_knob} (the cached source runs grow with prompts x positions)"
                ", then lower --max-batch if needed; more workers do not lower it"
            )
        else:
            fix = _model_alone(self.model_gb)
        raise IclscopeError(what, fix=fix)


def _model_alone(model_gb: float) -> str:
    return (
        f"the model alone takes {model_gb:.3f} GiB: run on machines with more "
        "memory (raise --memory-budget to what they have)"
    )


def _hook_floats(cfg, hook: str, n_pos: int) -> int:
    """Floats one prompt holds at ``hook``."""
    kind = hook.split(".", 2)[-1]
    if kind in ("attn.hook_z", "attn.hook_q", "attn.hook_result"):
        return n_pos * cfg.n_heads * cfg.d_head
    if kind in ("attn.hook_k", "attn.hook_v"):
        return n_pos * cfg.n_kv_heads * cfg.d_head
    if kind in ("attn.hook_attn_scores", "attn.hook_pattern"):
        return cfg.n_heads * n_pos * n_pos
    if kind.startswith("mlp."):  # inside the MLP: its hidden layer
        return n_pos * mlp_width(cfg)  # the config's intermediate size, where it has one
    return n_pos * cfg.d_model


def _model_bytes(model) -> int:
    hf = getattr(model, "hf_model", None)
    params = hf.parameters() if hf is not None else model.plain_model().parameters()
    return sum(p.numel() * p.element_size() for p in params)


def estimate(
    engine: Engine,
    plan: InterventionPlan,
    clean: PromptBatch,
    corrupted: PromptBatch | None = None,
    workers: int = 1,
    resume: bool = True,
) -> Estimate:
    """The memory and forward passes ``engine.run(plan, clean, corrupted)`` will need, from
    the plan's layout and the model's shape alone (no forward pass)."""
    base = corrupted if plan.base == "corrupted" and corrupted is not None else clean
    lay = engine.layout(plan, clean, base, resume)
    cfg, n_pos, batch = engine.model.cfg, base.tokens.shape[1], len(clean)
    weights = _model_bytes(engine.model)
    size = 4  # the engine computes in float32 on CPU
    n_src = 2 * batch + 2 + len(plan.tensors)  # clean, corrupted, mean, zero, tensors
    banks = sum(n_src * _hook_floats(cfg, h, n_pos) for h in plan.hooks())
    recorded = {*plan.hooks(), *lay.resume_hooks}  # the base run's cache, each hook once
    record = sum(batch * _hook_floats(cfg, h, n_pos) for h in recorded)
    if lay.native:  # resid_pre, keys and values of every layer, to resume mid-prompt
        record += batch * n_pos * cfg.n_layers * (cfg.d_model + 2 * cfg.n_kv_heads * cfg.d_head)
    per = engine.rows_per_chunk(n_pos)
    floats_per_row = row_floats(cfg, n_pos)
    chunk_rows = min(per, max((len(rows) for _, rows in lay.chunks), default=0))
    return Estimate(
        rows=len(plan),
        chunks=len(lay.chunks),
        rows_per_chunk=max(1, chunk_rows),
        forward_passes=len(lay.chunks) + 1 + (corrupted is not None),
        fast_path=lay.native,
        model_gb=weights * (2 if lay.native else 1) / GIB,
        sources_gb=(banks + record) * size / GIB,
        chunk_gb=max(1, chunk_rows) * floats_per_row * size / GIB,
        row_gb=floats_per_row * size / GIB,
        workers=workers,
    )


Step = tuple[str, InterventionPlan, PromptBatch, PromptBatch | None]
"""One engine run of a command: its name, plan, clean and corrupted prompts."""


@dataclass(frozen=True)
class Costs:
    """The estimates of a command's engine runs, one after another on the same workers: the
    peak per worker is the largest step's, the forward passes add up."""

    steps: list[tuple[str, Estimate]]

    @property
    def worst(self) -> tuple[str, Estimate]:
        return max(self.steps, key=lambda s: s[1].peak_gb)

    @property
    def forward_passes(self) -> int:
        return sum(e.forward_passes for _, e in self.steps)

    @property
    def seconds(self) -> float | None:
        """The steps' measured engine time, one after another (None if one was not timed)."""
        times = [e.seconds for _, e in self.steps]
        return None if None in times else sum(times)

    @property
    def measured_in(self) -> float:
        return sum(e.measured_in for _, e in self.steps)

    def lines(self) -> list[str]:
        if len(self.steps) == 1:
            return self.steps[0][1].lines()
        out = []
        for name, est in self.steps:
            out += [f"{name}:"] + [f"  {line}" for line in est.lines()[:3]]
        name, est = self.worst
        out += [
            f"in all: {len(self.steps)} engine plans, "
            f"{sum(e.rows for _, e in self.steps)} rows in "
            f"{sum(e.chunks for _, e in self.steps)} chunks, "
            f"forward passes: {self.forward_passes}",
            f"peak memory per worker: {est.peak_gb:.3f} GiB (at {name})",
            est.lines()[3],
        ]
        return out

    def check(self, budget_gb: float, sources_knob: str | dict[str, str] = "--prompts") -> None:
        """Refuse the command when its largest step does not fit, naming the step and knob
        (``sources_knob``: one for every step, or by step name, ``""`` for the default)."""
        name, est = self.worst
        if isinstance(sources_knob, dict):
            sources_knob = sources_knob.get(name, sources_knob.get("", "--prompts"))
        try:
            est.check(budget_gb, sources_knob)
        except IclscopeError as err:
            if len(self.steps) == 1:
                raise
            raise IclscopeError(f"{name}: {err.problem}", fix=err.fix) from None


def estimate_steps(engine: Engine, steps: list[Step], workers: int = 1) -> Costs:
    """:func:`estimate` of each of a command's engine runs."""
    return Costs(
        [(name, estimate(engine, plan, c, k, workers=workers)) for name, plan, c, k in steps]
    )


@dataclass(frozen=True)
class WorkEstimate:
    """What a command made of chunks of prompts (no engine plan: eviction, block relevance)
    will cost per worker, before any forward pass: the model's weights and the activations of
    its largest chunk. Nothing is shipped but the prompts, so there are no sources; the chunk
    option (``chunk_knob``) is what brings a chunk under a budget."""

    prompts: int
    chunks: int
    prompts_per_chunk: int
    """Prompts in the largest chunk (by memory)."""
    forward_passes: int
    passes: str
    """What the forward passes are, in words."""
    model_gb: float
    chunk_gb: float
    prompt_gb: float
    """One prompt's share of the largest chunk."""
    holds: str
    """What a chunk's activations are, in words."""
    workers: int
    chunk_knob: str
    tokens: int = 0
    """Prompts times positions, over every chunk."""
    largest: tuple[int, int] = (0, 0)
    """The largest chunk's (prompts, positions): the shape
    :func:`interp.analysis.timing.time_work` times."""
    seconds: float | None = None
    """Roughly the run's time: every forward pass timed as a full pass over its chunk; None
    until :func:`interp.analysis.timing.time_work` measures it."""
    measured_in: float = 0.0

    @property
    def peak_gb(self) -> float:
        return self.model_gb + self.chunk_gb

    def lines(self) -> list[str]:
        return [
            f"prompts: {self.prompts} in {self.chunks} chunks "
            f"(the largest: {self.prompts_per_chunk} prompts)",
            f"forward passes: {self.forward_passes} ({self.passes})",
            f"peak memory per worker: {self.peak_gb:.3f} GiB = model {self.model_gb:.3f} + "
            f"one chunk {self.chunk_gb:.3f} ({self.holds})",
            f"workers: {self.workers}, {self.workers * self.peak_gb:.3f} GiB in all",
        ]

    def as_dict(self) -> dict:
        return asdict(self) | {"peak_gb": self.peak_gb}

    def check(self, budget_gb: float, sources_knob: str = "") -> None:
        """Refuse a command whose peak per worker exceeds ``budget_gb``, naming the chunk
        option (there are no sources; ``sources_knob`` is taken for :class:`Costs`' sake)."""
        if self.peak_gb <= budget_gb:
            return
        what = (
            f"the run needs about {self.peak_gb:.3f} GiB per worker (model "
            f"{self.model_gb:.3f} + one chunk {self.chunk_gb:.3f}), over the budget of "
            f"{budget_gb:.3f} GiB"
        )
        room = budget_gb - self.model_gb
        if room >= self.prompt_gb:
            fix = (
                f"lower {self.chunk_knob}: room for {int(room / self.prompt_gb)} of these "
                f"prompts per chunk (now {self.prompts_per_chunk}); more workers do not lower it"
            )
        else:
            fix = _model_alone(self.model_gb)
        raise IclscopeError(what, fix=fix)


def estimate_work(
    chunks: Sequence[tuple[int, int]],
    prompt_floats: Callable[[int], int],
    passes_per_chunk: int,
    passes: str,
    model_gb: float,
    holds: str,
    chunk_knob: str,
    workers: int = 1,
) -> WorkEstimate:
    """:class:`WorkEstimate` of ``chunks`` (each ``(prompts, positions)``, as the analysis lays
    them out), where one prompt of ``positions`` tokens holds ``prompt_floats(positions)``
    float32 values at a chunk's peak."""
    sizes = [
        (n * prompt_floats(pos) * 4 / GIB, n, prompt_floats(pos) * 4 / GIB, pos)
        for n, pos in chunks
    ]
    chunk_gb, n, prompt_gb, positions = max(sizes, default=(0.0, 0, 0.0, 0))
    return WorkEstimate(
        prompts=sum(n for n, _ in chunks),
        chunks=len(chunks),
        prompts_per_chunk=n,
        forward_passes=len(chunks) * passes_per_chunk,
        passes=passes,
        model_gb=model_gb,
        chunk_gb=chunk_gb,
        prompt_gb=prompt_gb,
        holds=holds,
        workers=workers,
        chunk_knob=chunk_knob,
        tokens=sum(n * pos for n, pos in chunks),
        largest=(n, positions),
    )


def weights_gb(folder: str) -> float:
    """A model's float32 weights, from its config alone: the model is built on the meta
    device, so nothing is loaded or allocated (a dry run should cost no model load)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters()) * 4 / GIB


def machine_memory_gb() -> float:
    """This machine's memory: the default budget of one worker."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
