"""Seen and unseen documents (docs/analyses/block-relevance.md): the seeded split of a ranking
family's document pool never lets an unseen document into training, training prompts draw
only training documents, and a run writes precision@1 on both sets side by side, from the
default split or from a BlockRank folder's training record."""

from __future__ import annotations

import json
import random

import pytest

from circuits.block_relevance.documents import (
    DocumentSplit,
    document_pool,
    episode_keys,
    split_keys,
)
from circuits.block_relevance.folder import save_folder, training_split
from circuits.block_relevance.train import BlockRankTrainer

FAMILIES = ("nl_ranking_lexical", "nl_ranking_semantic", "ranking")

# ---------------------------------------------------------------------------------------------
# The split


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [2, 3, 10, 33, 64, 96, 200])
@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.9])
def test_split_never_overlaps_and_covers_the_pool(seed, size, share):
    keys = [f"doc{i}" for i in random.Random(size).sample(range(1000), size)]
    train, unseen = split_keys(keys, seed, share)
    assert not set(train) & set(unseen)
    assert sorted(train + unseen) == sorted(keys)
    assert train and unseen
    assert len(unseen) == min(max(1, round(share * size)), size - 1)
    assert split_keys(keys, seed, share) == (train, unseen)  # seeded: the same split again


def test_seeds_give_different_splits():
    pool = document_pool("nl_ranking_lexical")
    assert len(pool) == 64
    assert len({split_keys(pool, seed)[1] for seed in range(5)}) == 5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", range(4))
def test_prompts_of_each_side_use_only_its_documents(family, seed):
    split = DocumentSplit.of(family, seed)
    assert split is not None and not set(split.train) & set(split.unseen)
    for side in ("train", "unseen"):
        for ep in split.episodes(side, 12, 5, seed, side):
            assert episode_keys(family, ep) <= set(split.keys(side))
            assert len(ep.docs) == 5 and ep.answer == ep.docs[ep.meta["gold"]][0]


def test_lexical_and_semantic_queries_follow_the_family():
    rng = random.Random(0)
    lexical = DocumentSplit.of("nl_ranking_lexical").sample("unseen", rng, 4)
    semantic = DocumentSplit.of("nl_ranking_semantic").sample("unseen", random.Random(0), 4)
    assert lexical.docs == semantic.docs
    assert lexical.query in lexical.docs[lexical.meta["gold"]][1].lower()
    assert semantic.query.endswith("?")


def test_a_family_without_a_pool_has_no_split():
    assert document_pool("nl_kv_words") is None
    assert DocumentSplit.of("nl_kv_words") is None


@pytest.mark.parametrize("family", ["ranking", "nl_ranking_lexical"])
def test_training_prompts_draw_only_training_documents(family):
    from interp.organism.tokenizer import build_tokenizer
    from interp.prompts import PromptBuilder

    trainer = BlockRankTrainer(batch=3, docs=5, split_seed=2)
    split = trainer.documents(family)
    rng_family = random.Random(f"train:{family}:{trainer.seed}:0")
    expected = [split.sample("train", rng_family, 5) for _ in range(3)]
    for ep in expected:
        assert episode_keys(family, ep) <= set(split.train)
    if family == "ranking":
        builder = PromptBuilder(build_tokenizer(), prepend_bos=True, padding_side="left")
        batch = trainer.prompts(builder, family, 0)
        assert len(batch) == 3
    record = trainer.record("tiny", family, 1, 1)
    assert set(record["documents"]["unseen_keys"]) == set(split.unseen)
    assert BlockRankTrainer(unseen_share=None).documents(family) is None


# ---------------------------------------------------------------------------------------------
# A run writes both keys


@pytest.fixture(scope="module")
def default_run(tiny_dirs, tmp_path_factory):
    from interp.runs.block_relevance import run_block_relevance

    root = tmp_path_factory.mktemp("br_docs")
    return run_block_relevance(
        root, tiny_dirs["llama"], "ranking", prompts=6, docs=5, log=lambda _: None
    )


