"""The ICL circuit: pure computations on hand-made attention, the ablation plan against an
eager Hugging Face forward with explicit 4-D masks, and an end-to-end run directory."""

from __future__ import annotations

import pytest
import torch

from circuits.icl_circuit import (
    EDGE_NAMES,
    LAYER_RANGES,
    CircuitStates,
    EdgeAblation,
    IclCircuit,
    attention_at,
    counts_as_head,
    forerunner_heads,
    label_assignment,
    layer_range,
    retrieval_scores,
    wrong_labels,
)
from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Knockout
from interp.errors import IclscopeError
from interp.models import load_model
from interp.prompts import Annotation
from interp.tasks.suite import build_family_batch, get_family

TOL = 1e-5


# -- pure computations ------------------------------------------------------------------------


def test_attention_at_reads_each_prompts_own_positions():
    pattern = torch.zeros(2, 1, 2, 6, 6)  # (batch, layer, head, q, k)
    pattern[0, 0, 1, 4, 2] = 0.7  # prompt 0: y_q = 4 attends to s_q = 2 in head 1
    pattern[1, 0, 0, 5, 3] = 0.9  # prompt 1: y_q = 5, s_q = 3, head 0
    a = attention_at(pattern, torch.tensor([4, 5]), torch.tensor([[2], [3]]))
    assert a.shape == (2, 1, 2, 1)
    assert torch.allclose(a[..., 0], torch.tensor([[[0.0, 0.7]], [[0.9, 0.0]]]))


def test_forerunner_heads_counted_on_hand_made_patterns():
    # 3 prompts, 2 layers, 4 heads; n_tokens = 10, so a head counts when mean a > 0.5
    a = torch.full((3, 2, 4), 0.05)
    a[:, 0, 1] = 0.9  # layer 0 head 1: always copies
    a[:, 1, 2] = torch.tensor([0.9, 0.9, 0.0])  # mean 0.6: counts
    a[:, 1, 3] = torch.tensor([0.9, 0.3, 0.2])  # mean 0.467: does not
    mask, count, copy = forerunner_heads(a, torch.full((3,), 10.0))
    assert count.tolist() == [1, 1]
    assert mask[0].tolist() == [False, True, False, False]
    assert mask[1].tolist() == [False, False, True, False]
    # copy magnitude: per prompt the best head of the layer, then the mean over prompts
    assert copy.tolist() == pytest.approx([0.9, (0.9 + 0.9 + 0.2) / 3])
    # a lower factor admits more heads: the threshold is factor / n_tokens
    assert forerunner_heads(a, torch.full((3,), 10.0), factor=4.0)[1].tolist() == [1, 2]


def test_threshold_averages_over_prompt_lengths():
    score = torch.tensor([[0.35], [0.35]])
    # threshold mean(5/10, 5/40) = 0.3125, not 5 / mean(n) = 0.2
    assert counts_as_head(score, torch.tensor([10.0, 40.0])).tolist() == [True]
    assert counts_as_head(score - 0.05, torch.tensor([10.0, 40.0])).tolist() == [False]
    assert counts_as_head(score, torch.tensor([10.0, 10.0])).tolist() == [False]


