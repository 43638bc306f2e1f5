"""Fused activation edit: patching, ablation and soft injection in one kernel.

Every per-hook activation edit the engine performs is the same blend, applied to a sparse set of
``(row, position, head)`` slices of one hooked activation::

    act[r, p, h, :] = (1 - alpha) * act[r, p, h, :] + alpha * src[i, q, h, :]

Activation patching is ``alpha = 1`` with ``src`` a clean run; mean ablation uses a one-row
``src`` of means; zero ablation a zero ``src``; resample ablation ``src`` from other prompts;
soft injection (task vectors, steering) a fractional ``alpha``. Expressing all of them as one
primitive means one kernel to make fast and one twin to test against.

The caller guarantees that edit targets are unique (no two edits, counting ``heads == -1`` as
every head, write the same slice): the Triton programs run concurrently, so overlapping targets
would race. ``src`` must not alias the edited slices of ``act`` for the same reason.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.kernels.dispatch import as_index, check_ranges, use_triton

# Elements per program-block (heads x d). Big enough that the interpreter (whose cost is per
# block operation) stays fast, small enough to live in registers on a GPU without spilling.
_BLOCK_ELEMS = 4096


def _blend(x: Tensor, s: Tensor, a: Tensor) -> Tensor:
    """fp32 blend that is exact at both ends. ``x + a*(s-x)`` can round at ``a = 1``; the
    two-term form is exact there only while ``0*x`` is 0 (not for inf/nan ``x``), so the ends
    select ``s`` / ``x`` outright: a patch must copy bits and ``alpha = 0`` must be a no-op."""
    mixed = (1.0 - a) * x + a * s
    return torch.where(a == 1.0, s, torch.where(a == 0.0, x, mixed))


def _check(act, src, rows, positions, heads, src_index, src_positions, alpha):
    """Validate shapes, devices and index ranges; return normalised int64/fp32 edit vectors."""
    if act.dim() not in (3, 4) or not act.dtype.is_floating_point:
        raise IclscopeError(
            f"act must be a float (batch, pos, [head,] d) tensor, got {act.dtype} "
            f"{tuple(act.shape)}",
            "pass the hooked activation itself (3-D residual or 4-D per-head)",
        )
    if src.dim() != act.dim() or src.shape[2:] != act.shape[2:] or src.device != act.device:
        raise IclscopeError(
            f"src {tuple(src.shape)} on {src.device} does not match act {tuple(act.shape)} on "
            f"{act.device} (same rank, trailing dims and device needed)",
            "build src as (n_src, src_pos, ...) with act's head/d dims, on act's device",
        )
    n = rows.shape[0] if rows.dim() == 1 else -1
    rows, positions, heads, src_index, src_positions = (
        as_index(name, t, n, act.device)
        for name, t in zip(
            ("rows", "positions", "heads", "src_index", "src_positions"),
            (rows, positions, heads, src_index, src_positions),
        )
    )
    if alpha.dim() != 1 or alpha.shape[0] != n or not alpha.dtype.is_floating_point:
        raise IclscopeError(
            f"alpha must be a float vector with one entry per edit ({n}), got "
            f"{alpha.dtype} {tuple(alpha.shape)}",
            "pass alpha as a float tensor of shape (n_edits,)",
        )
    if alpha.device != act.device:
        raise IclscopeError(f"alpha is on {alpha.device}, act on {act.device}", "move alpha")
    checks = [
        ("rows", rows, 0, act.shape[0], "act's batch axis"),
        ("positions", positions, 0, act.shape[1], "act's position axis"),
        ("src_index", src_index, 0, src.shape[0], "src's first axis"),
        ("src_positions", src_positions, 0, src.shape[1], "src's position axis"),
    ]
    if act.dim() == 4:  # 3-D activations have no head axis: heads are ignored there
        checks.append(("heads", heads, -1, act.shape[2], "act's head axis (-1 = all heads)"))
    bounds = check_ranges(checks)
    all_heads = bounds.get("heads", (0, 0))[0] < 0
    alpha = alpha.float().contiguous()
    return rows, positions, heads, src_index, src_positions, alpha, all_heads


def patch_or_mix_torch(
    act: Float[Tensor, "batch pos *head d"],
    src: Float[Tensor, "n_src src_pos *head d"],
    rows: Int[Tensor, " n_edits"],
    positions: Int[Tensor, " n_edits"],
    heads: Int[Tensor, " n_edits"],
    src_index: Int[Tensor, " n_edits"],
    src_positions: Int[Tensor, " n_edits"],
    alpha: Float[Tensor, " n_edits"],
) -> Float[Tensor, "batch pos *head d"]:
    """Torch twin of the Triton kernel: same semantics, built from advanced indexing.

    ``heads == -1`` is expanded to every head by a tiny (n_edits, n_heads) selection, so there
    is no Python loop over edits. Edits ``act`` in place and returns it.
    """
    rows, positions, heads, src_index, src_positions, alpha, _ = _check(
        act, src, rows, positions, heads, src_index, src_positions, alpha
    )
    if rows.numel() == 0:
        return act
    if act.dim() == 4:
        every = torch.arange(act.shape[2], device=act.device)
        edit, head = ((heads[:, None] < 0) | (heads[:, None] == every)).nonzero(as_tuple=True)
        target = (rows[edit], positions[edit], head)
        source = (src_index[edit], src_positions[edit], head)
        alpha = alpha[edit]
    else:
        target, source = (rows, positions), (src_index, src_positions)
    out = _blend(act[target].float(), src[source].float(), alpha[:, None])
    act[target] = out.to(act.dtype)
    return act


@functools.cache
def _kernel():
    """Build the Triton kernel on first use: triton is imported lazily (it may be absent), and
    ``triton.jit`` decides at decoration time whether to use the interpreter."""
    import triton
    import triton.language as tl

    # Layout: one program per edit, covering that edit's heads x d slice as a 2-D block. An edit
    # with heads == -1 thus loads its indices and alpha once and streams all heads, and the
    # launch needs no host-side expansion of -1 into per-head rows (which would cost a nonzero()
    # sync and extra index tensors). Single-head edits get BLOCK_H = 1 when no edit asks for all
    # heads; otherwise masked rows cost lanes but no memory traffic. Every edited element is
    # read once from act, once from src, and written once; nothing else is touched.
    @triton.jit
    def patch_kernel(
        act_ptr,
        src_ptr,
        rows_ptr,
        pos_ptr,
        heads_ptr,
        sidx_ptr,
        spos_ptr,
        alpha_ptr,
        n_heads,
        d,
        a_sb,
        a_sp,
        a_sh,
        a_sd,
        s_sb,
        s_sp,
        s_sh,
        s_sd,
        HAS_HEADS: tl.constexpr,
        BLOCK_H: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        e = tl.program_id(0)
        a_base = act_ptr + tl.load(rows_ptr + e) * a_sb + tl.load(pos_ptr + e) * a_sp
        s_base = src_ptr + tl.load(sidx_ptr + e) * s_sb + tl.load(spos_ptr + e) * s_sp
        alpha = tl.load(alpha_ptr + e)
        if HAS_HEADS:
            h = tl.load(heads_ptr + e)
            first = tl.where(h < 0, 0, h)
            count = tl.where(h < 0, n_heads, 1)
        else:
            first = 0
            count = 1
        oh = tl.arange(0, BLOCK_H)
        od = tl.arange(0, BLOCK_D)
        for h0 in range(0, count, BLOCK_H):
            hh = h0 + oh
            head_ok = hh < count
            head = first + hh
            for d0 in range(0, d, BLOCK_D):
                cols = d0 + od
                m = head_ok[:, None] & (cols < d)[None, :]
                a_ptrs = a_base + head[:, None] * a_sh + cols[None, :] * a_sd
                s_ptrs = s_base + head[:, None] * s_sh + cols[None, :] * s_sd
                x = tl.load(a_ptrs, mask=m).to(tl.float32)
                s = tl.load(s_ptrs, mask=m).to(tl.float32)
                mixed = (1.0 - alpha) * x + alpha * s
                out = tl.where(alpha == 1.0, s, tl.where(alpha == 0.0, x, mixed))
                tl.store(a_ptrs, out.to(act_ptr.dtype.element_ty), mask=m)

    return patch_kernel


def patch_or_mix_triton(
    act: Float[Tensor, "batch pos *head d"],
    src: Float[Tensor, "n_src src_pos *head d"],
    rows: Int[Tensor, " n_edits"],
    positions: Int[Tensor, " n_edits"],
    heads: Int[Tensor, " n_edits"],
    src_index: Int[Tensor, " n_edits"],
    src_positions: Int[Tensor, " n_edits"],
    alpha: Float[Tensor, " n_edits"],
) -> Float[Tensor, "batch pos *head d"]:
    """Triton version: one launch, strided access (``act`` is never copied, so edits land in
    the caller's buffer even for transposed or sliced views). Edits in place, returns ``act``.

    bf16 blends can differ from the twin by one ulp under the interpreter, which truncates
    fp32 -> bf16 where GPUs and torch round to nearest even; alpha 0 and 1 are bit-exact."""
    rows, positions, heads, src_index, src_positions, alpha, all_heads = _check(
        act, src, rows, positions, heads, src_index, src_positions, alpha
    )
    n = rows.numel()
    if n == 0:
        return act
    import triton

    has_heads = act.dim() == 4
    n_heads, d = (act.shape[2] if has_heads else 1), act.shape[-1]
    a_st = act.stride() if has_heads else (act.stride(0), act.stride(1), 0, act.stride(2))
    s_st = src.stride() if has_heads else (src.stride(0), src.stride(1), 0, src.stride(2))
    block_d = min(triton.next_power_of_2(d), _BLOCK_ELEMS)
    widest = n_heads if all_heads else 1
    block_h = min(triton.next_power_of_2(widest), max(1, _BLOCK_ELEMS // block_d))
    with torch.cuda.device(act.device) if act.is_cuda else contextlib.nullcontext():
        _kernel()[(n,)](
            act,
            src,
            rows,
            positions,
            heads,
            src_index,
            src_positions,
            alpha,
            n_heads,
            d,
            *a_st,
            *s_st,
            HAS_HEADS=has_heads,
            BLOCK_H=block_h,
            BLOCK_D=block_d,
        )
    return act


def patch_or_mix(
    act: Float[Tensor, "batch pos *head d"],
    src: Float[Tensor, "n_src src_pos *head d"],
    rows: Int[Tensor, " n_edits"],
    positions: Int[Tensor, " n_edits"],
    heads: Int[Tensor, " n_edits"],
    src_index: Int[Tensor, " n_edits"],
    src_positions: Int[Tensor, " n_edits"],
    alpha: Float[Tensor, " n_edits"],
) -> Float[Tensor, "batch pos *head d"]:
    """Blend ``src`` slices into ``act`` in place (see module docstring); returns ``act``.

    Dispatches to the Triton kernel or the torch twin per ``interp.kernels.dispatch.use_triton``.
    """
    fn = patch_or_mix_triton if use_triton(act) else patch_or_mix_torch
    return fn(act, src, rows, positions, heads, src_index, src_positions, alpha)
