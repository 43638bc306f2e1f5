"""The hook ``blocks.{l}.attn.hook_block_relevance``: block relevance as a read of the scores.

Its value is ``(batch, head, doc)``: layer ``l``'s relevance of every document block, per head,
from the prompt's last query rows (:func:`~circuits.block_relevance.relevance.document_relevance`).
It is defined once, on ``blocks.{l}.attn.hook_attn_scores``, the point every backend path that
edits attention shares (STYLE.md, "one definition per hook"); a relevance hook function is
run inside a scores hook of the same layer and sees ``hook.name`` ending in
``hook_block_relevance``. It is read-only: what a function returns is ignored, since relevance
is a summary of the scores, not an activation the forward pass uses.

Document blocks differ per prompt, so the hook needs the batch's annotations:
:func:`run_with_relevance` takes the batch and any mix of relevance hooks and ordinary ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.block_relevance.mask import block_sparse_hooks, block_sparse_mask
from circuits.block_relevance.relevance import (
    doc_of_token,
    document_relevance,
    gather_rows,
    query_rows,
)
from interp.models import HookedModel, HookRef
from interp.prompts import PromptBatch

RELEVANCE_HOOK = "attn.hook_block_relevance"


def relevance_name(layer: int) -> str:
    return f"blocks.{layer}.{RELEVANCE_HOOK}"


def relevance_hooks(batch: PromptBatch, fwd_hooks: Sequence[tuple], n_rows: int = 2) -> list:
    """``fwd_hooks`` with every ``hook_block_relevance`` hook turned into a reader on its
    layer's ``hook_attn_scores`` (ordinary hooks pass through, first, so a score edit such as
    the block-sparse mask is seen by the reader)."""
    rows = query_rows(batch.annotations, n_rows)
    n_docs = max(len(a.blocks) for a in batch.annotations)
    doc_index = doc_of_token(batch.annotations, batch.tokens.shape[1])
    rest, readers = [], []
    for name, fn in fwd_hooks:
        if not name.endswith(RELEVANCE_HOOK):
            rest.append((name, fn))
            continue

        def read(scores: Tensor, hook, fn=fn, name=name) -> None:
            picked = gather_rows(scores.detach(), rows.to(scores.device)).cpu()
            fn(document_relevance(picked, doc_index, n_docs), HookRef(name))

        readers.append((name.removesuffix(RELEVANCE_HOOK) + "attn.hook_attn_scores", read))
    return rest + readers


def run_with_relevance(
    model: HookedModel,
    batch: PromptBatch,
    fwd_hooks: Sequence[tuple] = (),
    n_rows: int = 2,
    block_sparse: bool = False,
) -> Float[Tensor, "batch pos d_vocab"]:
    """One forward pass of ``batch`` with ordinary and relevance hooks (``block_sparse`` adds
    BlockRank's structured mask on every layer first)."""
    hooks = list(fwd_hooks)
    if block_sparse:
        mask = block_sparse_mask(batch.annotations, batch.tokens.shape[1])
        hooks = block_sparse_hooks(mask, model.cfg.n_layers) + hooks
    with torch.no_grad():
        return model.run_with_hooks(
            batch.tokens, relevance_hooks(batch, hooks, n_rows), batch.attention_mask
        )


def collect_relevance(
    model: HookedModel, batch: PromptBatch, n_rows: int = 2, block_sparse: bool = False
) -> tuple[Float[Tensor, "batch layer head doc"], Float[Tensor, "batch d_vocab"]]:
    """Every layer's relevance and the logits at the last prompt token, in one forward."""
    got: dict[int, Tensor] = {}

    def keep(rel: Tensor, hook) -> None:
        got[hook.layer] = rel

    hooks = [(relevance_name(layer), keep) for layer in range(model.cfg.n_layers)]
    logits = run_with_relevance(model, batch, hooks, n_rows, block_sparse)
    last = logits[torch.arange(len(batch)), batch.s_q].float().cpu()
    return torch.stack([got[layer] for layer in range(model.cfg.n_layers)], 1), last