def test_retrieval_scores_on_hand_made_attention():
    # 2 prompts, 1 layer, 2 heads, k = 4 demos; demos 0 and 2 carry the gold label
    correct = torch.tensor([[True, False, True, False]] * 2)
    a = torch.zeros(2, 1, 2, 4)
    a[:, 0, 0] = torch.tensor([0.4, 0.0, 0.4, 0.0])  # reads the correct labels
    a[:, 0, 1] = torch.tensor([0.0, 0.4, 0.0, 0.4])  # reads the wrong ones
    n_tokens, n_labels = torch.full((2,), 20.0), torch.full((2,), 2.0)
    s = retrieval_scores(a, correct, n_tokens, n_labels)
    assert s["magnitude"][0].tolist() == pytest.approx([0.8, 0.8])
    assert s["correctness"][0].tolist() == pytest.approx([0.8, -0.8])
    assert s["magnitude_head"].tolist() == [[True, True]]  # 0.8 > 5 / 20
    assert s["correctness_head"].tolist() == [[True, False]]  # 0.8 > 5 / 20 / 2; -0.8 is not
    assert s["per_gold_label"][0].tolist() == pytest.approx([0.4, 0.0])
    assert s["per_other_label"][0].tolist() == pytest.approx([0.0, 0.4])
    # 1 gold label of 4 in the second prompt: per-token means, not sums, so counts don't matter
    uneven = torch.tensor([[True, False, True, False], [True, False, False, False]])
    b = torch.tensor([[0.4, 0.0, 0.4, 0.0], [0.4, 0.1, 0.1, 0.1]])[:, None, None, :]
    u = retrieval_scores(b, uneven, n_tokens, n_labels)
    assert u["per_gold_label"].item() == pytest.approx(0.4)
    assert u["per_other_label"].item() == pytest.approx(0.05)
    weak = retrieval_scores(a / 4, correct, n_tokens, n_labels)  # 0.2: below 0.25, above 0.125
    assert weak["magnitude_head"].tolist() == [[False, False]]
    assert weak["correctness_head"].tolist() == [[True, False]]


def test_label_assignment_sums_attention_per_label():
    A, B, C = 11, 12, 13
    demo = torch.tensor([[A, B, A, C], [A, B, A, C]])
    gold = torch.tensor([A, B])
    cands = [[A, B, C], [A, B, C, 14]]  # label 14 has no demonstration
    w = torch.tensor([[0.1, 0.5, 0.1, 0.0], [0.0, 0.3, 0.1, 0.0]])[:, None]  # one unit
    acc, p_gold = label_assignment(w, demo, cands, gold)
    # prompt 0: A = 0.2 < B = 0.5, wrong; prompt 1: B = 0.3 > A = 0.1, right
    assert acc.tolist() == [0.5]
    assert p_gold.tolist() == pytest.approx([(0.2 / 0.7 + 0.3 / 0.4) / 2])
    # negative weights (cosines) are clipped for p(gold); all-zero gives 1 / |Y|
    acc, p_gold = label_assignment(-w, demo, cands, gold)
    assert p_gold.tolist() == pytest.approx([(1 / 3 + 1 / 4) / 2])


def test_layer_ranges():
    assert [list(layer_range(2, *r)) for r in LAYER_RANGES] == [[0], [0], [1], [1], [0, 1]]
    assert [list(layer_range(4, *r)) for r in LAYER_RANGES] == [[0], [1], [2], [3], [0, 1, 2, 3]]
    assert [list(layer_range(6, *r)) for r in LAYER_RANGES][:2] == [[0, 1], [1, 2]]
    assert all(list(layer_range(1, *r)) == [0] for r in LAYER_RANGES)


# -- the ablation plan --------------------------------------------------------------------------

ANN = Annotation(x=[(1, 3), (6, 8)], s=[4, 9], y=[5, 10], x_q=(12, 14), s_q=15, length=16)


def test_edge_groups_on_a_hand_annotation():
    g = EdgeAblation.edge_groups(ANN)
    assert g["xi_to_si"] == [((4,), (1, 2)), ((9,), (6, 7))]
    assert g["xq_to_sq"] == [((15,), (12, 13, 15))]
    assert g["si_to_yi"] == [((5,), (4,)), ((10,), (9,))]
    assert g["yi_to_sq"] == [((15,), (5, 10))]
    assert g["si_to_si"] == [((4,), (4,)), ((9,), (4, 9))]
    assert set(g) == set(EDGE_NAMES)


def test_random_edges_are_causal_distinct_and_seeded():
    abl = EdgeAblation(seed=3)
    edges = abl.random_groups(ANN, 40, prompt=0, layer=1)
    pairs = [(q[0], k[0]) for q, k in edges]
    assert len(set(pairs)) == 40
    assert all(1 <= k <= q < ANN.length for q, k in pairs)
    assert edges == abl.random_groups(ANN, 40, prompt=0, layer=1)
    assert edges != abl.random_groups(ANN, 40, prompt=0, layer=0)
    assert len(abl.random_groups(ANN, 10**6, 0, 0)) == 16 * 15 // 2  # capped at all edges


