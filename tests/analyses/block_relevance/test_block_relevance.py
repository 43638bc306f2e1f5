"""Block relevance (docs/analyses/block-relevance.md): relevance and metrics on hand-made
scores, the block-sparse mask against an eager forward with an explicit 4-D mask, and the
relevance hook against the cached scores, on TransformerLens and on nnsight."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.block_relevance import (
    allowed_keys,
    block_sparse_hooks,
    block_sparse_mask,
    calibrate,
    collect_relevance,
    doc_of_token,
    document_relevance,
    gather_rows,
    gold_rank,
    positional_heads,
    query_rows,
    ranking_metrics,
    relevance_name,
    run_with_relevance,
    top_position_share,
)
from circuits.block_relevance.hook import PATTERN, SCORES, relevance_source
from circuits.block_relevance.metrics import ndcg_of_rank
from circuits.block_relevance.relevance import relevance_from_pattern
from interp.errors import IclscopeError
from interp.models import load_model
from interp.prompts import Annotation
from interp.tasks.suite import build_family_batch

NEG = torch.finfo(torch.float32).min


# ---------------------------------------------------------------------------------------------
# Relevance and metrics on hand-made scores


def _slow_relevance(scores, doc_index, n_docs):
    """Reference: one row at a time, softmax over the row's document keys, summed per doc."""
    batch, heads, rows, _ = scores.shape
    out = torch.zeros(batch, heads, n_docs)
    for b in range(batch):
        keys = [k for k in range(scores.shape[-1]) if doc_index[b, k] >= 0]
        for h in range(heads):
            for r in range(rows):
                z = [math.exp(float(scores[b, h, r, k])) for k in keys]
                for k, e in zip(keys, z):
                    out[b, h, int(doc_index[b, k])] += e / sum(z) / rows
    return out


def test_relevance_on_hand_made_scores():
    # keys: 0 instruction, 1-2 doc 0, 3 doc 1, 4 the query row itself (not a document)
    doc_index = torch.tensor([[-1, 0, 0, 1, -1]])
    scores = torch.tensor([[[[9.0, 0.0, 0.0, math.log(2.0), 5.0]]]])  # (1, 1, 1, 5)
    rel = document_relevance(scores, doc_index, 2)
    # doc 0 has two tokens of weight 1, doc 1 one of weight 2: half each, sinks ignored
    assert torch.allclose(rel, torch.tensor([[[0.5, 0.5]]]))


def test_relevance_matches_slow_reference_and_renormalised_pattern():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 4, 2, 12, generator=gen) * 3
    doc_index = torch.tensor([[-1, -1, 0, 0, 0, 1, 1, 2, 2, 2, -1, -1]] * 3)
    fast = document_relevance(scores, doc_index, 3)
    assert torch.allclose(fast, _slow_relevance(scores, doc_index, 3), atol=1e-5)
    assert torch.allclose(fast.sum(-1), torch.ones(3, 4), atol=1e-5)
    # post-softmax attention renormalised over documents gives the same (the training path)
    pattern = torch.softmax(scores, -1)
    full = torch.zeros(3, 4, 12, 12)
    full[:, :, 10:12] = pattern
    rows = torch.tensor([[10, 11]] * 3)
    assert torch.allclose(relevance_from_pattern(full, rows, doc_index, 3), fast.mean(1), atol=1e-5)


def test_rows_and_doc_index_follow_the_annotation():
    ann = Annotation(blocks=[(2, 4), (4, 7)], s_q=9, length=10)
    assert doc_of_token([ann], 10).tolist() == [[-1, -1, 0, 0, 1, 1, 1, -1, -1, -1]]
    assert query_rows([ann], 2).tolist() == [[8, 9]]
    scores = torch.arange(100.0).view(1, 1, 10, 10)
    assert gather_rows(scores, query_rows([ann], 2))[0, 0, :, 0].tolist() == [80.0, 90.0]


