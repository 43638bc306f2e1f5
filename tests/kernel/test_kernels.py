"""Triton kernels (under the interpreter) against their torch twins and a per-element loop oracle.

Sources are poisoned (offset by +100) so an edit that is skipped, or lands on the wrong slice,
is far off; every element outside the edited slices must be bitwise unchanged, in the whole
underlying buffer, so a write through a wrong stride is caught too.

``ICLSCOPE_TEST_DEVICE=cuda TRITON_INTERPRET=0`` runs the two parity tests on a GPU, compiled for
real (``scripts/device_checks.sh``); the oracle always runs on the CPU.
"""

import os
import sys
import zlib

os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton

import pytest  # noqa: E402
import torch  # noqa: E402

from interp import kernels  # noqa: E402
from interp.errors import IclscopeError  # noqa: E402
from interp.kernels import blend, dispatch, edge_mask  # noqa: E402

DEVICE = os.environ.get("ICLSCOPE_TEST_DEVICE", "cpu")
TOL = {torch.float32: dict(rtol=1e-6, atol=1e-6), torch.bfloat16: dict(rtol=1e-2, atol=1e-6)}


def on_device(*tensors):
    return [t.to(DEVICE) for t in tensors]


def bits(t):
    return t.view(torch.int16 if t.element_size() == 2 else torch.int32)


def make_buffer(shape, dtype, layout, gen, offset=0.0):
    """A buffer and a function giving the (possibly non-contiguous) view of logical `shape`."""
    if layout == "contig":
        view, buf_shape = (lambda b: b), shape
    elif layout == "transpose":  # (b, h, p, d) storage seen as (b, p, h, d); 3-D: (p, b, d)
        perm = (0, 2, 1, 3) if len(shape) == 4 else (1, 0, 2)
        view, buf_shape = (lambda b: b.permute(perm)), [shape[i] for i in perm]
    else:  # every other row and d element of a bigger buffer, with margins on pos and d
        buf_shape = [2 * shape[0] + 1, shape[1] + 2, *shape[2:-1], 2 * shape[-1] + 3]
        view = lambda b: b[1::2, 1 : shape[1] + 1, ..., 2 : 2 * shape[-1] + 2 : 2]
    buf = (torch.randn(buf_shape, generator=gen) + offset).to(dtype)
    assert view(buf).shape == tuple(shape)
    return buf, view


