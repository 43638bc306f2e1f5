"""Simulated eviction after a prefill, on the plain Hugging Face model.

The hooked backends apply flags through ``blocks.{l}.attn.hook_evict_flags`` (see
:mod:`interp.models.evict`); that costs a whole forward pass per method and rate. Eviction in a
real KV cache happens *after* the prefill, so the fast path here does what a server does: one
prefill of the context fills the cache with every key, then for each method and rate the final
rows (the query line) are decoded against that cache with the evicted keys masked, per layer and
per head, by the same :func:`~interp.models.evict.flag_attention_mask`. A variant costs a pass
over the final rows only. The tests check it against the hooked backend's full pass with
``evicting_from(start)``, which must give the same logits.

Flags: ``Float[Tensor, "layer batch head pos"]``, ``1`` kept, ``0`` evicted.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.models.evict import flag_attention_mask

LayerFlags = Float[Tensor, "layer batch head pos"]


def attention_modules(hf) -> list[torch.nn.Module]:
    """Each decoder layer's attention module (Llama/Gemma ``self_attn``, GPT-2 ``attn``)."""
    base = hf.base_model
    layers = getattr(base, "layers", None)
    if layers is None:
        layers = base.h
    return [getattr(layer, "self_attn", None) or layer.attn for layer in layers]


@contextlib.contextmanager
def key_masks(hf, flags: LayerFlags | None, start: int | Tensor = 0) -> Iterator[None]:
    """Inside the block, layer ``l`` masks the keys ``flags[l]`` evicts for query rows at or
    after ``start``. Needs eager (or sdpa) attention: the mask argument carries the heads."""
    if flags is None:
        yield
        return
    handles = []
    for layer, attn in enumerate(attention_modules(hf)):

        def widen(module, args, kwargs, layer=layer):
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            mask = kwargs.get("attention_mask")
            kwargs["attention_mask"] = flag_attention_mask(
                mask, flags[layer], start, hidden.shape[1]
            )
            return args, kwargs

        handles.append(attn.register_forward_pre_hook(widen, with_kwargs=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass
class Prefill:
    """What one prefill of a left-padded chunk gives every method.

    ``start``: the first final row (the same for the chunk, left padding aligns the ends);
    ``context``: the keys that may be evicted (real tokens before ``start``); ``patterns``: each
    layer's attention over the whole prompt; ``hidden``: each layer's input ``h[l]`` (for the
    gate); ``full_logits``: the read-out with every key; ``cache``: the context's keys and
    values, kept pristine (each decode works on a copy)."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    start: int
    context: Bool[Tensor, "batch pos"]
    queries: Bool[Tensor, "batch pos"]
    patterns: list[Float[Tensor, "batch head pos pos"]]
    hidden: list[Float[Tensor, "batch pos d_model"]]
    full_logits: Float[Tensor, "batch d_vocab"]
    cache: object


@torch.no_grad()
def prefill(hf, tokens, attention_mask, start: int, cache: bool = True) -> Prefill:
    """Score pass over the whole prompt (attention, states, full read-out), then the context's
    cache (``cache=False`` skips it: training needs no decoding). ``hf`` must run eager
    attention (it returns the attention weights)."""
    out = hf(
        input_ids=tokens,
        attention_mask=attention_mask,
        output_attentions=True,
        output_hidden_states=True,
        use_cache=False,
        logits_to_keep=1,
    )
    ctx = None
    if cache:
        ctx = hf(tokens[:, :start], attention_mask=attention_mask[:, :start], use_cache=True)
    real = attention_mask.bool()
    context = real & (torch.arange(tokens.shape[1]) < start)
    return Prefill(
        tokens,
        attention_mask,
        start,
        context,
        real,
        [a.float() for a in out.attentions],
        list(out.hidden_states[:-1]),
        out.logits[:, -1].float(),
        None if ctx is None else ctx.cache,
    )


@torch.no_grad()
def decode(hf, pre: Prefill, flags: LayerFlags | None) -> Float[Tensor, "batch d_vocab"]:
    """The read-out after decoding the final rows against the context cache with ``flags``."""
    cache = copy.deepcopy(pre.cache)
    with key_masks(hf, flags, pre.start):
        out = hf(
            input_ids=pre.tokens[:, pre.start :],
            attention_mask=pre.attention_mask,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    return out.logits[:, -1].float()
