"""Eviction flags: each method on hand-made attention, the key masks on both backends against an
eager forward with explicit 4-D masks, the fast after-prefill path, and the gate."""

from __future__ import annotations

import pytest
import torch

from circuits.eviction import (
    H2O,
    TOVA,
    GateStack,
    RandomEviction,
    SnapKV,
    StreamingLLM,
    budgets,
    decode,
    gate_examples,
    prefill,
    straight_through,
    train_gate,
)
from interp.errors import IclscopeError
from interp.models.evict import apply_flags

# One prompt, 6 positions: keys 0-4 are the context, position 5 the final row (start = 5).
# Rows are queries, columns keys; each row is a causal attention distribution.
HEAD0 = [
    [1.0, 0, 0, 0, 0, 0],
    [0.5, 0.5, 0, 0, 0, 0],
    [0.2, 0.2, 0.6, 0, 0, 0],
    [0.1, 0.6, 0.1, 0.2, 0, 0],
    [0.05, 0.15, 0.1, 0.1, 0.6, 0],
    [0.1, 0.1, 0.5, 0.1, 0.1, 0.1],
]
HEAD1 = [
    [1.0, 0, 0, 0, 0, 0],
    [0.9, 0.1, 0, 0, 0, 0],
    [0.8, 0.1, 0.1, 0, 0, 0],
    [0.1, 0.1, 0.1, 0.7, 0, 0],
    [0.1, 0.5, 0.1, 0.2, 0.1, 0],
    [0.0, 0.6, 0.0, 0.1, 0.2, 0.1],
]
PATTERN = torch.tensor([[HEAD0, HEAD1]])  # (batch 1, head 2, q 6, k 6)
QUERIES = torch.ones(1, 6, dtype=torch.bool)
CONTEXT = torch.tensor([[True] * 5 + [False]])
RATE = 0.4  # 5 context keys: keep round(0.6 * 5) = 3


def flags_of(method, pattern=PATTERN, rate=RATE, n_heads=2):
    return method.flags(pattern, QUERIES, CONTEXT, rate, n_heads=n_heads)[0].tolist()


def test_budget_counts_context_tokens_only():
    ctx = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    assert budgets(ctx, 0.5).tolist() == [2, 3]
    assert budgets(ctx, 0.0).tolist() == [4, 6] and budgets(ctx, 1.0).tolist() == [0, 0]
    with pytest.raises(IclscopeError):
        budgets(ctx, 1.5)


def test_h2o_by_hand():
    # column sums over all 6 queries, head 0: k0 1.95, k1 1.55, k2 1.3, k3 0.4, k4 0.7;
    # head 1: k0 2.9, k1 1.4, k2 0.3, k3 1.0, k4 0.3
    assert flags_of(H2O(window=0)) == [[1, 1, 1, 0, 0, 1], [1, 1, 0, 1, 0, 1]]
    # default window: half the budget (3 // 2 = 1) is the most recent key, k4
    assert flags_of(H2O()) == [[1, 1, 0, 0, 1, 1], [1, 1, 0, 0, 1, 1]]


def test_snapkv_by_hand():
    # window 1, no pooling: the last row's votes. Head 0 (.1 .1 .5 .1 .1): k2, then the two
    # earliest of the ties; head 1 (0 .6 0 .1 .2): k1, k4, k3
    assert flags_of(SnapKV(window=1, kernel=1)) == [[1, 1, 1, 0, 0, 1], [0, 1, 0, 1, 1, 1]]
    # window 2 (rows 4, 5), pool 3: head 0 votes (.15 .25 .6 .2 .7 .1) pool to
    # (.133 .333 .35 .5 .333); k4 is in the window, so kept; then k3 (.5), k2 (.35)
    assert flags_of(SnapKV(window=2, kernel=3))[0] == [0, 0, 1, 1, 1, 1]
    # head 1 votes (.1 1.1 .1 .3 .3 .1) pool to (.4 .433 .5 .233 .233): k4 forced, k2, k1
    assert flags_of(SnapKV(window=2, kernel=3))[1] == [0, 1, 1, 0, 1, 1]


def test_tova_by_hand():
    # last row averaged over heads: (.05 .35 .25 .1 .15): k1, k2, k4, the same in both heads
    assert flags_of(TOVA()) == [[0, 1, 1, 0, 1, 1], [0, 1, 1, 0, 1, 1]]


def test_streaming_llm_by_hand():
    assert flags_of(StreamingLLM(sinks=1), None) == [[1, 0, 0, 1, 1, 1]] * 2
    assert flags_of(StreamingLLM(sinks=2), None, rate=0.2) == [[1, 1, 0, 1, 1, 1]] * 2


