"""Random intervention plans, for checking a fast path against a full forward."""

from __future__ import annotations

import torch

from interp.engine.plan import InterventionPlan, Knockout, Patch, PlanRow

HOOK_KINDS = (
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
    "hook_resid_pre",
)


def random_plan(
    cfg,
    n_pos: int,
    seed: int,
    n_rows: int = 48,
    kinds: tuple[str, ...] = HOOK_KINDS,
    n_prompts: int = 2,
) -> InterventionPlan:
    """Rows of one or two random edits: every hook kind in ``kinds``, one, two or all
    positions, some heads, replacements and mixes from several sources, and now and then an
    edge knockout."""
    rng = torch.Generator().manual_seed(seed)

    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=rng))

    rows = []
    for i in range(n_rows):
        edits = []
        for _ in range(1 + (pick(4) == 0)):
            kind, layer = kinds[pick(len(kinds))], pick(cfg.n_layers)
            if any(e.hook == f"blocks.{layer}.{kind}" for e in edits):
                continue  # two patches of one hook in one row are refused (see below)
            positions = [None, (pick(n_pos),), (pick(n_pos), pick(n_pos))][pick(3)]
            heads = (pick(cfg.n_heads),) if kind == "attn.hook_z" and pick(2) else None
            edits.append(
                Patch(
                    f"blocks.{layer}.{kind}",
                    ["clean", "mean", "zero"][pick(3)],
                    positions=positions,
                    heads=heads,
                    alpha=[1.0, 0.3][pick(2)],
                )
            )
        if pick(8) == 0:
            edits.append(Knockout(pick(cfg.n_layers), (n_pos - 1,), (0, 1)))
        rows.append(PlanRow(i % n_prompts, tuple(edits), (("row", i),)))
    return InterventionPlan(rows)
