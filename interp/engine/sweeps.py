"""Plans for the classic sweeps: every head, every residual position, every MLP, every edge.

Each function only *describes* the sweep as plan rows; the engine decides how to batch it.
:func:`with_baselines` adds the two unedited runs every sweep is read against, as rows of the
same plan, so they cost no extra call and go through the same machinery as the components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from interp.engine.plan import Base, InterventionPlan, Patch, PlanRow, Source
from interp.models import ModelConfig


def head_sweep(
    cfg: ModelConfig,
    prompts: Sequence[int],
    n_pos: int | None = None,
    source: Source = "clean",
    base: Base = "corrupted",
) -> InterventionPlan:
    """Patch each head's ``hook_z`` from ``source``: over all positions, or (``n_pos`` given)
    at each position separately."""
    rows = []
    for prompt in prompts:
        for layer in range(cfg.n_layers):
            for head in range(cfg.n_heads):
                for pos in [None] if n_pos is None else range(n_pos):
                    patch = Patch(
                        f"blocks.{layer}.attn.hook_z",
                        source,
                        heads=(head,),
                        positions=None if pos is None else (pos,),
                    )
                    labels = (("layer", layer), ("head", head)) + (
                        () if pos is None else (("position", pos),)
                    )
                    rows.append(PlanRow(prompt, (patch,), labels))
    return InterventionPlan(rows, base=base)


def resid_sweep(
    cfg: ModelConfig,
    prompts: Sequence[int],
    n_pos: int,
    hook: str = "hook_resid_pre",
    source: Source = "clean",
    base: Base = "corrupted",
) -> InterventionPlan:
    """Patch one residual-stream (or ``hook_mlp_out`` / ``hook_attn_out``) position per row."""
    rows = [
        PlanRow(
            prompt,
            (Patch(f"blocks.{layer}.{hook}", source, positions=(pos,)),),
            (("layer", layer), ("position", pos)),
        )
        for prompt in prompts
        for layer in range(cfg.n_layers)
        for pos in range(n_pos)
    ]
    return InterventionPlan(rows, base=base)


BASELINE = "baseline"
"""The label of a baseline row; its value names the run it reproduces, ``clean`` or
``corrupted``."""


def with_baselines(plan: InterventionPlan, prompts: Sequence[int]) -> InterventionPlan:
    """``plan`` followed, per prompt, by one row that is the clean run and one that is the
    corrupted run.

    A row without edits is the plan's base run. The other run is a row that patches the whole
    residual stream entering layer 0 from it: that replaces everything the forward reads from
    the prompt (the pair shares positions and padding, :func:`~interp.prompts.check_pair`), so
    the row is that run's forward, batched, resumed and scored exactly like the components."""
    other = "clean" if plan.base == "corrupted" else "corrupted"
    whole = (Patch("blocks.0.hook_resid_pre", other),)
    rows = [
        row
        for prompt in prompts
        for row in (
            PlanRow(prompt, (), ((BASELINE, plan.base),)),
            PlanRow(prompt, whole, ((BASELINE, other),)),
        )
    ]
    return replace(plan, rows=plan.rows + rows)