def test_metrics_from_known_ranks():
    rel = torch.tensor([[0.1, 0.5, 0.4], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    gold = torch.tensor([1, 2, 0, 2])
    rank = gold_rank(rel, gold)
    assert rank.tolist() == [1, 2, 3, 3]  # a tie counts against the gold document
    m = ranking_metrics(rel, gold)
    assert m["p_at_1"].item() == pytest.approx(0.25)
    assert m["mrr"].item() == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 3) / 4)
    expected = sum(ndcg_of_rank(k) for k in (1, 2, 3, 3)) / 4
    assert m["ndcg10"].item() == pytest.approx(expected)
    assert ndcg_of_rank(11) == 0.0 and ndcg_of_rank(2) == pytest.approx(1 / math.log2(3))


def test_metrics_per_head_and_position_bias():
    # head 0 always ranks position 0 first; head 1 follows the gold document
    gold = torch.tensor([0, 1, 2, 3])
    positional = torch.tensor([1.0, 0.2, 0.1, 0.0]).expand(4, 4)
    content = torch.nn.functional.one_hot(gold, 4).float()
    rel = torch.stack([positional, content], 1)  # (batch, head, doc)
    assert ranking_metrics(rel, gold)["p_at_1"].tolist() == [0.25, 1.0]
    share = top_position_share(rel)
    assert share[0].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert share[1].tolist() == [0.25] * 4
    bias = positional_heads(share)
    assert (bias["first"], bias["last"], bias["heads"]) == (1, 0, 2)


def test_calibration_cancels_a_position_bias():
    gold = torch.tensor([3, 1, 0, 2])
    bias = torch.tensor([0.5, 0.2, 0.1, 0.05])
    signal = 0.1 * torch.nn.functional.one_hot(gold, 4).float()
    raw = bias + signal
    assert ranking_metrics(raw, gold)["p_at_1"].item() == 0.25
    cal = calibrate(raw, bias.expand(4, 4))
    assert ranking_metrics(cal, gold)["p_at_1"].item() == 1.0


# ---------------------------------------------------------------------------------------------
# The block-sparse mask


def test_block_sparse_structure_on_a_hand_annotation():
    # 0-1 instruction, 2-3 doc 0, 4-5 doc 1, 6-7 final block
    allowed = allowed_keys(Annotation(blocks=[(2, 4), (4, 6)], s_q=7, length=8), 8)
    seen = {q: [k for k in range(8) if allowed[q, k]] for q in range(8)}
    assert seen[1] == [0, 1]
    assert seen[3] == [0, 1, 2, 3]
    assert seen[4] == [0, 1, 4] and seen[5] == [0, 1, 4, 5]  # never doc 0
    assert seen[6] == list(range(7)) and seen[7] == list(range(8))
    add = block_sparse_mask([Annotation(blocks=[(2, 4), (4, 6)])], 8)[0, 0]
    assert add[5, 2] == NEG and add[5, 4] == 0 and add[1, 5] == 0  # causal part left alone


@pytest.fixture(scope="module")
def tiny(tiny_dirs):
    from transformers import AutoModelForCausalLM

    model = load_model(tiny_dirs["llama"])
    eager = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")
    return model, eager.eval()


def _ranking_batch(model, n=3, padding_side="right"):
    builder = model.prompt_builder(padding_side=padding_side)
    return build_family_batch(builder, "ranking", n, k=6, seed=1)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_block_sparse_hooks_match_eager_forward_with_4d_mask(tiny, padding_side):
    model, eager = tiny
    batch = _ranking_batch(model, padding_side=padding_side)
    length = batch.tokens.shape[1]
    assert len({a.length for a in batch.annotations}) > 1  # padding is exercised
    hooks = block_sparse_hooks(block_sparse_mask(batch.annotations, length), model.cfg.n_layers)
    with torch.no_grad():
        hooked = model.run_with_hooks(batch.tokens, hooks, batch.attention_mask)
        full = model(batch.tokens, batch.attention_mask)
        four_d = block_sparse_mask(
            batch.annotations, length, causal=True, attention_mask=batch.attention_mask
        )
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        ref = eager(batch.tokens, attention_mask=four_d, position_ids=positions).logits
    real = batch.attention_mask.bool()
    assert torch.allclose(hooked[real], ref[real], atol=1e-4)
    assert not torch.allclose(hooked[real], full[real], atol=1e-3)  # the mask does something


