"""BlockRank's structured block-sparse attention, as an additive mask.

The prompt is an instruction block (the query), M document blocks and a final block. A
document token attends causally to the instruction block and to its own block only, never to
another document; the instruction attends causally to itself; the final block (and any token
after the last document, padding included) attends causally to everything. Documents are then
encoded independently given the query, which is what makes the paper's attention linear in M.

One mask serves both ways of running a model:

* :func:`block_sparse_hooks` adds it to ``blocks.{l}.attn.hook_attn_scores`` on every layer
  (the hooked backend, the engine's shared hook point);
* :func:`block_sparse_mask` with ``causal=True`` is the explicit 4-D additive mask a Hugging
  Face eager forward takes as ``attention_mask`` (training uses this).

The test checks that both give the same logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.prompts import Annotation


def allowed_keys(ann: Annotation, length: int) -> Bool[Tensor, "q k"]:
    """Which key each query may see under the block-sparse structure, causality included.
    Positions before the first block are the instruction; after the last, the final block."""
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    if not ann.blocks:
        return causal
    first = ann.blocks[0][0]
    allowed = causal.clone()
    for start, end in ann.blocks:
        allowed[start:end, first:] = False  # no other document, and nothing after the prefix
        allowed[start:end, start:end] = causal[start:end, start:end]  # except its own block
    return allowed


def block_sparse_mask(
    annotations: Sequence[Annotation],
    length: int,
    causal: bool = False,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    dtype=torch.float32,
) -> Float[Tensor, "batch 1 q k"]:
    """The additive mask (0 where allowed, the dtype's minimum elsewhere). With
    ``causal=False`` only what the structure removes beyond causality is masked (for adding to
    scores that are already causally and padding masked); with ``causal=True`` it is the whole
    mask a Hugging Face forward takes as a 4-D ``attention_mask``, padding keys (where
    ``attention_mask`` is 0) included; a token always sees itself, so no row is empty."""
    lowest = torch.finfo(dtype).min
    eye = torch.eye(length, dtype=torch.bool)
    masks = []
    for b, ann in enumerate(annotations):
        allowed = allowed_keys(ann, length)
        if not causal:
            allowed = allowed | ~torch.ones(length, length, dtype=torch.bool).tril()
        elif attention_mask is not None:
            allowed = allowed & attention_mask[b].bool()[None, :] | eye
        masks.append(torch.where(allowed, 0.0, lowest).to(dtype))
    return torch.stack(masks)[:, None]


def block_sparse_hooks(mask: Float[Tensor, "batch 1 q k"], n_layers: int) -> list[tuple]:
    """Forward hooks adding ``mask`` (from ``causal=False``) to every layer's attention scores.
    Adding two large negatives overflows to ``-inf``, which softmax treats as zero weight."""

    def add_mask(scores: Tensor, hook) -> Tensor:
        return scores + mask.to(scores.dtype)

    return [(f"blocks.{layer}.attn.hook_attn_scores", add_mask) for layer in range(n_layers)]
