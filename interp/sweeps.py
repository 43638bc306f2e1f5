"""Plans for the classic sweeps: every head, every residual position, every MLP, every edge.

Each function only *describes* the sweep as plan rows; the engine decides how to batch it.
"""

from __future__ import annotations

from collections.abc import Sequence

from interp.models import ModelConfig
from interp.plan import Base, InterventionPlan, Patch, PlanRow, Source


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
                    patch = Patch(f"blocks.{layer}.attn.hook_z", source, heads=(head,),
                                  positions=None if pos is None else (pos,))  # fmt: skip
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
        )  # fmt: skip
        for prompt in prompts
        for layer in range(cfg.n_layers)
        for pos in range(n_pos)
    ]
    return InterventionPlan(rows, base=base)
