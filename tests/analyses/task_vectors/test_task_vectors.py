"""Function vectors, task vectors and soft injection (circuits.task_vectors).

Fast paths against slow references on the organism (a trained 4-layer Llama): the AIE of every
head as one engine plan against the published per-head loop; theta's gradient against finite
differences; the injection through both backends, the engine (native and hooked) and the
training path; soft injection's training; and the task and function vector plans against
hand-written hooks. The run end to end is in test_task_vectors_run.py.
"""

from __future__ import annotations

import pytest
import torch

from circuits.task_vectors import (
    INJECT,
    AverageIndirectEffect,
    FunctionVector,
    SoftInjection,
    TaskSplit,
    TaskVector,
    accuracy,
    add_sweep,
    aie_loop,
    function_vector,
    inject_hooks,
    injection_logits,
    injection_loss,
    task_embedding,
    wilson,
)
from circuits.task_vectors.function_vector import out_proj
from interp.engine.batched import Engine
from interp.errors import IclscopeError
from interp.models import load_model

TASK = "fn_copy_first"


@pytest.fixture(scope="module")
def organism():
    return load_model("organism")


@pytest.fixture(scope="module")
def setup(organism):
    builder = organism.prompt_builder(labels="first")
    split = TaskSplit.make(TASK, n_test=12)
    te = task_embedding(organism, split.build(builder, split.sample_train(12, "te"), 4, "te"))
    return builder, split, te


def test_split_holds_test_items_out(setup):
    builder, split, _ = setup
    test_x = {x for x, _ in split.test}
    assert test_x.isdisjoint(x for x, _ in split.train)
    eps = split.episodes(split.test, 4, __import__("random").Random(0))
    assert all(test_x.isdisjoint(x for x, _ in ep.demos) for ep in eps)
    clean = split.build(builder, split.test[:4], 4, "s")
    shuffled = split.build(builder, split.test[:4], 4, "s", shuffle_labels=True)
    assert torch.equal(clean.answer_ids, shuffled.answer_ids)  # same queries, same answers
    assert clean.texts != shuffled.texts  # but the demonstrations' labels moved
    with pytest.raises(IclscopeError, match="too few"):
        TaskSplit.make("nl_first_letter", n_test=50)
    with pytest.raises(IclscopeError, match="function task"):
        TaskSplit.make("nl_sentiment_natural")


def test_wilson_interval():
    lo, hi = wilson(20, 40)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.2 * 1.5, abs=0.02)
    assert wilson(0, 40)[0] == 0.0 and wilson(40, 40)[1] == 1.0


def test_aie_plan_matches_per_head_loop(organism, setup):
    builder, split, te = setup
    shuffled = split.build(builder, split.sample_train(2, "aie"), 4, "aie", shuffle_labels=True)
    fast = AverageIndirectEffect().run(organism, te.heads, shuffled)
    slow = aie_loop(organism, te.heads, shuffled)
    assert len(fast) == organism.cfg.n_layers * organism.cfg.n_heads
    assert fast.aie.abs().max() > 1e-3  # some head matters: the comparison is not 0 vs 0
    assert (fast.aie - slow.aie).abs().max() <= 1e-5
    assert fast.baseline.iloc[0] == pytest.approx(slow.baseline.iloc[0], abs=1e-6)


def test_injection_parity_across_backends_and_engine(organism, setup):
    builder, split, te = setup
    batch = split.build(builder, split.test[:3], 0, "zero")
    alpha = torch.rand(
        organism.cfg.n_layers, organism.cfg.n_heads, generator=torch.Generator().manual_seed(0)
    )
    rows = torch.arange(len(batch))
    answer = batch.answer_ids

    def prob(logits):
        return torch.softmax(logits.float(), -1)[rows, answer]

    hooks = inject_hooks(alpha, te.heads, batch.s_q)
    tl = organism.run_with_hooks(batch.tokens, hooks, batch.attention_mask)[rows, batch.s_q]
    nn_model = load_model("organism", backend="nnsight")
    nn = nn_model.run_with_hooks(batch.tokens, hooks, batch.attention_mask)[rows, batch.s_q]
    with torch.no_grad():
        train = injection_logits(
            organism, batch.tokens, batch.attention_mask, batch.s_q, alpha, te.heads
        )
    plan = SoftInjection.plan(alpha, te.heads, batch)
    native = Engine(organism)
    assert native._native(plan) is not None  # the fast path takes hook_task_inject
    fast = SoftInjection().evaluate(organism, alpha, te.heads, batch, native, metric="prob")
    slow = Engine(organism, fast=False)
    hooked = SoftInjection().evaluate(organism, alpha, te.heads, batch, slow, metric="prob")
    plain = organism(batch.tokens, batch.attention_mask)[rows, batch.s_q]
    ref = prob(tl)
    assert (ref - prob(plain)).abs().max() > 1e-3  # the injection changes the answer
    for other in (prob(nn), prob(train), fast, hooked):
        assert (ref - other.float()).abs().max() <= 1e-5
    # the hook is named on both backends, right after hook_z
    for m in (organism, nn_model):
        names = m.hook_names()
        assert names.index(INJECT.format(layer=1)) == names.index("blocks.1.attn.hook_z") + 1