def test_random_keeps_the_budget_per_head_and_is_seeded():
    ctx = torch.tensor([[True] * 40])
    q = torch.ones(1, 40, dtype=torch.bool)
    f = RandomEviction(seed=3).flags(None, q, ctx, 0.75, layer=2, n_heads=4)
    assert f.shape == (1, 4, 40) and f.sum(-1).tolist() == [[10.0] * 4]
    assert not torch.equal(f[0, 0], f[0, 1])  # one draw per head
    g = RandomEviction(seed=3).flags(None, q, ctx, 0.75, layer=2, n_heads=4)
    assert torch.equal(f, g)
    assert not torch.equal(f, RandomEviction(seed=4).flags(None, q, ctx, 0.75, 2, 4))


def test_padding_and_final_rows_are_never_evicted():
    pattern = torch.softmax(torch.randn(2, 3, 8, 8), -1)
    ctx = torch.tensor([[False] * 2 + [True] * 4 + [False] * 2, [True] * 6 + [False] * 2])
    q = torch.tensor([[False, False] + [True] * 6, [True] * 8])
    for method in (H2O(), SnapKV(window=2), TOVA(), StreamingLLM(), RandomEviction()):
        f = method.flags(pattern, q, ctx, 0.5, n_heads=3)
        assert (f[~ctx[:, None].expand_as(f)] == 1).all(), method.name
        assert ((1 - f) * ctx[:, None]).sum(-1).tolist() == [[2.0] * 3, [3.0] * 3], method.name


# ---- masks on the backends ------------------------------------------------------------------


@pytest.fixture(scope="module")
def backends(tiny_dirs):
    from transformers import AutoModelForCausalLM

    from interp.models import load_model

    d = tiny_dirs["llama"]
    eager = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
    return load_model(d, "transformer_lens"), load_model(d, "nnsight"), eager


def explicit_mask(flags, n, start):
    """The 4-D additive mask by the rule, row by row: causal, and rows >= start lose the keys
    flagged 0 (never themselves)."""
    mask = torch.full((flags.shape[0], 1, n, n), torch.finfo(torch.float32).min)
    for b in range(flags.shape[0]):
        for i in range(n):
            for j in range(i + 1):
                if j == i or i < start or flags[b, j] == 1:
                    mask[b, 0, i, j] = 0.0
    return mask


@pytest.mark.parametrize("start", [0, 6])
def test_flag_hook_matches_eager_forward_with_explicit_4d_mask(backends, start):
    tl, nn, eager = backends
    torch.manual_seed(1)
    toks = torch.randint(5, 40, (2, 9))
    key_flags = (torch.rand(2, 9) > 0.4).float()  # the same for every head and layer
    flags = key_flags[:, None].expand(2, tl.cfg.n_heads, 9).contiguous()
    with torch.no_grad():
        ref = eager(input_ids=toks, attention_mask=explicit_mask(key_flags, 9, start)).logits
    hooks = [(f"blocks.{l}.attn.hook_evict_flags", lambda f, h: flags) for l in range(2)]
    for model in (tl, nn):
        with torch.no_grad(), model.evicting_from(start):
            out = model.run_with_hooks(toks, hooks)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert (out - eager(input_ids=toks).logits).abs().max() > 1e-3  # the flags did something


def test_per_head_flags_agree_across_backends_and_the_fast_path(backends):
    tl, nn, eager = backends
    torch.manual_seed(2)
    toks = torch.randint(5, 40, (3, 11))
    mask = torch.ones_like(toks)
    mask[0, :3] = 0  # left padding
    flags = (torch.rand(2, 3, tl.cfg.n_heads, 11) > 0.5).float()  # (layer, batch, head, pos)
    hooks = [(f"blocks.{l}.attn.hook_evict_flags", lambda f, h: flags[h.layer]) for l in range(2)]
    with torch.no_grad(), tl.evicting_from(8), nn.evicting_from(8):
        a = tl.run_with_hooks(toks, hooks, mask)[:, -1]
        b = nn.run_with_hooks(toks, hooks, mask)[:, -1]
    pre = prefill(eager, toks, mask, start=8)
    fast = decode(eager, pre, flags)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(decode(eager, pre, None), pre.full_logits, atol=1e-5, rtol=1e-5)


def test_flags_of_the_wrong_shape_are_refused(backends):
    tl, _, _ = backends
    bad = [("blocks.0.attn.hook_evict_flags", lambda f, h: torch.ones(1, 2, 3))]
    with pytest.raises(IclscopeError, match="eviction flags of shape"):
        tl.run_with_hooks(torch.randint(5, 40, (1, 5)), bad)


# ---- the gate -------------------------------------------------------------------------------


def test_straight_through_gradient_is_the_sigmoids():
    w = torch.randn(50, requires_grad=True)
    c = torch.randn(50)
    f = straight_through(torch.sigmoid(w))
    assert set(f.detach().tolist()) <= {0.0, 1.0}
    assert torch.equal(f.detach(), (torch.sigmoid(w) >= 0.5).float())
    (f * c).sum().backward()
    s = torch.sigmoid(w.detach())
    torch.testing.assert_close(w.grad, c * s * (1 - s))