def test_run_writes_seen_and_unseen_precision(default_run):
    from interp.runs import load_run

    run = load_run(default_run)
    s = run.summary
    for side in ("seen", "unseen"):
        assert 0.0 <= s[f"p_at_1_{side}"] <= 1.0
        assert s[f"p_at_1_{side}"] == s[f"p_at_1_best_{side}"]
        heads = run.tables["heads"]
        row = heads[
            (heads.split == side)
            & (heads.variant == "raw")
            & (heads.layer == s["best_layer"])
            & (heads["head"] == s["best_head"])
        ]
        assert row.p_at_1.iloc[0] == pytest.approx(s[f"p_at_1_{side}"])
    assert s["documents"]["source"] == "default split"
    assert s["documents"]["prompts"] == 3
    assert s["documents"]["train"] + s["documents"]["unseen"] == len(document_pool("ranking"))
    assert "p_at_1_best" in s and "p_at_1_decoded" in s  # the all-documents keys stay
    report = (default_run / "report.md").read_text()
    assert "## Seen and unseen documents" in report and "| seen documents |" in report
    assert len(run.tables["prompts"]) == 3 * 5  # the held-out prompts table is unchanged
    names = {trace.name for trace in run.figures["by_layer"].data}
    assert {f"{v}, {d} documents" for v in ("raw", "block_sparse") for d in ("all", "unseen")} <= (
        names
    )


def test_a_family_without_a_pool_reports_no_document_sets():
    from circuits.block_relevance.report import documents_lines

    assert "no document pool" in " ".join(documents_lines({"documents": None}))


def test_trained_folder_is_measured_on_the_documents_it_kept_out(tiny_dirs, tmp_path):
    from transformers import AutoModelForCausalLM

    from interp.organism.tokenizer import build_tokenizer
    from interp.runs import load_run
    from interp.runs.block_relevance import run_block_relevance

    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")
    trainer = BlockRankTrainer(layer=1, cut=1, steps=1, batch=2, docs=5, split_seed=3)
    layer, cut = trainer.train(hf, build_tokenizer(), "ranking", prepend_bos=True)
    record = trainer.record("tiny", "ranking", layer, cut)
    out = save_folder(hf, build_tokenizer(), tmp_path / "trained", tiny_dirs["llama"], record)
    split, source = training_split(str(out), "ranking")
    assert source == "training record" and split == trainer.documents("ranking")
    assert training_split(tiny_dirs["llama"], "ranking") is None
    path = run_block_relevance(
        tmp_path / "runs", str(out), "ranking", prompts=4, docs=5, log=lambda _: None
    )
    s = load_run(path).summary
    assert s["documents"]["source"] == "training record" and s["documents"]["seed"] == 3
    for side in ("seen", "unseen"):
        assert s[f"p_at_1_{side}"] == s[f"p_at_1_trained_layer_block_sparse_{side}"]
        assert s[f"p_at_1_{side}"] is not None
        assert s[f"p_at_1_{side}_ci"] == s[f"p_at_1_trained_layer_block_sparse_{side}_ci"]
    # the trained layer's three metrics, each inside its interval
    for metric in ("p_at_1", "mrr", "ndcg10"):
        for variant in ("raw", "calibrated", "block_sparse"):
            key = f"{metric}_trained_layer_{variant}"
            low, high = s[f"{key}_ci"]
            assert low <= s[key] <= high, key
            assert metric != "p_at_1" or high - low > 0.3, key  # Wilson on 2 prompts: wide
    report = (path / "report.md").read_text()
    assert "(block-sparse): MRR" in report and "(block-sparse): nDCG@10" in report
    # a folder trained on the whole pool reports no unseen precision
    whole = json.loads((out / "blockrank.json").read_text())
    whole["documents"] = None
    (out / "blockrank.json").write_text(json.dumps(whole))
    path = run_block_relevance(
        tmp_path / "runs2", str(out), "ranking", prompts=4, docs=5, log=lambda _: None
    )
    s = load_run(path).summary
    assert s["documents"]["source"] == "trained on the whole pool"
    assert s["p_at_1_unseen"] is None and s["p_at_1_seen"] is not None
    assert s["p_at_1_unseen_ci"] is None and s["p_at_1_seen_ci"] is not None
    assert "no unseen precision@1" in (path / "report.md").read_text()