def test_theta_gradient_matches_finite_differences(setup):
    builder, split, te = setup
    model = load_model("organism", dtype=torch.float64)
    batch = split.build(builder, split.train[:4], 0, "grad")
    te64 = te.heads.double()
    theta = torch.randn(
        model.cfg.n_layers,
        model.cfg.n_heads,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(1),
    ).requires_grad_()
    injection_loss(model, batch, theta, te64).backward()
    # float64 weights, but Hugging Face's RMSNorm and rotary run in float32, so the loss carries
    # ~1e-7 of noise: central differences of step 1e-3 (truncation ~1e-6) sit above it, and
    # the noise they keep (~5e-5 on a derivative) sets the tolerances
    eps = 1e-3

    def central(direction: torch.Tensor) -> float:
        with torch.no_grad():
            up = injection_loss(model, batch, theta.detach() + eps * direction, te64)
            down = injection_loss(model, batch, theta.detach() - eps * direction, te64)
        return float(up - down) / (2 * eps)

    for layer, head in [(0, 0), (1, 3), (2, 5), (3, 7)]:
        one = torch.zeros_like(theta)
        one[layer, head] = 1.0
        assert theta.grad[layer, head].item() == pytest.approx(central(one), abs=2e-4)
    # along the gradient itself the derivative is |grad|, far above the noise
    unit = theta.grad / theta.grad.norm()
    assert central(unit) == pytest.approx(theta.grad.norm().item(), rel=1e-3)
    assert theta.grad.abs().max() > 1e-4


