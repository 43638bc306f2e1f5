"""The batched engine equals TransformerLens's one-forward-per-patch reference."""

from __future__ import annotations

import pytest
import torch
from random_plans import random_plan
from transformer_lens import patching

from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Knockout, Patch, PlanRow
from interp.engine.sweeps import head_sweep, resid_sweep
from interp.errors import IclscopeError
from interp.models import load_model
from interp.tasks.suite import build_pair_batches, get_family, sample_episodes

TOL = 1e-5


def pair(model, seed=0, k=3):
    """A clean batch and a corrupted one: the same demos, the query from another class."""
    return build_pair_batches(model.prompt_builder(), "sentiment_semantic", 1, k, seed)


@pytest.fixture(scope="module", params=["gpt2", "llama", "organism"])
def model(request, tiny_dirs):
    spec = "organism" if request.param == "organism" else tiny_dirs[request.param]
    return load_model(spec)


def reference_metric(clean, corrupted):
    s_q = int(clean.s_q[0])
    good, bad = int(clean.answer_ids[0]), int(corrupted.answer_ids[0])
    return lambda logits: logits[0, s_q, good] - logits[0, s_q, bad]


@pytest.mark.parametrize("fast", [False, True], ids=["hooked", "native"])
@pytest.mark.parametrize("resume", [False, True])
def test_heads_all_positions_match_transformer_lens(model, resume, fast):
    clean, corrupted = pair(model)
    _, clean_cache = model.bridge.run_with_cache(clean.tokens)
    ref = patching.get_act_patch_attn_head_out_all_pos(
        model.bridge, corrupted.tokens, clean_cache, reference_metric(clean, corrupted)
    )
    ours = Engine(model, max_batch=7, fast=fast).run(
        head_sweep(model.cfg, [0]), clean, corrupted, resume=resume, progress=False
    )
    grid = torch.tensor(ours.pivot(index="layer", columns="head", values="metric").values)
    assert grid.shape == ref.shape
    assert (grid - ref).abs().max() <= TOL


@pytest.mark.parametrize("fast", [False, True], ids=["hooked", "native"])
def test_heads_per_position_match_transformer_lens(model, fast):
    clean, corrupted = pair(model, seed=5, k=1)
    n_pos = clean.tokens.shape[1]
    _, clean_cache = model.bridge.run_with_cache(clean.tokens)
    ref = patching.get_act_patch_attn_head_out_by_pos(
        model.bridge, corrupted.tokens, clean_cache, reference_metric(clean, corrupted)
    )  # (layer, pos, head)
    ours = Engine(model, max_batch=64, fast=fast).run(
        head_sweep(model.cfg, [0], n_pos=n_pos), clean, corrupted, progress=False
    )
    grid = torch.tensor(ours.sort_values(["layer", "position", "head"]).metric.values).view(
        model.cfg.n_layers, n_pos, model.cfg.n_heads
    )
    assert (grid - ref).abs().max() <= TOL


def test_resid_pre_matches_transformer_lens(model):
    clean, corrupted = pair(model, seed=9, k=2)
    n_pos = clean.tokens.shape[1]
    _, clean_cache = model.bridge.run_with_cache(clean.tokens)
    ref = patching.get_act_patch_resid_pre(
        model.bridge, corrupted.tokens, clean_cache, reference_metric(clean, corrupted)
    )  # (layer, pos)
    ours = Engine(model, max_batch=32).run(
        resid_sweep(model.cfg, [0], n_pos), clean, corrupted, progress=False
    )
    grid = torch.tensor(ours.sort_values(["layer", "position"]).metric.values)
    assert (grid.view(model.cfg.n_layers, n_pos) - ref).abs().max() <= TOL


@pytest.mark.parametrize("fast", [False, True], ids=["hooked", "native"])
def test_soft_injection_and_knockout_rows(model, fast):
    clean, corrupted = pair(model)
    s_q = int(clean.s_q[0])
    y = clean.annotations[0].y
    layer = model.cfg.n_layers - 1
    z = f"blocks.{layer}.attn.hook_z"
    vec = torch.randn(model.cfg.n_heads, model.cfg.d_head)
    plan = InterventionPlan(
        [
            PlanRow(0, (), (("row", "none"),)),
            PlanRow(
                0,
                (Patch(z, "tensor", positions=(s_q,), alpha=0.5, tensor="tv"),),
                (("row", "inject"),),
            ),
            PlanRow(0, (Knockout(layer, (s_q,), tuple(y)),), (("row", "knock"),)),
        ],
        base="clean",
        tensors={"tv": vec},
    )
    ours = Engine(model, fast=fast).run(plan, clean, corrupted, metric="prob", progress=False)

    def inject(act, hook):
        act = act.clone()
        act[:, s_q] = 0.5 * act[:, s_q] + 0.5 * vec
        return act

    def knock(scores, hook):
        scores = scores.clone()
        scores[:, :, s_q, y] = float("-inf")
        return scores

    def prob(logits):
        return torch.softmax(logits[0, s_q], -1)[clean.answer_ids[0]]

    expect = [
        prob(model.bridge(clean.tokens)),
        prob(model.bridge.run_with_hooks(clean.tokens, fwd_hooks=[(z, inject)])),
        prob(
            model.bridge.run_with_hooks(
                clean.tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_attn_scores", knock)]
            )
        ),
    ]
    assert torch.allclose(torch.tensor(ours.metric.values), torch.stack(expect), atol=TOL)


