"""Annotated prompts: positions land on the right tokens, and bad input is refused clearly."""

from __future__ import annotations

import random

import pytest
import torch

from interp.errors import IclscopeError
from interp.organism import language as lang
from interp.prompts import (
    CIRCUIT_TEMPLATE,
    PromptBuilder,
    Template,
    check_pair,
    token_roles,
)
from interp.tasks.suite import TASK_FAMILIES, build_family_batch


def tokens_of(tok, batch, i, span):
    return tok.convert_ids_to_tokens(batch.tokens[i, span[0] : span[1]].tolist())


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("family", ["sentiment_arbitrary", "fn_index_last"])
def test_demo_positions_under_padding(organism_tokenizer, side, family):
    tok = organism_tokenizer
    rng = random.Random(3)
    fam = TASK_FAMILIES[family]
    # different shot counts give rows of different lengths, so padding really moves things
    eps = [fam.sample(rng, k) for k in (1, 3, 5)]
    batch = PromptBuilder(tok, padding_side=side).build(fam.template, eps)
    for i, (ep, ann) in enumerate(zip(eps, batch.annotations)):
        ids = batch.tokens[i]
        assert len(ann.y) == len(ep.demos)
        for (x, y), xs, s, yp in zip(ep.demos, ann.x, ann.s, ann.y):
            assert tokens_of(tok, batch, i, xs) == x.split()
            assert tok.convert_ids_to_tokens(int(ids[s])) == ":"
            assert tok.convert_ids_to_tokens(int(ids[yp])) == y
            assert yp == s + 1
        assert tokens_of(tok, batch, i, ann.x_q) == ep.query.split()
        assert tok.convert_ids_to_tokens(int(ids[ann.s_q])) == ":"
        assert batch.attention_mask[i, ann.s_q] == 1
        assert tok.convert_ids_to_tokens(int(batch.answer_ids[i])) == ep.answer
        # the query forerunner is the last real token of the row
        last = int(batch.attention_mask[i].nonzero().max())
        assert ann.s_q == last
        if side == "left":
            assert last == batch.tokens.shape[1] - 1


def test_ranking_and_kv_blocks(organism_tokenizer):
    tok = organism_tokenizer
    builder = PromptBuilder(tok)
    rank = build_family_batch(builder, "ranking", 3, 10)
    for i, ann in enumerate(rank.annotations):
        assert len(ann.blocks) == 10
        gold = tokens_of(tok, rank, i, ann.blocks[ann.gold_block])
        query = tokens_of(tok, rank, i, ann.x_q)[0]
        assert query in gold
        assert sum(query in tokens_of(tok, rank, i, b) for b in ann.blocks) == 1
        assert gold[2] == tok.convert_ids_to_tokens(int(rank.answer_ids[i]))
        assert int(rank.answer_ids[i]) in rank.label_ids[i]
    kv = build_family_batch(builder, "kv_retrieval", 2, 64)
    assert kv.tokens.shape[1] >= 256
    for i, ann in enumerate(kv.annotations):
        key, _, value, _ = tokens_of(tok, kv, i, ann.blocks[ann.gold_block])
        assert key == tokens_of(tok, kv, i, ann.x_q)[0]
        assert value == tok.convert_ids_to_tokens(int(kv.answer_ids[i]))


def test_token_roles(organism_tokenizer):
    batch = build_family_batch(PromptBuilder(organism_tokenizer), "sentiment_semantic", 1, 2)
    ann = batch.annotations[0]
    roles = token_roles(ann, ann.length)
    assert roles[ann.s_q] == "s_q" and roles[ann.y[1]] == "y_1" and roles[ann.s[0]] == "s_0"
    assert roles[ann.x[0][0]] == "x_0" and roles[ann.x_q[0]] == "x_q" and roles[0] == ""


def test_multi_token_label_refused_or_scored_first(organism_tokenizer):
    ep = lang.Episode([("cat dog", "alpha beta")], "red blue", "gamma", ("alpha beta", "gamma"))
    with pytest.raises(IclscopeError, match="not one"):
        PromptBuilder(organism_tokenizer).build(CIRCUIT_TEMPLATE, [ep])
    batch = PromptBuilder(organism_tokenizer, labels="first").build(CIRCUIT_TEMPLATE, [ep])
    first = organism_tokenizer.convert_tokens_to_ids("alpha")
    assert batch.label_ids[0][0] == first


def test_template_without_forerunner_refused():
    with pytest.raises(IclscopeError, match="forerunner"):
        Template("bad", "{x} {y}\n")
    with pytest.raises(IclscopeError, match="exactly once"):
        Template("bad", "{x} is {x}\n")


def test_user_template(organism_tokenizer):
    tpl = Template("mine", "Q: {x} | A: {y}\n")
    ep = lang.sample_classification(random.Random(0), 3, arbitrary=True)
    batch = PromptBuilder(organism_tokenizer).build(tpl, [ep])
    ann = batch.annotations[0]
    assert organism_tokenizer.convert_ids_to_tokens(int(batch.tokens[0, ann.s[2]])) == ":"
    assert batch.texts[0].endswith("| A:")


def test_prompt_longer_than_context_refused(organism_tokenizer):
    with pytest.raises(IclscopeError, match="longer than the model's context of 20"):
        build_family_batch(PromptBuilder(organism_tokenizer, n_ctx=20), "sentiment_semantic", 2, 8)


def test_clean_corrupted_pairs_must_line_up(organism_tokenizer):
    builder = PromptBuilder(organism_tokenizer)
    clean = build_family_batch(builder, "sentiment_arbitrary", 2, 4, seed=1)
    check_pair(clean, clean)
    longer = build_family_batch(builder, "sentiment_arbitrary", 2, 5, seed=1)
    with pytest.raises(IclscopeError, match="clean prompts are"):
        check_pair(clean, longer)
    # same shape, but the inputs have other lengths, so positions move
    shifted = build_family_batch(builder, "sentiment_arbitrary", 2, 4, seed=2)
    if shifted.tokens.shape == clean.tokens.shape:
        with pytest.raises(IclscopeError, match="different annotated positions"):
            check_pair(clean, shifted)
    # a word-for-word corruption (labels permuted) lines up
    corrupt = clean.tokens.clone()
    ys = clean.y[0]
    corrupt[0, ys] = corrupt[0, ys.flip(0)]
    assert not torch.equal(corrupt, clean.tokens) or len(set(corrupt[0, ys].tolist())) == 1
