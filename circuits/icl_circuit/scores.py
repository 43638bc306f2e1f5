"""Pure computations on attention patterns: head counts, retrieval scores, label
assignment. They take tensors, so tests can feed hand-made patterns with known answers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

LAYER_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 0.25),
    (0.25, 0.5),
    (0.5, 0.75),
    (0.75, 1.0),
    (0.0, 1.0),
)
"""Fractions of depth the ablations are applied in, as in the paper's table."""
EDGE_NAMES: tuple[str, ...] = ("xi_to_si", "xq_to_sq", "si_to_yi", "yi_to_sq", "si_to_si")
EdgeGroup = tuple[tuple[int, ...], tuple[int, ...]]
"""``(queries, keys)``: every query position loses its attention to every key position."""


# ---------------------------------------------------------------------------------------------
# Pure computations on attention scores (tested on hand-made patterns)


def attention_at(
    pattern: Float[Tensor, "batch layer head q k"],
    queries: Int[Tensor, " batch"],
    keys: Int[Tensor, "batch n"],
) -> Float[Tensor, "batch layer head n"]:
    """``A[l, h, queries[b], keys[b, i]]`` for every prompt ``b``: each prompt reads its own
    positions, since annotated positions differ between prompts."""
    r = torch.arange(len(queries))[:, None]
    return pattern[r, :, :, queries[:, None], keys].permute(0, 2, 3, 1)


def counts_as_head(
    score: Float[Tensor, " batch *heads"], n_tokens: Float[Tensor, " batch"], factor: float = 5.0
) -> Bool[Tensor, "*heads"]:
    """Heads whose mean score over prompts beats the mean of ``factor / n_tokens``.

    ``factor / n`` is ``factor`` times uniform attention over the ``n`` visible tokens, so a head
    counts when it attends far more than chance. Prompts differ in length, so the threshold is
    averaged like the score (a per-prompt vote would let many barely-passing prompts win).
    """
    return score.mean(0) > (factor / n_tokens.float()).mean()


def forerunner_heads(
    a: Float[Tensor, "batch layer head"], n_tokens: Float[Tensor, " batch"], factor: float = 5.0
) -> tuple[Bool[Tensor, "layer head"], Int[Tensor, " layer"], Float[Tensor, " layer"]]:
    """Step 2 from ``a = A[l, h, y_q, s_q]``: which heads count, how many per layer, and the copy
    magnitude ``mean over prompts of max_h a`` (how strongly the best head copies)."""
    mask = counts_as_head(a, n_tokens, factor)
    return mask, mask.sum(-1), a.max(-1).values.mean(0)


def retrieval_scores(
    a: Float[Tensor, "batch layer head k"],
    correct: Bool[Tensor, "batch k"],
    n_tokens: Float[Tensor, " batch"],
    n_labels: Float[Tensor, " batch"],
    factor: float = 5.0,
) -> dict[str, Tensor]:
    """Step 3 from ``a = A[l, h, s_q, y_i]``, each ``(layer, head)``.

    ``per_gold_label`` / ``per_other_label``: the mean attention one gold-label token / one
    other label token receives (prompts without such a token are left out): the direct test
    of whether a head retrieves by matching the query to the demonstrations.

    ``magnitude`` (how much ``s_q`` reads label tokens at all, counts above ``factor / n``) and
    ``correctness`` (attention to correct labels minus attention to wrong ones, counts above
    ``factor / n / |Y|``, the share one label would get by chance), both means over prompts.
    """
    sign = correct.float() * 2 - 1
    magnitude = a.sum(-1)
    correctness = (a * sign[:, None, None, :]).sum(-1)
    right, wrong = correct.float()[:, None, None, :], (~correct).float()[:, None, None, :]
    return {
        "magnitude": magnitude.mean(0),
        "correctness": correctness.mean(0),
        # per label token: a selective head reads each gold label more than each other label
        "per_gold_label": _mean_where(a, right),
        "per_other_label": _mean_where(a, wrong),
        "magnitude_head": counts_as_head(magnitude, n_tokens, factor),
        "correctness_head": counts_as_head(correctness, n_tokens * n_labels, factor),
    }


def _mean_where(a: Float[Tensor, "batch layer head k"], w: Float[Tensor, "batch 1 1 k"]):
    """Mean over the weighted label tokens of each prompt, then over prompts having any."""
    count = w.sum(-1)
    per_prompt = (a * w).sum(-1) / count.clamp(min=1)
    has = (count > 0).float()
    return (per_prompt * has).sum(0) / has.sum(0).clamp(min=1)


def label_assignment(
    weights: Float[Tensor, " batch *units k"],
    demo_labels: Int[Tensor, "batch k"],
    candidates: Sequence[Sequence[int]],
    gold: Int[Tensor, " batch"],
) -> tuple[Float[Tensor, "*units"], Float[Tensor, "*units"]]:
    """Accuracy and mean ``p(gold)`` of ``p(y) ∝ Σ_{i: label_i = y} weights_i``, per unit.

    A unit is a head (weights = attention from ``s_q`` to each ``y_i``) or a layer (the vanilla
    baseline, weights = ``cos(h[s_i], h[s_q])``). Labels that no demonstration carries score 0.
    ``p(gold)`` clips negative weights to 0 (a cosine can be negative; a probability cannot) and
    is ``1 / |Y|`` when nothing is left.
    """
    b, k = demo_labels.shape
    units = weights.shape[1:-1]
    w = weights.reshape(b, -1, k).float()
    width = max(len(c) for c in candidates)
    cand = torch.full((b, width), -1, dtype=torch.long)
    for i, c in enumerate(candidates):
        cand[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
    onehot = (demo_labels[:, :, None] == cand[:, None, :]).float()  # (b, k, width)
    scores = torch.einsum("buk,bkc->buc", w, onehot)
    scores = scores.masked_fill((cand < 0)[:, None, :], float("-inf"))
    pred = cand.gather(1, scores.argmax(-1))
    acc = (pred == gold[:, None]).float().mean(0)
    pos = w.clamp(min=0)
    total = torch.einsum("buk,bkc->buc", pos, onehot).sum(-1)
    at_gold = (pos * (demo_labels == gold[:, None]).float()[:, None, :]).sum(-1)
    n_labels = (cand >= 0).sum(-1, keepdim=True).float()
    p_gold = torch.where(total > 0, at_gold / total.clamp(min=1e-12), 1.0 / n_labels)
    return acc.reshape(units), p_gold.mean(0).reshape(units)


def layer_range(n_layers: int, start: float, end: float) -> range:
    """Layers ``[floor(start * L), ceil(end * L))``, at least one layer and inside the model."""
    lo = min(math.floor(start * n_layers), n_layers - 1)
    return range(lo, max(lo + 1, min(math.ceil(end * n_layers), n_layers)))
