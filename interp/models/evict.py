"""Eviction flags as key masks: the hook ``blocks.{l}.attn.hook_evict_flags`` on both backends.

A flag tensor ``(batch, head, pos)`` says, per query head, which keys stay in the KV cache
(``1`` kept, ``0`` evicted). The hook's value is all ones (nothing evicted); a hook function
returns the flags to apply, and the backend turns them into a key mask on that layer's
attention: query ``i`` may attend to key ``j < i`` only where ``flags[j] = 1``, and a token
always sees itself (see the eviction page of the docs, ``docs/analyses/eviction.md``).

``HookedModel.evict_from`` (set with ``model.evicting_from(start)``) restricts the mask to the
query rows at or after ``start`` (one int, or one per batch row). ``0`` applies the flags to the
whole prompt; ``start = prompt length - n`` simulates eviction after a prefill: the first rows
were computed with every key (their keys and values are what the cache holds), and only the
``n`` final rows (the decoded ones) lose the evicted keys.

Hard flags are applied exactly (the score is set to the dtype's minimum). Flags that carry a
gradient (the attention gate's straight-through flags) are applied as ``scores + log(f + eps)``
instead: the same forward up to ``eps``, and the gradient of a renormalised multiplicative mask
(``A_j f_j / sum_k A_k f_k``), which reaches evicted keys too, so training can un-evict.

It sits just above :mod:`interp.models.interface` (it names hooks with ``HookRef``; the
``EvictFrom`` mixin lives there, beside ``HookedModel``) and below the backends that apply it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp.errors import IclscopeError
from interp.models.interface import EvictFrom as EvictFrom  # the mixin, defined with HookedModel
from interp.models.interface import HookRef

EVICT_HOOK = "attn.hook_evict_flags"
SOFT_EPS = 1e-6


def evict_names(n_layers: int) -> list[str]:
    return [f"blocks.{layer}.{EVICT_HOOK}" for layer in range(n_layers)]


def split_evict_hooks(fwd_hooks: Sequence[tuple[str, Callable]]) -> tuple[list, dict[int, list]]:
    """``(other hooks, {layer: [flag hook functions]})``."""
    rest, by_layer = [], {}
    for name, fn in fwd_hooks:
        if name.endswith(EVICT_HOOK):
            by_layer.setdefault(int(name.split(".")[1]), []).append(fn)
        else:
            rest.append((name, fn))
    return rest, by_layer


def call_flag_hooks(
    layer: int, fns: list[Callable], batch: int, n_heads: int, n_pos: int, device
) -> Float[Tensor, "batch head pos"]:
    """The flags after every hook function of ``layer`` (each sees the previous value)."""
    flags = torch.ones(batch, n_heads, n_pos, device=device)
    ref = HookRef(f"blocks.{layer}.{EVICT_HOOK}")
    for fn in fns:
        out = fn(flags, ref)
        if out is not None:
            if tuple(out.shape) != (batch, n_heads, n_pos):
                raise IclscopeError(
                    f"eviction flags of shape {tuple(out.shape)} at {ref.name}",
                    fix=f"return (batch, head, pos) = {(batch, n_heads, n_pos)} flags",
                )
            flags = out.to(device)
    return flags


def eviction_mask(
    flags: Float[Tensor, "batch head key"], n_query: int, start: int | Tensor = 0
) -> Bool[Tensor, "batch head query key"]:
    """Where a query loses a key: the key is earlier, evicted, and the query at or after
    ``start``. Queries are the last ``n_query`` of the ``key`` positions."""
    n_key = flags.shape[-1]
    q = torch.arange(n_key - n_query, n_key, device=flags.device)[:, None]
    k = torch.arange(n_key, device=flags.device)[None]
    start = torch.as_tensor(start, device=flags.device).reshape(-1, 1, 1, 1)
    return (flags[:, :, None, :] < 0.5) & (k < q) & (q >= start)


def apply_flags(
    scores: Float[Tensor, "batch head query key"],
    flags: Float[Tensor, "batch head key"],
    start: int | Tensor = 0,
) -> Float[Tensor, "batch head query key"]:
    """Pre-softmax scores (or an additive mask broadcastable to them) with the keys masked."""
    b, h, q, k = flags.shape[0], flags.shape[1], scores.shape[-2], scores.shape[-1]
    scores = scores.expand(b, h, q, k)
    mask = eviction_mask(flags, q, start)
    if not flags.requires_grad:
        return scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    soft = torch.where(mask, flags[:, :, None, :].expand(b, h, q, k), torch.ones_like(scores))
    return scores + torch.log(soft + SOFT_EPS)


def flag_attention_mask(
    mask: Tensor | None,
    flags: Float[Tensor, "batch head pos"],
    start: int | Tensor = 0,
    n_query: int | None = None,
) -> Float[Tensor, "batch head q k"]:
    """A Hugging Face attention module's ``attention_mask`` argument with the flags applied:
    the additive (or boolean, ``True`` = attend) mask widened to one per head. ``None`` (no
    mask given) is the causal mask over ``n_query`` rows. A mask over fewer keys than the
    flags (a sliding-window layer's cache) reads the flags' last positions."""
    if mask is None:
        n = flags.shape[-1]
        q = torch.arange(n - n_query, n)[:, None]
        mask = torch.zeros(n_query, n).masked_fill(torch.arange(n)[None] > q, float("-inf"))
        mask = mask[None, None].to(flags.device)
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, device=mask.device).masked_fill(~mask, float("-inf"))
    offset = flags.shape[-1] - mask.shape[-1]
    if offset:
        flags, start = flags[..., offset:], torch.as_tensor(start) - offset
    return apply_flags(mask.to(flags.dtype), flags, start)