def random_edits(gen, b, p, h, n_src, sp, four_d):
    """Unique targets; heads mix -1 with (pairs of) specific heads; alpha cycles 0, 1, random."""
    pairs = torch.randperm(b * p, generator=gen)[: int(torch.randint(3, 9, (1,), generator=gen))]
    rows, pos, heads = [], [], []
    for i, pair in enumerate(pairs.tolist()):
        hs = torch.randperm(h, generator=gen)[: 1 + i % 2].tolist() if i % 3 else [-1]
        hs = hs if four_d else [int(torch.randint(-1, 4, (1,), generator=gen))]  # 3-D: ignored
        for hh in hs:
            rows.append(pair // p), pos.append(pair % p), heads.append(hh)
    n = len(rows)
    rand = torch.rand(n, generator=gen) * 0.8 + 0.1
    alpha = torch.tensor([(0.0, 1.0, float(rand[e]))[e % 3] for e in range(n)])
    return dict(
        rows=torch.tensor(rows),
        positions=torch.tensor(pos),
        heads=torch.tensor(heads),
        src_index=torch.randint(0, n_src, (n,), generator=gen),
        src_positions=torch.randint(0, sp, (n,), generator=gen),
        alpha=alpha,
    )


def oracle_patch(act, src, e):
    """Per-element loop: expected fp32 view, edited mask, alpha==1 and alpha==0 masks."""
    exp, edited = act.float().clone(), torch.zeros(act.shape, dtype=torch.bool)
    copied, kept = edited.clone(), edited.clone()
    for i in range(e["rows"].numel()):
        r, p, h = int(e["rows"][i]), int(e["positions"][i]), int(e["heads"][i])
        si, sp, a = int(e["src_index"][i]), int(e["src_positions"][i]), float(e["alpha"][i])
        hs = [()] if act.dim() == 3 else [(x,) for x in (range(act.shape[2]) if h < 0 else [h])]
        for hh in hs:
            x, s = act[(r, p, *hh)].float(), src[(si, sp, *hh)].float()
            exp[(r, p, *hh)] = s if a == 1 else x if a == 0 else (1 - a) * x + a * s
            edited[(r, p, *hh)] = True
            (copied if a == 1 else kept if a == 0 else edited)[(r, p, *hh)] = True
    return exp, edited, copied, kept


@pytest.mark.parametrize("dims", [3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contig", "transpose", "slice"])
def test_patch_triton_matches_twin_and_oracle(monkeypatch, dims, dtype, layout):
    monkeypatch.setenv("ICLSCOPE_KERNELS", "triton")
    seed = zlib.crc32(f"{dims} {dtype} {layout}".encode()) % 10_000
    gen = torch.Generator().manual_seed(seed)
    b, p, h, n_src, sp = (
        int(torch.randint(lo, hi, (1,), generator=gen))
        for lo, hi in ((2, 5), (3, 8), (1, 6), (1, 4), (1, 6))
    )
    d = (8, 24, 40)[seed % 3]
    if layout == "slice":  # 16-element blocks: the kernel's head and d loops and tail masks run
        monkeypatch.setattr(blend, "_BLOCK_ELEMS", 16)
        h, d = h + 2, 40
    tail = (h, d) if dims == 4 else (d,)
    buf, view = make_buffer((b, p, *tail), dtype, layout, gen)
    src_layout = {"contig": "transpose", "transpose": "slice", "slice": "contig"}[layout]
    sbuf, sview = make_buffer((n_src, sp, *tail), dtype, src_layout, gen, offset=100.0)
    edits = random_edits(gen, b, p, h, n_src, sp, dims == 4)
    before, twin_buf = buf.clone(), buf.clone()
    exp, edited, copied, kept = oracle_patch(view(before), sview(sbuf), edits)

    buf, twin_buf, sbuf = on_device(buf, twin_buf, sbuf)
    on = dict(zip(edits, on_device(*edits.values())))
    act = view(buf)
    assert kernels.patch_or_mix(act, sview(sbuf), **on) is act
    kernels.patch_or_mix_torch(view(twin_buf), sview(sbuf), **on)
    buf, twin_buf = buf.cpu(), twin_buf.cpu()

    # the whole buffer (margins included) is bitwise unchanged outside the edited slices
    touched = torch.zeros(buf.shape, dtype=torch.bool)
    view(touched)[edited] = True
    assert torch.equal(bits(buf[~touched]), bits(before[~touched]))
    assert torch.equal(bits(twin_buf[~touched]), bits(before[~touched]))
    assert edited.any() and (copied.any() or kept.any())
    for out in (view(buf), view(twin_buf)):
        torch.testing.assert_close(out[edited].float(), exp[edited], **TOL[dtype])
        assert torch.equal(bits(out[copied]), bits(exp[copied].to(dtype)))  # alpha=1 copies
        assert torch.equal(bits(out[kept]), bits(view(before)[kept]))  # alpha=0 is a no-op
    torch.testing.assert_close(view(buf).float(), view(twin_buf).float(), **TOL[dtype])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy sees 0 * inf
@pytest.mark.parametrize("fn", [kernels.patch_or_mix_triton, kernels.patch_or_mix_torch])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_alpha_ends_are_exact_even_for_nonfinite_values(fn, dtype):
    """alpha=1 must copy src bits even over inf/nan (0*inf is nan), alpha=0 keep act bits even
    from an inf source; a plain blend formula fails both."""
    act = torch.tensor([[[float("nan"), float("inf")], [0.5, 2.0], [0.1, 0.2]]], dtype=dtype)
    src = torch.tensor([[[3.3, 1e-3], [float("-inf"), 5.0], [7.0, 8.0]]], dtype=dtype)
    i = torch.tensor([0, 0, 0])
    ends = dict(src_index=i, src_positions=torch.tensor([0, 1, 2]), alpha=torch.tensor([1, 0, 1.0]))
    out = fn(act.clone(), src, i, torch.tensor([0, 1, 2]), i, **ends)
    assert torch.equal(bits(out[0, 0]), bits(src[0, 0])) and torch.equal(out[0, 2], src[0, 2])
    assert torch.equal(bits(out[0, 1]), bits(act[0, 1]))


def oracle_edges(scores, rows, heads, queries, keys, value, n_kv):
    exp, edited = scores.float().clone(), torch.zeros(scores.shape, dtype=torch.bool)
    group = scores.shape[1] // (n_kv or scores.shape[1])
    for r, h, q, k in zip(rows.tolist(), heads.tolist(), queries.tolist(), keys.tolist()):
        hs = range(scores.shape[1]) if h < 0 else range(h * group, (h + 1) * group)
        for hh in hs:
            exp[r, hh, q, k], edited[r, hh, q, k] = exp[r, hh, q, k] + value, True
    return exp, edited


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("gqa", [False, True])
@pytest.mark.parametrize("value", [float("-inf"), -2.5])
def test_mask_edges_triton_matches_twin_and_oracle(monkeypatch, dtype, gqa, value):
    monkeypatch.setenv("ICLSCOPE_KERNELS", "triton")
    gen = torch.Generator().manual_seed(zlib.crc32(f"{dtype} {gqa} {value}".encode()))
    kv, group, b, q_len, k_len = (int(torch.randint(2, 6, (1,), generator=gen)) for _ in "12345")
    n_heads, n_kv = (kv * group, kv) if gqa else (kv, None)
    buf = torch.randn(b, n_heads, k_len, q_len, generator=gen).to(dtype)  # scores = transpose
    rows, queries, keys = (torch.randint(0, hi, (9,), generator=gen) for hi in (b, q_len, k_len))
    heads = torch.randint(-1, n_kv or n_heads, (9,), generator=gen)
    heads[0] = -1
    # a repeated edge, and a specific head overlapping the all-heads edge 0
    edges = [torch.cat([t, t[1:2], t[:1]]) for t in (rows, heads, queries, keys)]
    edges[1][-1] = 0
    before, twin_buf = buf.clone(), buf.clone()
    exp, edited = oracle_edges(before.transpose(2, 3), *edges, value, n_kv)

    buf, twin_buf = on_device(buf, twin_buf)
    scores = buf.transpose(2, 3)
    assert kernels.mask_edges(scores, *on_device(*edges), value, n_kv) is scores
    kernels.mask_edges_torch(twin_buf.transpose(2, 3), *on_device(*edges), value, n_kv)
    buf, twin_buf, scores = buf.cpu(), twin_buf.cpu(), scores.cpu()
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else TOL[dtype]
    for out in (buf.transpose(2, 3), twin_buf.transpose(2, 3)):
        assert torch.equal(bits(out[~edited]), bits(before.transpose(2, 3)[~edited]))
        torch.testing.assert_close(out[edited].float(), exp[edited], **tol)
    if value == float("-inf"):
        assert torch.isneginf(scores[edited]).all()


def test_gqa_edge_hits_exactly_its_query_group(monkeypatch):
    monkeypatch.setenv("ICLSCOPE_KERNELS", "triton")
    scores, one = torch.zeros(1, 4, 3, 3), torch.tensor([1])
    kernels.mask_edges(scores, one - 1, one, one, one + 1, n_kv_heads=2)  # kv head 1: q heads 2, 3
    assert torch.isneginf(scores[0, 2:, 1, 2]).all() and scores.isinf().sum() == 2


def _spy(monkeypatch, module, name):
    monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail(f"{name} should not run"))


@pytest.mark.parametrize("mode", ["torch", "auto"])
def test_torch_and_cpu_auto_use_the_twin(monkeypatch, mode):
    monkeypatch.setenv("ICLSCOPE_KERNELS", mode)
    _spy(monkeypatch, blend, "patch_or_mix_triton")
    _spy(monkeypatch, edge_mask, "mask_edges_triton")
    assert not dispatch.use_triton(torch.zeros(1))
    act, i = torch.zeros(1, 2, 3), torch.tensor([0])
    kernels.patch_or_mix(act, torch.ones(1, 1, 3), i, i + 1, i, i, i, torch.ones(1))
    assert torch.equal(act[0, 1], torch.ones(3)) and act[0, 0].eq(0).all()
    scores = torch.zeros(1, 2, 2, 2)
    kernels.mask_edges(scores, i, i - 1, i, i + 1)
    assert torch.isneginf(scores[0, :, 0, 1]).all() and scores.isinf().sum() == 2


def test_forced_triton_uses_kernel_and_explains_when_it_cannot(monkeypatch):
    monkeypatch.setenv("ICLSCOPE_KERNELS", "triton")
    _spy(monkeypatch, blend, "patch_or_mix_torch")
    act, i = torch.zeros(1, 2, 3), torch.tensor([0])
    kernels.patch_or_mix(act, torch.ones(1, 1, 3), i, i, i, i, i, torch.ones(1))
    assert act[0, 0].eq(1).all()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(IclscopeError, match="TRITON_INTERPRET"):
        dispatch.use_triton(act)
    monkeypatch.setitem(sys.modules, "triton", None)  # simulate triton being absent
    with pytest.raises(IclscopeError, match="cannot be imported"):
        dispatch.use_triton(act)
    monkeypatch.setenv("ICLSCOPE_KERNELS", "auto")
    assert not dispatch.use_triton(act)
    monkeypatch.setenv("ICLSCOPE_KERNELS", "cuda-please")
    with pytest.raises(IclscopeError, match="not a known kernel backend"):
        dispatch.use_triton(act)


@pytest.mark.parametrize("mode", ["torch", "triton"])
def test_invalid_arguments_raise_named_errors(monkeypatch, mode):
    monkeypatch.setenv("ICLSCOPE_KERNELS", mode)
    act, src = torch.zeros(2, 3, 4, 5), torch.zeros(1, 3, 4, 5)
    i, one = torch.tensor([0]), torch.ones(1)
    bad = [
        (dict(rows=i + 2), "rows contains 2, out of range"),
        (dict(heads=i + 4), "heads contains 4"),
        (dict(heads=i - 2), "heads contains -2"),
        (dict(src_positions=i + 3), "src_positions contains 3"),
        (dict(alpha=torch.ones(2)), "alpha must be"),
        (dict(positions=torch.tensor([0, 1])), "positions has 2 entries"),
        (dict(src=torch.zeros(1, 3, 4, 6)), "does not match act"),
    ]
    args = dict(src=src, rows=i, positions=i, heads=i, src_index=i, src_positions=i, alpha=one)
    for change, message in bad:
        with pytest.raises(IclscopeError, match=message):
            kernels.patch_or_mix(act, **{**args, **change})
    assert not act.any()
    with pytest.raises(IclscopeError, match="keys contains 9"):
        kernels.mask_edges(torch.zeros(1, 4, 3, 3), i, i, i, i + 9)
    with pytest.raises(IclscopeError, match="n_kv_heads=3 does not divide"):
        kernels.mask_edges(torch.zeros(1, 4, 3, 3), i, i, i, i, n_kv_heads=3)
    e5 = (torch.zeros(0, dtype=torch.int64),) * 5
    assert kernels.patch_or_mix(act, src, *e5, torch.zeros(0)) is act and not act.any()
    assert not kernels.mask_edges(torch.zeros(1, 4, 3, 3), *e5[:4]).isinf().any()