# ---------------------------------------------------------------------------------------------
# The hook blocks.{l}.attn.hook_block_relevance


def test_relevance_hook_reads_the_cached_scores(tiny):
    model, _ = tiny
    batch = _ranking_batch(model)
    _, cache = model.run_with_cache(
        batch.tokens, lambda n: n.endswith("hook_attn_scores"), batch.attention_mask
    )
    rel, last = collect_relevance(model, batch)
    doc_index = doc_of_token(batch.annotations, batch.tokens.shape[1])
    for layer in range(model.cfg.n_layers):
        scores = gather_rows(
            cache[f"blocks.{layer}.attn.hook_attn_scores"], query_rows(batch.annotations)
        )
        expected = _slow_relevance(scores, doc_index, 6)
        assert torch.allclose(rel[:, layer], expected, atol=1e-5)
    assert rel.shape == (3, model.cfg.n_layers, model.cfg.n_heads, 6)
    assert last.shape == (3, model.cfg.d_vocab)
    # layer 0's keys come from the embeddings alone: the block-sparse mask cannot change them,
    # and the final block sees every key, so layer-0 relevance is the same under the mask
    sparse, _ = collect_relevance(model, batch, block_sparse=True)
    assert torch.allclose(sparse[:, 0], rel[:, 0], atol=1e-5)
    assert not torch.allclose(sparse[:, 1], rel[:, 1], atol=1e-4)


def test_relevance_hook_sees_a_score_edit_and_is_read_only(tiny):
    model, _ = tiny
    batch = _ranking_batch(model, n=2)
    first_doc = [a.blocks[0] for a in batch.annotations]

    def silence_first_doc(scores, hook):
        scores = scores.clone()
        for b, (start, end) in enumerate(first_doc):
            scores[b, :, :, start:end] = NEG
        return scores

    seen = {}

    def keep(rel, hook):
        seen[hook.name] = rel
        return torch.zeros_like(rel)  # ignored

    name = relevance_name(1)
    logits = run_with_relevance(
        model, batch, [("blocks.1.attn.hook_attn_scores", silence_first_doc), (name, keep)]
    )
    assert torch.all(seen[name][:, :, 0] < 1e-6)
    with torch.no_grad():
        plain = model.run_with_hooks(
            batch.tokens,
            [("blocks.1.attn.hook_attn_scores", silence_first_doc)],
            batch.attention_mask,
        )
    assert torch.allclose(logits, plain)


@pytest.fixture(scope="module")
def tiny_nnsight(tiny_dirs):
    return load_model(tiny_dirs["llama"], backend="nnsight")


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("seed", [1, 7])
def test_relevance_on_nnsight_matches_transformer_lens(tiny, tiny_nnsight, padding_side, seed):
    """nnsight reads the pattern, TransformerLens the scores: the same relevance (raw and under
    the block-sparse mask) and the same last-token logits on random prompts."""
    model, _ = tiny
    builder = model.prompt_builder(padding_side=padding_side)
    batch = build_family_batch(builder, "ranking", 4, k=int(3 + seed % 4), seed=seed)
    for block_sparse in (False, True):
        rel, last = collect_relevance(model, batch, block_sparse=block_sparse)
        rel_nn, last_nn = collect_relevance(tiny_nnsight, batch, block_sparse=block_sparse)
        assert (rel - rel_nn).abs().max() <= 1e-5
        assert (last - last_nn).abs().max() <= 1e-4
    assert relevance_source(model) == SCORES and relevance_source(tiny_nnsight) == PATTERN


def test_nnsight_block_sparse_refuses_to_drop_a_sliding_window(tiny_nnsight, monkeypatch):
    batch = _ranking_batch(tiny_nnsight, n=2)
    monkeypatch.setattr(tiny_nnsight.hf_model.config, "sliding_window", 8, raising=False)
    collect_relevance(tiny_nnsight, batch)  # the raw read keeps the model's own masks
    with pytest.raises(IclscopeError, match="sliding window"):
        collect_relevance(tiny_nnsight, batch, block_sparse=True)