def test_plan_holds_every_row_of_every_range():
    other = Annotation(x=[(1, 4)], s=[5], y=[6], x_q=(8, 9), s_q=10, length=11)
    plan = EdgeAblation().plan([ANN, other], n_layers=4, zero_shot=[2, 3])
    labels = [dict(r.labels) for r in plan.rows]
    draws = EdgeAblation().random_draws
    assert draws >= 10
    assert len(plan) == 2 * (1 + len(LAYER_RANGES) * (len(EDGE_NAMES) + draws)) + 2
    assert plan.base == "clean"
    assert sum(lab["edge"] == "k=0" for lab in labels) == 2
    for row, lab in zip(plan.rows, labels):
        if lab["edge"] in ("none", "k=0"):
            assert row.edits == ()
            continue
        start, end = (float(v) for v in lab["range"].split("-"))
        assert {e.layer for e in row.edits} == set(layer_range(4, start, end))
        assert all(isinstance(e, Knockout) and e.heads is None for e in row.edits)
    # random rows remove as many edges per layer as the largest circuit row of the prompt
    largest = {0: 4, 1: 3}  # xi_to_si in both: 2 + 2 edges, then 3 edges
    for row, lab in zip(plan.rows, labels):
        if lab["edge"] == "random" and lab["range"] == "0-1":
            per_layer = len(row.edits) // 4
            assert per_layer == largest[row.prompt]
    # every draw of the control is its own seeded set of edges, drawn the same every time
    sets = [
        frozenset(r.edits)
        for r, lab in zip(plan.rows, labels)
        if lab["edge"] == "random" and lab["range"] == "0-1" and r.prompt == 0
    ]
    assert len(sets) == draws == len(set(sets))
    again = EdgeAblation().plan([ANN, other], n_layers=4, zero_shot=[2, 3])
    assert [r.edits for r in again.rows] == [r.edits for r in plan.rows]


