"""Row stacking: every plan row of a forward pass edited by one kernel call per hook point.

The engine stacks plan rows along the batch axis; at each hook it touches, a single call to
:mod:`interp.kernels` applies every row's patches (or masks every row's knocked-out attention
edges), so a chunk of N rows costs one forward pass, never N Python-level edits. Kept apart
from the engine's run loop because the same stacking serves the resumed pass, a layer's tail
and the last layer's read-out alike.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
import torch

from interp import kernels
from interp.engine.plan import Knockout, PlanRow
from interp.engine.sources import SourceBank
from interp.models import HookedModel, HookFn


def stacked_hooks(
    model: HookedModel,
    rows: list[PlanRow | None],
    banks: dict[str, SourceBank],
    n_pos: int,
    shift: int | list[int] = 0,
    width: int | None = None,
) -> dict[str, HookFn]:
    """One hook function per touched hook point, each a single kernel call for all rows.
    ``shift``: the first computed position, for all rows or per row (activations then start
    there); ``width``: how many positions the activations hold, edits outside dropped.
    A ``None`` row takes no edits here."""
    # per hook, one entry per edit: row, shift, source, alpha, then its (position, head) grid
    patches: dict[str, list[tuple]] = defaultdict(list)
    edges: dict[int, list] = defaultdict(list)
    for i, row in enumerate(rows):
        if row is None:
            continue
        at = shift if isinstance(shift, int) else shift[i]
        for e in row.edits:
            if isinstance(e, Knockout):
                model.check_layer(e.layer)
                # a query outside the computed positions is dropped, as a patch there is
                queries = [q - at for q in e.queries]
                if width is not None:
                    queries = [q for q in queries if 0 <= q < width]
                for h in e.heads or (-1,):
                    edges[e.layer] += [(i, h, q, k) for q in queries for k in e.keys]
                continue
            src = banks[e.hook].index(e, row.prompt)
            patches[e.hook].append((i, at, src, e.alpha, *_grid(e.positions, e.heads, n_pos)))
    hooks: dict[str, HookFn] = {}
    for hook_name, entries in patches.items():
        row, at, src, alpha, pos, heads = zip(*entries)
        counts = [len(p) for p in pos]
        row, at, src, alpha = (np.repeat(np.asarray(c), counts) for c in (row, at, src, alpha))
        pos, heads = np.concatenate(pos), np.concatenate(heads)
        if width is not None:
            keep = (pos >= at) & (pos < at + width)
            row, at, src, alpha, pos, heads = (c[keep] for c in (row, at, src, alpha, pos, heads))
        if len(pos) == 0:  # every edit at this hook fell outside the computed positions
            continue
        idx = [torch.from_numpy(c.astype(np.int64)) for c in (row, pos - at, heads, src, pos)]
        weight = torch.from_numpy(alpha.astype(np.float32))
        bank = banks[hook_name].values

        def apply(act, hook, idx=idx, alpha=weight, bank=bank):
            return kernels.patch_or_mix(act, bank.to(act.device), *idx, alpha)

        hooks[hook_name] = apply
    for layer, coo in edges.items():
        if not coo:  # every knocked query of this layer fell outside the computed positions
            continue
        cols = [torch.tensor(c, dtype=torch.long) for c in zip(*coo)]

        def knock(scores, hook, cols=cols):
            return kernels.mask_edges(scores, *cols)

        hooks[f"blocks.{layer}.attn.hook_attn_scores"] = knock
    return hooks


@lru_cache(maxsize=4096)
def _grid(
    positions: tuple[int, ...] | None, heads: tuple[int, ...] | None, n_pos: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every (position, head) an edit touches, as two flat arrays (head -1: no head axis).
    Sweeps repeat the same few position/head sets, so each is built once."""
    pos = np.arange(n_pos) if positions is None else np.asarray(positions)
    heads_ = np.asarray(heads or (-1,))
    return np.tile(pos, len(heads_)), np.repeat(heads_, len(pos))
