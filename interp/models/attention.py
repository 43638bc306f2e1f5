"""The attention the module forward installs in a Hugging Face model while it drives it.

Hugging Face models look their attention function up by name (``config._attn_implementation``)
on every call, after the module has projected, normed and rotated the queries and keys and
joined the cached prefix's keys and values. Registering one function here under
:data:`IMPLEMENTATION` is the one seam the module forward needs inside a layer: the scores
(``hook_attn_scores``) and the mixed values (``hook_z``) are hook points of their own, and
everything else a layer does stays the model's code.

The function only computes what the mask and the scores say; the driver
(:class:`~interp.models.module_forward.ModuleForward`) decides what is asked for.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

IMPLEMENTATION = "iclscope"
"""The name the module forward's attention is registered under."""

DRIVER: ContextVar[Any] = ContextVar("iclscope_module_forward", default=None)
"""The :class:`~interp.models.module_forward.ModuleForward` driving the model right now."""


def _driven_attention(
    module, query, key, value, attention_mask, scaling=None, sliding_window=None, softcap=None, **_
):
    driver = DRIVER.get()
    if driver is None:  # the implementation is only set while a driver runs; never reached
        raise RuntimeError("the iclscope attention runs only inside the module forward")
    z = driver.attend(module.layer_idx, query, key, value, scaling, sliding_window, softcap)
    return z, None


def register() -> None:
    """Make :data:`IMPLEMENTATION` a name Hugging Face models can look up (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, _driven_attention)


def allowed_keys(query_at: Tensor, n_keys: int, window: int | None) -> Tensor:
    """Which keys each query may see: key ``j`` for a query at absolute position ``i`` when
    ``j <= i`` and, in a sliding-window layer, ``j > i - window`` (as Hugging Face masks it).
    ``query_at`` is ``(s,)`` (one mask for every row) or ``(b, s)``; the result is ``(s, t)`` or
    ``(b, 1, s, t)``."""
    keys = torch.arange(n_keys, device=query_at.device)
    ok = keys <= query_at[..., None]
    if window is not None:
        ok &= keys > query_at[..., None] - window
    return ok if query_at.dim() == 1 else ok[:, None]


def scores(q: Tensor, k: Tensor, scale: float, softcap: float | None) -> Tensor:
    """Scaled (and, where the model caps them, soft-capped) scores ``(b, heads, s, t)``; ``k``
    already has one head per query head."""
    out = (q @ k.transpose(-1, -2)) * scale
    if softcap is not None:
        out = torch.tanh(out / softcap) * softcap
    return out


def per_query_head(kv: Tensor, n_heads: int) -> Tensor:
    group = n_heads // kv.shape[1]
    return kv.repeat_interleave(group, dim=1) if group > 1 else kv


def fused(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None, scale: float) -> Tensor:
    """Softmax attention of ``q`` (b, heads, s, d) over KV heads ``k``/``v`` (b, kv, t, d);
    ``allowed`` a boolean mask, ``None`` meaning causal with t == s. Returns (b, heads, s, d).

    On CUDA this is SDPA's fused kernel. On CPU, at these small head sizes, two batched
    matmuls beat SDPA: each KV head's query group is folded into one matmul (sparing the copy
    that expanding K/V per query head would make), and the scale and the mask ride in the
    first matmul's multiply-add (``baddbmm``) instead of passes of their own."""
    b, h, s, d = q.shape
    n_kv, t = k.shape[1], k.shape[2]
    if q.is_cuda:
        k, v = per_query_head(k, h), per_query_head(v, h)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, is_causal=allowed is None, scale=scale
        )
    group = h // n_kv
    if allowed is None:
        allowed = torch.ones(s, t, dtype=torch.bool, device=q.device).tril()
    bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device)
    bias = bias.masked_fill_(~allowed, float("-inf"))
    if bias.dim() == 4:  # (b, 1, s, t): one mask per row, shared by every head
        bias = bias[:, :, None].expand(b, n_kv, group, s, t).reshape(-1, group * s, t)
    else:
        bias = bias.repeat(group, 1)
    out = torch.baddbmm(
        bias,
        q.reshape(b * n_kv, group * s, d),
        k.reshape(b * n_kv, t, d).transpose(1, 2),
        alpha=scale,
    )
    probs = torch.softmax(out, dim=-1, dtype=torch.float32).to(v.dtype)
    return (probs @ v.reshape(b * n_kv, t, d)).view(b, h, s, d)