def test_soft_injection_trains_and_leaves_model_frozen(organism, setup):
    builder, split, te = setup
    train = split.build(builder, split.train[:16], 0, "train")
    before = [p.detach().clone() for p in organism.plain_model().parameters()]
    si = SoftInjection(steps=8, lr=0.2, batch=8)
    alpha = si.fit(organism, {TASK: (te.heads, train)})
    assert alpha.shape == (organism.cfg.n_layers, organism.cfg.n_heads)
    assert not torch.allclose(alpha, torch.full_like(alpha, 0.5))  # theta moved from 0
    with torch.no_grad():  # the loss over every training prompt went down
        start = injection_loss(organism, train, torch.zeros_like(alpha), te.heads)
        end = injection_loss(organism, train, torch.logit(alpha.double()).float(), te.heads)
    assert end < start
    after = list(organism.plain_model().parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_training_runs_the_last_token_on_cached_prefixes(organism, setup):
    """Each training step computes only the last prompt token on the prefix's cached keys and
    values (nothing before it depends on alpha): the same logits as the full forward, for
    prompts of two tasks of different lengths in one batch, and every step's forward is one
    position wide."""
    from circuits.task_vectors.soft_injection import (
        PrefixCache,
        _stack,
        cached_injection_logits,
    )

    builder, split, te = setup
    short = split.build(builder, split.train[:4], 0, "short")
    other = TaskSplit.make("fn_copy_last", n_test=12)
    long = other.build(builder, other.train[:3], 1, "long")  # one shot: longer prompts
    tasks = {TASK: (te.heads, short), "fn_copy_last": (te.heads.flip(0), long)}
    items = [(name, i) for name, (_, b) in tasks.items() for i in range(len(b))]
    width = max(b.tokens.shape[1] for _, b in tasks.values())
    tokens, mask, last, _, te_rows = _stack(tasks, items, width)
    assert last.unique().numel() > 1  # the prefixes differ in length
    alpha = torch.rand(
        organism.cfg.n_layers, organism.cfg.n_heads, generator=torch.Generator().manual_seed(3)
    )
    prefix = PrefixCache.build(organism, tokens, mask, last)
    rows = torch.tensor([5, 0, 6, 2])
    with torch.no_grad():
        full = injection_logits(
            organism, tokens[rows], mask[rows], last[rows], alpha, te_rows[rows]
        )
        fast = cached_injection_logits(organism, prefix, rows, alpha, te_rows[rows])
    assert (full - fast).abs().max() <= 1e-4 * full.abs().max()
    widths = []
    hook = organism.plain_model().base_model.register_forward_pre_hook(
        lambda m, a, k: widths.append(k["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        SoftInjection(steps=3, lr=0.2, batch=4).fit(organism, tasks)
    finally:
        hook.remove()
    assert widths[0] > 1 and widths[1:] == [1, 1, 1]  # one prefix pass, then the last token


def test_seed_reaches_alpha_through_batch_order_and_init(organism, setup):
    """theta starts at 0, so the seed acts only through which prompts fill each batch: seeds
    differ when a batch is a sample of the training prompts, barely when it holds them all
    (only the row order changes); ``init_std`` lets the seed move the start as well."""
    builder, split, te = setup
    train = split.build(builder, split.train[:8], 0, "seed")

    def fit(seed, batch, init_std=0.0):
        si = SoftInjection(steps=3, lr=0.5, batch=batch, seed=seed, init_std=init_std)
        return si.fit(organism, {TASK: (te.heads, train)})

    assert (fit(0, 3) - fit(1, 3)).abs().max() > 1e-2
    assert (fit(0, 8) - fit(1, 8)).abs().max() < 1e-3
    assert (fit(0, 8, 0.5) - fit(1, 8, 0.5)).abs().max() > 1e-2


def test_task_vector_plan_matches_hook(organism, setup):
    builder, split, te = setup
    batch = split.build(builder, split.test[:4], 0, "tv")
    sweep = TaskVector().sweep(organism, batch, te.resid, layers=[1, 2])
    rows = torch.arange(len(batch))
    for layer in (1, 2):

        def put(resid, hook, layer=layer):
            resid[rows, batch.s_q] = te.resid[layer]
            return resid

        logits = organism.run_with_hooks(
            batch.tokens, [(f"blocks.{layer}.hook_resid_post", put)], batch.attention_mask
        )[rows, batch.s_q]
        want = (logits.argmax(-1) == batch.answer_ids).float()
        got = torch.tensor(sweep[sweep.layer == layer].sort_values("prompt").correct.to_numpy())
        assert torch.equal(want, got.float())


def test_function_vector_is_the_heads_output(organism, setup):
    builder, split, te = setup
    d = organism.cfg.d_head
    w = out_proj(organism.plain_model(), 2).weight  # (d_model, heads * d_head)
    one = function_vector(organism, te.heads, [(2, 3)])
    assert torch.allclose(one, w[:, 3 * d : 4 * d] @ te.heads[2, 3], atol=1e-5)
    two = function_vector(organism, te.heads, [(2, 3), (1, 0)])
    assert torch.allclose(two, one + function_vector(organism, te.heads, [(1, 0)]), atol=1e-5)
    batch = split.build(builder, split.test[:6], 0, "fv")
    sweep = add_sweep(organism, batch, torch.zeros_like(one), [0, 3])
    by_layer = sweep.groupby("layer").correct.mean()
    assert by_layer[0] == by_layer[-1] == by_layer[3]  # adding nothing changes nothing
    # the engine plan (addition written as a replacement) against the hook that adds
    big = 8 * function_vector(organism, te.heads, [(2, 3), (1, 0), (3, 1)])
    slow = add_sweep(organism, batch, big, [0, 1, 2, 3])
    fast = FunctionVector().sweep(organism, batch, big)
    key = ["layer", "prompt"]
    slow, fast = slow.sort_values(key).reset_index(drop=True), fast.sort_values(key)
    assert (slow.correct.to_numpy() == fast.correct.to_numpy()).all()
    assert slow.groupby("layer").correct.mean().nunique() > 1  # the vector changes answers
    assert torch.equal(
        accuracy(organism, batch), torch.tensor(slow[slow.layer == -1].correct.to_numpy()).float()
    )