def test_nnsight_backend_gives_the_same_numbers(tiny_dirs):
    tl = load_model(tiny_dirs["llama"])
    nn = load_model(tiny_dirs["llama"], backend="nnsight")
    clean, corrupted = pair(tl)
    plan = head_sweep(tl.cfg, [0])
    a = Engine(tl, fast=False).run(plan, clean, corrupted, progress=False)
    b = Engine(nn, fast=False).run(plan, clean, corrupted, progress=False)
    c = Engine(nn, fast=True).run(plan, clean, corrupted, progress=False)
    assert a.metric.abs().max() > 0  # the sweep measured something
    for other in (b, c):
        assert (
            torch.tensor(a.metric.values) - torch.tensor(other.metric.values)
        ).abs().max() <= TOL


@pytest.mark.parametrize("seed", [0, 1])
def test_resumed_fast_path_equals_a_full_forward_on_random_plans(model, seed):
    """Resuming at a layer, a position or a layer's tail changes nothing in the numbers."""
    clean, corrupted = build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 3, seed)
    plan = random_plan(model.cfg, clean.tokens.shape[1], seed)
    fast = Engine(model, max_batch=16, min_rows=8).run(plan, clean, corrupted, progress=False)
    slow = Engine(model, fast=False).run(plan, clean, corrupted, resume=False, progress=False)
    diff = (torch.tensor(fast.metric.values) - torch.tensor(slow.metric.values)).abs().max()
    assert diff <= TOL


def test_prompts_of_different_lengths_are_computed_only_to_their_read_out(model):
    """A resumed pass stops at its rows' furthest read-out: edits and knockouts past a shorter
    prompt's ``s_q`` (on its padding) are dropped there, and the numbers stay a full forward's."""
    builder = model.prompt_builder()
    family = get_family("sentiment_semantic")
    episodes = sample_episodes(family.name, 2, 1, 3) + sample_episodes(family.name, 2, 3, 3)
    batch = builder.build(family.template, episodes)
    assert len(set(batch.s_q.tolist())) > 1  # the short prompts end before the long ones
    rows = random_plan(model.cfg, batch.tokens.shape[1], 5, n_prompts=4).rows
    plan = InterventionPlan(rows, base="clean")
    assert any(
        q > batch.s_q[r.prompt]
        for r in rows
        for e in r.edits
        if isinstance(e, Knockout)
        for q in e.queries
    )  # some knockouts sit on a short prompt's padding
    fast = Engine(model, max_batch=16, min_rows=8).run(plan, batch, metric="prob", progress=False)
    slow = Engine(model, fast=False).run(plan, batch, metric="prob", resume=False, progress=False)
    diff = (torch.tensor(fast.metric.values) - torch.tensor(slow.metric.values)).abs().max()
    assert diff <= TOL


def test_overlapping_patches_in_one_row_are_refused(model):
    clean, corrupted = pair(model)
    hook = "blocks.0.hook_mlp_out"
    row = PlanRow(0, (Patch(hook, "clean", positions=(1, 2)), Patch(hook, "zero", positions=(2,))))
    with pytest.raises(IclscopeError, match="twice"):
        Engine(model).run(InterventionPlan([row]), clean, corrupted, progress=False)


def test_edits_given_as_lists_or_numpy_ints_run_like_tuples(model):
    import numpy as np

    clean, corrupted = pair(model)
    hook, s_q = "blocks.0.attn.hook_z", int(clean.s_q[0])
    as_tuples = Patch(hook, "clean", positions=(1, s_q), heads=(0,))
    as_lists = Patch(hook, "clean", positions=[1, np.int64(s_q)], heads=[np.int32(0)])
    assert as_lists == as_tuples and hash(as_lists) == hash(as_tuples)
    assert Knockout(0, [s_q], np.arange(2)) == Knockout(0, (s_q,), (0, 1))
    plan = InterventionPlan([PlanRow(0, (as_tuples,)), PlanRow(0, (as_lists,))])
    out = Engine(model).run(plan, clean, corrupted, progress=False)
    assert out.metric[0] == out.metric[1]


def test_rows_without_edits_are_read_off_the_base_run(model):
    """An edit-free row costs no forward pass, and reads what a full forward of its prompt
    would."""
    clean, corrupted = build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 3, 4)
    plan = random_plan(model.cfg, clean.tokens.shape[1], seed=4, n_rows=6)
    rows = [PlanRow(0, (), (("row", "none"),)), *plan.rows, PlanRow(0, (), (("row", "none2"),))]
    plan = InterventionPlan(rows, base="corrupted")
    engine = Engine(model, max_batch=4)
    layout = engine.layout(plan, clean, corrupted)
    assert ("bare", [0, len(rows) - 1]) in layout.chunks
    fast = engine.run(plan, clean, corrupted, progress=False)
    slow = Engine(model, fast=False).run(plan, clean, corrupted, resume=False, progress=False)
    diff = (torch.tensor(fast.metric.values) - torch.tensor(slow.metric.values)).abs().max()
    assert diff <= TOL