def test_soft_mask_matches_hard_mask_and_passes_gradient_to_evicted_keys():
    torch.manual_seed(0)
    scores = torch.randn(1, 2, 5, 5).masked_fill(torch.ones(5, 5).triu(1).bool(), float("-inf"))
    hard = torch.tensor([[[1.0, 0, 1, 0, 1], [0, 1, 1, 1, 1]]])
    soft = hard.clone().requires_grad_(True)
    v = torch.randn(5)
    a = torch.softmax(apply_flags(scores, hard), -1) @ v
    b = torch.softmax(apply_flags(scores, soft), -1) @ v
    torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)
    b.sum().backward()
    assert soft.grad[0, 0, 1] != 0 and soft.grad[0, 0, 3] != 0  # evicted keys still learn


def test_distillation_targets_by_hand():
    from circuits.eviction.train import percentile, soft_target

    scores = torch.tensor([[[0.0, 0.3, 0.1, 0.5, 0.2, 9.0]]])  # last key: not context
    ctx = torch.tensor([[True] * 5 + [False]])
    # ranks among the 5 context keys: 0.0 -> 0, 0.1 -> 1, 0.2 -> 2, 0.3 -> 3, 0.5 -> 4; over 4
    assert percentile(scores, ctx)[0, 0].tolist() == [0.0, 0.75, 0.25, 1.0, 0.5, 0.0]
    t = soft_target(scores, ctx, 0.5)[0, 0, :5]
    assert t[4] == 0.5 and (t[[1, 3]] > 0.5).all() and (t[[0, 2]] < 0.5).all()


def test_gate_window_keeps_the_last_context_tokens_first():
    torch.manual_seed(0)
    gate = GateStack(n_layers=1, d_model=8, n_heads=2)
    h = [torch.randn(1, 10, 8)]
    ctx = torch.tensor([[True] * 8 + [False] * 2])
    f = gate.keep(h, ctx, 0.5, window=3)  # keep 4: positions 5, 6, 7 and the best other
    assert (f[0, 0, :, 5:] == 1).all() and f[0, 0, :, :5].sum(-1).tolist() == [1.0, 1.0]


def test_gate_is_causal_and_round_trips(tmp_path):
    torch.manual_seed(0)
    gate = GateStack(n_layers=2, d_model=16, n_heads=3, target_rate=0.5)
    h = [torch.randn(1, 7, 16) for _ in range(2)]
    p = gate.probs(h)
    h2 = [x.clone() for x in h]
    h2[0][:, 5:] += 3.0  # changing later tokens leaves earlier flags alone
    torch.testing.assert_close(gate.probs(h2)[0, :, :, :5], p[0, :, :, :5])
    assert not torch.allclose(gate.probs(h2)[0, :, :, 5:], p[0, :, :, 5:])
    ctx = torch.tensor([[True] * 6 + [False]])
    assert gate.keep(h, ctx, 0.5).sum(-1).tolist() == [[[4.0] * 3]] * 2  # 3 kept + final row
    gate.save(tmp_path / "g", {"objective": "distill"})
    torch.testing.assert_close(GateStack.load(tmp_path / "g").probs(h), p)
    with pytest.raises(IclscopeError, match="no trained gate"):
        GateStack.load(tmp_path)


@pytest.fixture(scope="module")
def gate_data(tiny_dirs, backends):
    from interp.models import load_model
    from interp.tasks.suite import build_family_batch

    _, _, eager = backends
    m = load_model(tiny_dirs["llama"], "nnsight")
    builder = m.prompt_builder(padding_side="left")
    batch = build_family_batch(builder, "sentiment_arbitrary", 8, 4, seed=0)
    return eager, gate_examples(eager, batch, rate=0.5, chunk=4)


def test_distillation_learns_the_targets_without_touching_the_model(gate_data):
    eager, examples = gate_data
    before = {k: v.clone() for k, v in eager.state_dict().items()}
    gate = GateStack.for_model(_cfg(eager), target_rate=0.5)
    record = train_gate(eager, gate, examples, "distill", epochs=30, lr=1e-2, log=lambda s: None)
    losses = [s["loss"] for s in record["history"]]
    assert losses[-1] < 0.9 * losses[0]
    assert all(torch.equal(before[k], v) for k, v in eager.state_dict().items())
    assert record["objective"] == "distill" and record["prompts"] == 8


def test_end_to_end_sends_gradient_through_the_frozen_model(gate_data):
    eager, examples = gate_data
    torch.manual_seed(0)
    gate = GateStack.for_model(_cfg(eager), target_rate=0.5)
    from circuits.eviction.train import end_to_end_loss

    for p in eager.parameters():
        p.requires_grad_(False)
    loss, rate = end_to_end_loss(eager, gate, examples[0], lam=0.0)  # the answer loss only
    loss.backward()
    grads = [p.grad for p in gate.gates[0].parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in eager.parameters())
    record = train_gate(eager, gate, examples, "end-to-end", epochs=2, log=lambda s: None)
    assert record["epochs_run"] == 2 and 0.0 <= record["history"][-1]["rate"] <= 1.0


def _cfg(hf):
    from interp.models.interface import ModelConfig

    return ModelConfig.from_hf("tiny", hf.config)
