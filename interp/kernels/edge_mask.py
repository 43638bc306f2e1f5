"""Attention-edge knockout: add a value to chosen pre-softmax scores, in place.

An edge is ``(row, head, query, key)``; adding ``-inf`` to its score before the softmax removes
the query's attention to that key (the rest of the row renormalises), and a finite value damps
or boosts it. ``head == -1`` means every head.

Grouped-query attention: with ``n_kv_heads`` given, ``heads`` names KV heads and an edge hits
every query head sharing that KV head (query head ``h`` reads KV head ``h // group``, with
``group = n_heads // n_kv_heads``), because knocking out a key for one KV head is only
meaningful for all the query heads that read it. Without ``n_kv_heads``, ``heads`` names
query heads.

Duplicate policy: edges may repeat, and repeats ADD UP (two edges of ``-2.0`` on one score give
``-4.0``; ``-inf`` stays ``-inf``). The Triton kernel therefore uses atomic adds, which also makes
overlapping edges (``head = -1`` next to a specific head) safe, and the twin uses
``index_put_(accumulate=True)``. Sparse edges make the atomics cheap, and validating uniqueness
instead would cost a sort on every hook call.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.kernels.dispatch import as_index, check_ranges, use_triton


def _check(scores, rows, heads, queries, keys, value, n_kv_heads):
    """Validate; return int64 edge vectors, the GQA group size and whether any edge is -1."""
    if scores.dim() != 4 or not scores.dtype.is_floating_point:
        raise IclscopeError(
            f"scores must be float (batch, head, q, k), got {scores.dtype} {tuple(scores.shape)}",
            "pass the pre-softmax attention scores of one layer",
        )
    n_heads = scores.shape[1]
    if n_kv_heads is None:
        n_kv_heads = n_heads
    if not isinstance(n_kv_heads, int) or n_kv_heads < 1 or n_heads % n_kv_heads:
        raise IclscopeError(
            f"n_kv_heads={n_kv_heads!r} does not divide the {n_heads} query heads",
            "pass the model's number of key/value heads (a divisor of n_heads), or None",
        )
    if not isinstance(value, (int, float)) or math.isnan(value):
        raise IclscopeError(f"value={value!r} is not a number", "use -inf or a finite float")
    n = rows.shape[0] if rows.dim() == 1 else -1
    rows, heads, queries, keys = (
        as_index(name, t, n, scores.device)
        for name, t in zip(("rows", "heads", "queries", "keys"), (rows, heads, queries, keys))
    )
    bounds = check_ranges(
        [
            ("rows", rows, 0, scores.shape[0], "the scores' batch axis"),
            ("heads", heads, -1, n_kv_heads, f"{n_kv_heads} heads (-1 = all heads)"),
            ("queries", queries, 0, scores.shape[2], "the scores' query axis"),
            ("keys", keys, 0, scores.shape[3], "the scores' key axis"),
        ]
    )
    all_heads = bounds.get("heads", (0, 0))[0] < 0
    return rows, heads, queries, keys, n_heads // n_kv_heads, all_heads


def mask_edges_torch(
    scores: Float[Tensor, "batch head q k"],
    rows: Int[Tensor, " n_edges"],
    heads: Int[Tensor, " n_edges"],
    queries: Int[Tensor, " n_edges"],
    keys: Int[Tensor, " n_edges"],
    value: float = float("-inf"),
    n_kv_heads: int | None = None,
) -> Float[Tensor, "batch head q k"]:
    """Torch twin of the Triton kernel: expands each edge to its query heads with a small
    (n_edges, n_heads) selection (no Python loop) and accumulates with ``index_put_``."""
    rows, heads, queries, keys, group, _ = _check(
        scores, rows, heads, queries, keys, value, n_kv_heads
    )
    if rows.numel() == 0:
        return scores
    kv_of = torch.arange(scores.shape[1], device=scores.device) // group
    edge, head = ((heads[:, None] < 0) | (heads[:, None] == kv_of)).nonzero(as_tuple=True)
    add = torch.full((edge.numel(),), value, dtype=scores.dtype, device=scores.device)
    scores.index_put_((rows[edge], head, queries[edge], keys[edge]), add, accumulate=True)
    return scores


@functools.cache
def _kernel():
    """Build the Triton kernel on first use (lazy import; interpreter chosen at jit time)."""
    import triton
    import triton.language as tl

    # One program per edge; its query heads (one GQA group, or all heads for -1) form a 1-D
    # block of strided single-element atomic adds. Only the edited scores are touched.
    @triton.jit
    def edge_kernel(
        scores_ptr,
        rows_ptr,
        heads_ptr,
        q_ptr,
        k_ptr,
        value,
        n_heads,
        group,
        s_b,
        s_h,
        s_q,
        s_k,
        BLOCK_H: tl.constexpr,
        ATOMIC: tl.constexpr,
    ):
        e = tl.program_id(0)
        base = (
            scores_ptr
            + tl.load(rows_ptr + e) * s_b
            + tl.load(q_ptr + e) * s_q
            + tl.load(k_ptr + e) * s_k
        )
        h = tl.load(heads_ptr + e)
        first = tl.where(h < 0, 0, h * group)
        count = tl.where(h < 0, n_heads, group)
        oh = tl.arange(0, BLOCK_H)
        add = tl.full([BLOCK_H], value, dtype=tl.float32).to(scores_ptr.dtype.element_ty)
        for h0 in range(0, count, BLOCK_H):
            hh = h0 + oh
            ptrs = base + (first + hh) * s_h
            if ATOMIC:
                tl.atomic_add(ptrs, add, mask=hh < count)
            else:  # interpreter only: programs run one after another, so this cannot race
                old = tl.load(ptrs, mask=hh < count)
                tl.store(ptrs, (old.to(tl.float32) + value).to(old.dtype), mask=hh < count)

    return edge_kernel


def mask_edges_triton(
    scores: Float[Tensor, "batch head q k"],
    rows: Int[Tensor, " n_edges"],
    heads: Int[Tensor, " n_edges"],
    queries: Int[Tensor, " n_edges"],
    keys: Int[Tensor, " n_edges"],
    value: float = float("-inf"),
    n_kv_heads: int | None = None,
) -> Float[Tensor, "batch head q k"]:
    """Triton version: one launch of atomic adds through the scores' strides (no copy, so a
    non-contiguous view is edited in place). Returns ``scores``."""
    rows, heads, queries, keys, group, all_heads = _check(
        scores, rows, heads, queries, keys, value, n_kv_heads
    )
    n = rows.numel()
    if n == 0:
        return scores
    import triton

    n_heads = scores.shape[1]
    block_h = min(triton.next_power_of_2(n_heads if all_heads else group), 1024)
    # The interpreter has no 16-bit atomics, but it runs programs sequentially, so a plain
    # read-modify-write accumulates repeats just as well there. GPUs always take the atomics.
    atomic = scores.is_cuda or scores.element_size() >= 4
    with torch.cuda.device(scores.device) if scores.is_cuda else contextlib.nullcontext():
        _kernel()[(n,)](
            scores,
            rows,
            heads,
            queries,
            keys,
            float(value),
            n_heads,
            group,
            *scores.stride(),
            BLOCK_H=block_h,
            ATOMIC=atomic,
        )
    return scores


def mask_edges(
    scores: Float[Tensor, "batch head q k"],
    rows: Int[Tensor, " n_edges"],
    heads: Int[Tensor, " n_edges"],
    queries: Int[Tensor, " n_edges"],
    keys: Int[Tensor, " n_edges"],
    value: float = float("-inf"),
    n_kv_heads: int | None = None,
) -> Float[Tensor, "batch head q k"]:
    """Add ``value`` to each edge's pre-softmax score in place (see module docstring).

    Dispatches to the Triton kernel or the torch twin per ``interp.kernels.dispatch.use_triton``.
    """
    fn = mask_edges_triton if use_triton(scores) else mask_edges_torch
    return fn(scores, rows, heads, queries, keys, value, n_kv_heads)