def synthetic_engine_table(planted: str, prompts: int = 40, draws: int = 10):
    """An engine table on which knocking out ``planted`` turns every right answer wrong in
    range 0-0.5, while every other edge and each random draw flips a few prompts at random."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = [{"edge": "none", "range": "all", "prompt": p, "metric": 1.0} for p in range(prompts)]
    rows += [{"edge": "k=0", "range": "all", "prompt": p, "metric": 0.5} for p in range(prompts)]
    for rng_name in ("0-0.5", "0.5-1"):
        for edge in EDGE_NAMES:
            for p in range(prompts):
                hit = edge == planted and rng_name == "0-0.5"
                metric = 0.0 if hit else float(rng.random() > 0.1)
                rows.append({"edge": edge, "range": rng_name, "prompt": p, "metric": metric})
        for draw in range(draws):
            for p in range(prompts):
                rows.append(
                    {
                        "edge": "random",
                        "range": rng_name,
                        "draw": draw,
                        "prompt": p,
                        "metric": float(rng.random() > 0.1),
                    }
                )
    return pd.DataFrame(rows)


def test_a_planted_edge_beats_the_random_control_and_a_null_edge_does_not():
    from circuits.icl_circuit.ablation import random_control

    abl = EdgeAblation(ranges=((0.0, 0.5), (0.5, 1.0)))
    table, by_prompt = abl.tables(synthetic_engine_table("yi_to_sq"), n_layers=4)
    assert set(by_prompt.columns) == {"edge", "range", "draw", "prompt", "acc"}
    assert (by_prompt.query("edge != 'random'").draw == -1).all()
    planted = table.query("edge == 'yi_to_sq' and range == '0-0.5'").iloc[0]
    assert planted["drop"] == 1.0 and planted.drop_low == planted.drop_high == 1.0
    paired = table.query("edge != 'k=0'")  # 0-shot prompts are others: no paired interval
    assert table.query("edge == 'k=0'").drop_low.isna().all()
    assert (paired.drop_low <= paired["drop"] + 1e-9).all()
    assert (paired["drop"] <= paired.drop_high + 1e-9).all()
    control = random_control(by_prompt, ["0-0.5", "0.5-1"])
    assert len(control["random_drops"]) == 10
    assert control["above_random"] == ["yi_to_sq"]  # the null edges drop like random ones
    low, high = control["ablation_drop_ci"]["xi_to_si"]
    assert low <= control["random_drop_p95"]
    assert control["ablation_drop_ci"]["yi_to_sq"] == [1.0, 1.0]


# -- knockouts against an eager forward with explicit 4-D masks --------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_dirs):
    from transformers import AutoModelForCausalLM

    model = load_model(tiny_dirs["llama"])
    eager = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")
    return model, eager.eval()


def masks_for(edits, n_layers: int, length: int) -> torch.Tensor:
    """Per layer, an additive (1, 1, q, k) mask: causal, plus -inf on every knocked-out edge."""
    causal = torch.full((length, length), float("-inf")).triu(1)
    masks = causal.repeat(n_layers, 1, 1)
    for e in edits:
        for q in e.queries:
            masks[e.layer, q, list(e.keys)] = float("-inf")
    return masks[:, None, None]


def eager_logits(eager, tokens, masks, per_layer: bool = True) -> torch.Tensor:
    """Logits of the eager HF model, each decoder layer given its own additive mask (or, with
    ``per_layer=False``, the first mask passed straight to the model for every layer)."""
    handles = []
    if per_layer:
        for layer, block in enumerate(eager.model.layers):

            def swap(module, args, kwargs, layer=layer):
                kwargs["attention_mask"] = masks[layer]
                return args, kwargs

            handles.append(block.register_forward_pre_hook(swap, with_kwargs=True))
    try:
        with torch.no_grad():
            return eager(tokens, attention_mask=masks[0]).logits
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("fast", [True, False], ids=["native", "hooked"])
def test_knockouts_match_eager_masked_forward(tiny, fast):
    model, eager = tiny
    batch = build_family_batch(model.prompt_builder(), "sentiment_arbitrary", 2, 3, seed=1)
    plan = EdgeAblation(seed=5).plan(batch.annotations, model.cfg.n_layers)
    engine = Engine(model, fast=fast)
    # p(answer) as the brief's metric, and a fixed random projection of all logits, which a
    # random tiny model moves far more than one probability
    direction = torch.randn(model.cfg.d_vocab, generator=torch.Generator().manual_seed(0))
    project = lambda logits, prompt: logits.double() @ direction.double()
    tables = {m: engine.run(plan, batch, metric=m, progress=False) for m in ("prob", project)}
    n_layers = model.cfg.n_layers
    expect = {"prob": [], "project": []}
    for row in plan.rows:
        ann = batch.annotations[row.prompt]
        tokens = batch.tokens[row.prompt : row.prompt + 1, : ann.length]
        masks = masks_for(row.edits, n_layers, ann.length)
        logits = eager_logits(eager, tokens, masks)[0, ann.s_q].double()
        expect["prob"].append(torch.softmax(logits, -1)[batch.answer_ids[row.prompt]])
        expect["project"].append(logits @ direction.double())
    for (name, table), ref in zip(tables.items(), expect.values()):
        ours = torch.tensor(table.metric.values, dtype=torch.float64)
        assert (ours - torch.stack(ref)).abs().max() <= TOL, name
    # the knockouts did something, so the comparison could have failed
    table = tables[project]
    none = table[table.edge == "none"].set_index("prompt").metric
    moved = (table.metric - table.prompt.map(none)).abs()
    assert moved.max() > 100 * TOL
    assert (moved[table.edge != "none"] > TOL).mean() > 0.5


def test_all_layer_knockout_equals_one_4d_mask(tiny):
    """With the same edges in every layer, a single 4-D mask passed straight to the model (no
    per-layer hooks) is the reference."""
    model, eager = tiny
    batch = build_family_batch(model.prompt_builder(), "sentiment_semantic", 1, 4, seed=2)
    ann = batch.annotations[0]
    layers = range(model.cfg.n_layers)
    knocks = tuple(Knockout(lay, (ann.s_q,), tuple(ann.y)) for lay in layers)
    from interp.engine.plan import PlanRow

    plan = InterventionPlan([PlanRow(0, knocks)], base="clean")
    ours = Engine(model).run(plan, batch, metric="prob", progress=False).metric.iloc[0]
    masks = masks_for(knocks, model.cfg.n_layers, ann.length)
    logits = eager_logits(eager, batch.tokens[:, : ann.length], masks, per_layer=False)
    ref = torch.softmax(logits[0, ann.s_q].double(), -1)[batch.answer_ids[0]]
    assert abs(ours - float(ref)) <= TOL


# -- states, wrong labels and the whole run --------------------------------------------------


def test_states_read_the_plain_prompt_up_to_s_q(tiny):
    model, _ = tiny
    batch = build_family_batch(model.prompt_builder(), "sentiment_arbitrary", 3, 2, seed=0)
    states = CircuitStates.collect(model, batch, chunk=2)
    L = model.cfg.n_layers
    _, cache = model.run_with_cache(
        batch.tokens,
        [f"blocks.{L - 1}.hook_resid_post", "blocks.0.attn.hook_pattern"],
        batch.attention_mask,
    )
    r = torch.arange(3)
    plain = cache[f"blocks.{L - 1}.hook_resid_post"][r, batch.s_q]
    assert torch.allclose(states.h_sq[:, L], plain, atol=1e-5)  # appending y_q changes nothing
    pattern = cache["blocks.0.attn.hook_pattern"]
    y0 = batch.y[:, 0]
    assert torch.allclose(states.a_sq_y[:, 0, :, 0], pattern[r, :, batch.s_q, y0], atol=1e-6)
    assert states.n_sq.tolist() == [a.s_q + 1 for a in batch.annotations]
    assert (states.a_yq_sq > 0).all() and (states.a_yq_sq <= 1).all()


def test_states_equal_the_full_cache_read_at_their_positions(tiny):
    """collect keeps only the read positions inside its hooks; the values are exactly those of
    a full run_with_cache read afterwards, across chunk boundaries, and the forward stops
    before the unembedding."""
    from circuits.icl_circuit.states import _with_answer

    model, _ = tiny
    batch = build_family_batch(model.prompt_builder(), "sentiment_arbitrary", 5, 3, seed=4)
    unembedded = []
    handle = model.hf_model.get_output_embeddings().register_forward_hook(
        lambda *_: unembedded.append(1)
    )
    try:
        model(batch.tokens[:1], batch.attention_mask[:1])
        assert unembedded  # the probe sees a full forward's unembedding
        unembedded.clear()
        states = CircuitStates.collect(model, batch, chunk=2)
        assert not unembedded  # three chunks, each stopped at its last hook
    finally:
        handle.remove()
    L = model.cfg.n_layers
    tokens, mask = _with_answer(batch)
    resid = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(L)]
    pattern = [f"blocks.{i}.attn.hook_pattern" for i in range(L)]
    logits, cache = model.run_with_cache(tokens, resid + pattern, mask, logits=False)
    assert logits is None
    h = torch.stack([cache[n] for n in resid], 1)
    p = torch.stack([cache[n] for n in pattern], 1)
    r, sq, s, y = torch.arange(5), batch.s_q, batch.s, batch.y
    xq = torch.tensor([a.x_q[1] - 1 for a in batch.annotations])
    expected = {
        "h_sq": h[r, :, sq],
        "h_xq": h[r, :, xq],
        "h_s": h[r[:, None], :, s],
        "h_y": h[r[:, None], :, y],
        "a_yq_sq": attention_at(p, sq + 1, sq[:, None])[..., 0],
        "a_sq_y": attention_at(p, sq, y),
    }
    for name, want in expected.items():
        assert torch.equal(getattr(states, name), want.float()), name


def test_wrong_labels_change_every_label_and_no_position():
    import random

    fam = get_family("sentiment_arbitrary")
    rng = random.Random(0)
    for ep in [fam.sample(rng, 4) for _ in range(20)]:
        bad = wrong_labels(ep)
        assert [x for x, _ in bad.demos] == [x for x, _ in ep.demos]
        assert all(a != b for (_, a), (_, b) in zip(ep.demos, bad.demos))
        assert {y for _, y in bad.demos} <= set(ep.labels)
        assert bad.answer == ep.answer


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_run_circuit_writes_a_complete_run(tiny_dirs, tmp_path, monkeypatch, arch):
    from interp.runs.circuit import run_circuit
    from interp.runs.store import load_run

    calls = []
    real_run = Engine.run
    monkeypatch.setattr(
        Engine, "run", lambda self, *a, **k: calls.append(1) or real_run(self, *a, **k)
    )
    path = run_circuit(tmp_path, model=tiny_dirs[arch], prompts=24, log=lambda _: None)
    assert len(calls) == 1  # every ablation row of every range in one plan, one engine run
    run = load_run(path)
    assert run.status == "complete" and run.manifest["kind"] == "circuit"
    keys = {
        "step1_best_layer",
        "step1_best_centroid_acc",
        "step2_peak_layer",
        "step3_best_head",
        "step3_best_head_label_acc",
        "ablation_drop",
        "random_drop",
        "seconds",
        "step1_best_centroid_acc_ci",
        "step3_best_head_label_acc_ci",
        "accuracy_ci",
        "accuracy_0shot_ci",
        "ablation_drop_ci",
        "random_drop_ci",
        "random_drops",
        "random_drop_p95",
        "above_random",
    }
    assert keys <= set(run.summary)
    for key, value in run.summary.items():
        if key.endswith("_ci") and key != "ablation_drop_ci":
            low, high = value
            assert low <= run.summary[key[: -len("_ci")]] <= high, key
    for edge, (low, high) in run.summary["ablation_drop_ci"].items():
        assert low - 1e-4 <= run.summary["ablation_drop"][edge] <= high + 1e-4, edge
    assert len(run.summary["random_drops"]) >= 10
    assert set(run.summary["above_random"]) <= set(EDGE_NAMES)
    assert "[" in run.report and "random" in run.report
    assert set(run.summary["ablation_drop"]) == set(EDGE_NAMES)
    assert len(run.summary["step3_best_head"]) == 2
    assert {
        "step1",
        "step2_layers",
        "step2_heads",
        "step2_labels",
        "step3_heads",
        "step3_vanilla",
        "subspace",
        "ablation",
        "ablation_by_prompt",
    } <= set(run.tables)
    assert {
        "step1_by_layer",
        "step2_heads",
        "step3_retrieval_heads",
        "step3_subspace",
        "ablation",
        "ablation_random_control",
    } <= set(run.figures)
    L, H = 2, {"llama": 8, "gpt2": 4}[arch]
    assert len(run.tables["step3_heads"]) == L * H
    assert set(run.tables["step1"].depth) == set(range(L + 1))
    abl = run.tables["ablation"]
    assert len(abl) == len(LAYER_RANGES) * 8 and abl.acc.between(0, 1).all()
    assert len(run.tables["subspace"]) == 24 * 4
    assert "Step 1" in run.report and "random" in run.report


def test_circuit_refuses_other_families(tiny_dirs, tmp_path):
    from interp.runs.circuit import run_circuit

    with pytest.raises(IclscopeError, match="classification"):
        run_circuit(tmp_path, model=tiny_dirs["llama"], task="ranking")
    assert not any(tmp_path.iterdir())  # refused before a run directory was made
    with pytest.raises(IclscopeError, match="too few"):
        IclCircuit(shots=0).run(None, "sentiment_semantic")
