"""The hook ``blocks.{l}.attn.hook_block_relevance``: block relevance as a read of the scores.

Its value is ``(batch, head, doc)``: layer ``l``'s relevance of every document block, per head,
from the prompt's last query rows (:func:`~circuits.block_relevance.relevance.document_relevance`).
It is a read of a hook point every backend already has, never a new edit point ("one
definition per hook"); a relevance hook function runs inside that hook and sees ``hook.name``
ending in ``hook_block_relevance``. It is read-only: what a function returns is ignored, since
relevance is a summary of the scores, not an activation the forward pass uses.

Which hook point depends on the backend (:func:`relevance_source`):

* TransformerLens: ``blocks.{l}.attn.hook_attn_scores``, the pre-softmax scores, read after
  every edit of them (the block-sparse mask included);
* nnsight: ``blocks.{l}.attn.hook_pattern``, eager attention's post-softmax weights, as
  ``log(pattern)``. Softmaxing ``log p`` over the document keys gives ``p`` renormalised over
  them, and that equals softmaxing the scores over them: the row's normaliser cancels. It
  differs from the scores by float rounding only (the parity test: at most 1e-5), unless a
  document key's weight underflows to 0, which needs a score about 87 below the row's largest.
  The block-sparse mask goes in as the 4-D ``attention_mask`` there, since nnsight cannot edit
  the scores.

The engine's module forward (``interp.models.module_forward``) is not involved: relevance
runs one plain forward per batch through ``run_with_hooks``.

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
from interp.errors import IclscopeError
from interp.models import HookedModel, HookRef
from interp.prompts import PromptBatch

RELEVANCE_HOOK = "attn.hook_block_relevance"
SCORES = "attn.hook_attn_scores"
PATTERN = "attn.hook_pattern"


def relevance_source(model: HookedModel) -> str:
    """The hook kind relevance is read from on ``model``'s backend: the pre-softmax scores
    where it exposes them, else eager attention's pattern (see the module docstring)."""
    names = set(model.hook_names())
    for kind in (SCORES, PATTERN):
        if f"blocks.0.{kind}" in names:
            return kind
    raise IclscopeError(
        f"the {model.backend} backend exposes neither attention scores nor the pattern, so "
        "block relevance cannot be read",
        fix="load the model with backend='transformer_lens' or 'nnsight'",
    )


def relevance_name(layer: int) -> str:
    return f"blocks.{layer}.{RELEVANCE_HOOK}"


def relevance_hooks(
    batch: PromptBatch, fwd_hooks: Sequence[tuple], n_rows: int = 2, source: str = SCORES
) -> list:
    """``fwd_hooks`` with every ``hook_block_relevance`` hook turned into a reader on its
    layer's ``source`` hook (``hook_attn_scores``, or ``hook_pattern`` read as ``log``);
    ordinary hooks pass through, first, so a score edit such as the block-sparse mask is
    seen by the reader."""
    if source not in (SCORES, PATTERN):
        raise IclscopeError(f"relevance cannot be read from {source!r}", fix=f"use {SCORES}")
    rows = query_rows(batch.annotations, n_rows)
    n_docs = max(len(a.blocks) for a in batch.annotations)
    doc_index = doc_of_token(batch.annotations, batch.tokens.shape[1])
    rest, readers = [], []
    for name, fn in fwd_hooks:
        if not name.endswith(RELEVANCE_HOOK):
            rest.append((name, fn))
            continue

        def read(act: Tensor, hook, fn=fn, name=name) -> None:
            picked = gather_rows(act.detach(), rows.to(act.device)).cpu().float()
            if source == PATTERN:
                picked = picked.log()  # softmax over documents: the pattern renormalised
            fn(document_relevance(picked, doc_index, n_docs), HookRef(name))

        readers.append((name.removesuffix(RELEVANCE_HOOK) + source, read))
    return rest + readers


def run_with_relevance(
    model: HookedModel,
    batch: PromptBatch,
    fwd_hooks: Sequence[tuple] = (),
    n_rows: int = 2,
    block_sparse: bool = False,
) -> Float[Tensor, "batch pos d_vocab"]:
    """One forward pass of ``batch`` with ordinary and relevance hooks (``block_sparse`` adds
    BlockRank's structured mask on every layer first: score hooks where the backend has them,
    else the explicit 4-D attention mask)."""
    source = relevance_source(model)
    hooks = list(fwd_hooks)
    attention_mask = batch.attention_mask
    length = batch.tokens.shape[1]
    if block_sparse and source == SCORES:
        mask = block_sparse_mask(batch.annotations, length)
        hooks = block_sparse_hooks(mask, model.cfg.n_layers) + hooks
    elif block_sparse:
        _check_full_attention(model, length)
        attention_mask = block_sparse_mask(
            batch.annotations, length, causal=True, attention_mask=batch.attention_mask
        )
    with torch.no_grad():
        return model.run_with_hooks(
            batch.tokens, relevance_hooks(batch, hooks, n_rows, source), attention_mask
        )


def _check_full_attention(model: HookedModel, length: int) -> None:
    """A 4-D mask replaces every layer's own mask, a sliding window's included: refuse a
    prompt long enough for the window to matter, rather than drop it silently."""
    window = getattr(model.hf_model.config, "sliding_window", None)
    if window is not None and length > window:
        raise IclscopeError(
            f"the block-sparse mask on the {model.backend} backend replaces the attention "
            f"mask, and these {length}-token prompts are longer than the model's "
            f"{window}-token sliding window, which it would drop",
            fix="use backend='transformer_lens', or shorter prompts (fewer --docs)",
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
