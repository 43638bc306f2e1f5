"""The organism's language: the invariants its tasks rely on."""

from __future__ import annotations

import random

from interp.organism import language as lang
from interp.organism.data import ORGANISM_FAMILIES as TASK_FAMILIES
from interp.organism.data import sample_training_batch
from interp.prompts import PromptBuilder


def test_vocabulary_and_tokenizer_roundtrip(organism_tokenizer):
    vocab = lang.vocabulary()
    assert len(vocab) == len(set(vocab)) == len(organism_tokenizer)
    text = "sentence: cat dog sentiment: alpha\nQ: red\nA: k7 | [ 12 ]"
    ids = organism_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert organism_tokenizer.unk_token_id not in ids
    assert organism_tokenizer.convert_ids_to_tokens(ids)[:5] == [
        "sentence",
        ":",
        "cat",
        "dog",
        "sentiment",
    ]


def test_function_inputs_tell_positions_apart():
    rng = random.Random(0)
    for _ in range(200):
        ep = lang.sample_function(rng, 4, "index", "middle")
        for x, y in [*ep.demos, (ep.query, ep.answer)]:
            words = x.split()
            assert len({lang.WORD_CLASS[w] for w in words}) == 3
            assert y == lang.class_index(words[1]) and y in lang.NUMBER_WORDS


def test_function_tasks_are_ambiguous_zero_shot():
    # on one input, the nine tasks give several different answers
    words = ["cat", "salt", "rope"]
    answers = {
        lang.apply_function(op, pos, words)
        for op in lang.FUNCTION_OPS
        for pos in lang.FUNCTION_POSITIONS
    }
    assert len(answers) == 9
    assert len([f for f in TASK_FAMILIES.values() if f.kind == "function"]) >= 8


def test_classification_demos_cover_the_query_class():
    rng = random.Random(0)
    for _ in range(200):
        ep = lang.sample_classification(rng, 8, arbitrary=True)
        assert ep.answer in {y for _, y in ep.demos}
        assert len(set(ep.labels)) == len(ep.labels) >= 2


def test_training_batches_weight_answers(organism_tokenizer):
    rng = random.Random(0)
    builder = PromptBuilder(organism_tokenizer)
    for _ in range(6):
        b = sample_training_batch(builder, rng, 2000)
        assert b.weights.shape == (b.tokens.shape[0], b.tokens.shape[1] - 1)
        assert (b.weights.max(1).values == 3.0).all()  # every row has a weighted answer
        assert ((b.weights > 0).sum(1) > 5).all()
