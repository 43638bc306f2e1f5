"""Scoring multi-token answers: normalisation, first-token collisions, and greedy decoding
with a KV cache checked against a plain loop of full forwards, on SmolLM2 (rotary positions)
and on the tiny GPT-2 (learned positions, where left padding must not shift positions)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from interp.errors import IclscopeError
from interp.organism.language import Episode
from interp.prompts import (
    CIRCUIT_TEMPLATE,
    FUNCTION_TEMPLATE,
    KV_TEMPLATE,
    RANKING_TEMPLATE,
    PromptBuilder,
    Template,
)
from interp.tasks.scoring import (
    answer_separator,
    answer_token_lengths,
    exact_accuracy,
    exact_match,
    first_token_collisions,
    greedy_continuations,
    normalise_answer,
    refuse_first_token_collisions,
)

CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Japan", "Tokyo")]


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M in float32 with its tokenizer, loaded once for the module."""
    from interp.models import resolve_spec

    folder, _ = resolve_spec("smollm2")
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return hf, AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_dirs):
    folder = tiny_dirs["gpt2"]
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return hf, AutoTokenizer.from_pretrained(folder)


def _builder(tokenizer) -> PromptBuilder:
    # SmolLM2's BOS is a chat marker, not a document start (the registry's prepend_bos=False)
    return PromptBuilder(tokenizer, prepend_bos=False, padding_side="left", labels="first")


@torch.no_grad()
def _reference(hf, tokenizer, batch, budgets) -> list[str]:
    """The slow, obviously right decoder: one row at a time, unpadded, a full forward per new
    token and no cache, stopping by the documented rule (EOS dropped, line break kept)."""
    stops = {tokenizer.eos_token_id, hf.generation_config.eos_token_id}
    texts = []
    for row, budget in enumerate(budgets):
        prompt = batch.tokens[row][batch.attention_mask[row].bool()].tolist()
        new: list[int] = []
        while len(new) < budget:
            token = int(hf(input_ids=torch.tensor([prompt + new])).logits[0, -1].argmax())
            if token in stops:
                break
            new.append(token)
            if "\n" in tokenizer.decode([token]):
                break
        texts.append(tokenizer.decode(new))
    return texts


# ---------------------------------------------------------------------------------------------
# normalisation, separators, lengths and collisions


@pytest.mark.parametrize(
    "text, expected",
    [
        (" Paris\n\nQ: Spain\nA: Madrid", "Paris"),
        ("Buenos   Aires \t\n", "Buenos Aires"),
        ("\nParis", ""),  # a generation that starts a new line wrote no answer
        ("Kabul\r\nQ", "Kabul"),
        ("de\u0301pendant", "dépendant"),  # decomposed accent composed by NFKC
        ("New\u00a0Delhi", "New Delhi"),  # a no-break space is a space
        ("\uff28\uff2f\uff32\uff33\uff25", "HORSE"),  # full-width letters
        ("ﬁsh", "fish"),  # the ligature
        ("HORSE", "HORSE"),  # case is kept ...
        ("Paris\u2028Berlin", "Paris"),  # a Unicode line separator cuts too
    ],
)
def test_normalise_answer(text, expected):
    assert normalise_answer(text) == expected


def test_normalise_answer_keeps_case():
    assert normalise_answer(" horse") != normalise_answer("HORSE")
    assert normalise_answer(" Paris ") == normalise_answer("Paris")


def test_answer_separator_of_each_template_kind():
    assert answer_separator(FUNCTION_TEMPLATE) == " "
    assert answer_separator(CIRCUIT_TEMPLATE) == " "
    assert answer_separator(RANKING_TEMPLATE) == ""
    assert answer_separator(KV_TEMPLATE) == " "
    assert answer_separator(Template("lines", "Input: {x}\nOutput:\n{y}\n")) == "\n"
    assert answer_separator(Template("arrow", "{x} ->  {y}\n")) == "  "


def test_answer_token_lengths_count_the_leading_space(smollm2):
    _, tok = smollm2
    answers = ["Paris", "Buenos Aires", "dépendant", "Kuala Lumpur"]
    # ' dé' 'pend' 'ant' after a space, 'd' 'é' 'pend' 'ant' without one
    assert answer_token_lengths(tok, answers) == [1, 2, 3, 6]
    assert answer_token_lengths(tok, answers, separator="") == [1, 3, 4, 6]
    contexts = ["Q: France\nA:", "Q: Argentina\nA:", "Q: dependent\nA:", "Q: Malaysia\nA:"]
    assert answer_token_lengths(tok, answers, contexts=contexts) == [1, 2, 3, 6]
    with pytest.raises(ValueError):
        answer_token_lengths(tok, answers, contexts=contexts[:2])


def test_first_token_collisions_with_smollm2(smollm2):
    _, tok = smollm2
    labels = ["dépendant", "positive", "décider", "negative", "décembre", "Kuala Lumpur", "Kyoto"]
    spaced = first_token_collisions(tok, labels)
    assert list(spaced.values()) == [["dépendant", "décider", "décembre"]]
    assert tok.decode(list(spaced)) == " dé"
    # without the space 'Kuala' and 'Kyoto' share 'K'; after it they do not (' K', ' Kyoto')
    bare = first_token_collisions(tok, labels, prefix="")
    assert {tok.decode([t]): g for t, g in bare.items()} == {
        "d": ["dépendant", "décider", "décembre"],
        "K": ["Kuala Lumpur", "Kyoto"],
    }
    assert first_token_collisions(tok, ["positive", "negative", "positive"]) == {}
    refuse_first_token_collisions(tok, ["positive", "negative", "neutral"])
    with pytest.raises(IclscopeError, match="'dépendant', 'décider', 'décembre' all start with"):
        refuse_first_token_collisions(tok, labels)


# ---------------------------------------------------------------------------------------------
# greedy decoding against the slow reference


def _capital_episodes(queries: list[tuple[str, str]], shots: list[int]) -> list[Episode]:
    return [Episode(CAPITALS[:k], q, a, ()) for (q, a), k in zip(queries, shots)]


def test_greedy_continuations_match_a_loop_of_full_forwards_on_smollm2(smollm2):
    hf, tok = smollm2
    queries = [("Italy", "Rome"), ("Argentina", "Buenos Aires"), ("Spain", "Madrid")]
    episodes = _capital_episodes(queries, shots=[2, 1, 0])
    episodes += [Episode([("cat", "CAT"), ("dog", "DOG")], "horse", "HORSE", ())]
    episodes += _capital_episodes([("Malaysia", "Kuala Lumpur")], shots=[3])
    batch = _builder(tok).build(FUNCTION_TEMPLATE, episodes)
    assert len({a.length for a in batch.annotations}) == len(batch)  # every row padded apart
    budgets = [6, 5, 3, 2, 0]  # chunks of 2 mix budgets; the last chunk has nothing to write
    got = greedy_continuations(hf, batch, budgets, tok, chunk=2)
    assert got == _reference(hf, tok, batch, budgets)
    assert got[0] == " Rome\n"  # stopped at the line break, budget left unused
    assert got[3] == " HOR"  # ' H' 'OR' 'SE': cut at its budget of two tokens
    assert got[4] == ""


def test_greedy_continuations_keep_positions_under_left_padding_on_gpt2(tiny_gpt2):
    """GPT-2 adds a learned embedding per position: a padded row read at shifted positions
    would decode differently from the same prompt alone."""
    hf, tok = tiny_gpt2
    demos = [("cat dog red", "cat"), ("bread hammer blue", "bread"), ("owl rice saw", "owl")]
    queries = ["lion pear drill", "green axe", "seal", "tiger lemon rope gold"]
    episodes = [Episode(demos[: 3 - i % 3], q, "x", ()) for i, q in enumerate(queries)]
    batch = _builder(tok).build(FUNCTION_TEMPLATE, episodes)
    budgets = [7, 3, 5, 8]
    got = greedy_continuations(hf, batch, budgets, tok, chunk=2)
    assert got == _reference(hf, tok, batch, budgets)
    assert any(len(text) > 0 for text in got)


def test_greedy_continuations_refuse_right_padding(smollm2):
    hf, tok = smollm2
    batch = PromptBuilder(tok, prepend_bos=False, labels="first").build(
        FUNCTION_TEMPLATE, _capital_episodes([("Italy", "Rome")], [1])
    )
    with pytest.raises(AssertionError, match="padding_side='left'"):
        greedy_continuations(hf, batch, 3, tok)
    with pytest.raises(ValueError):
        greedy_continuations(hf, _builder(tok).build(FUNCTION_TEMPLATE, [_ep()]), [1, 2], tok)


def _ep() -> Episode:
    return Episode(CAPITALS[:1], "Italy", "Rome", ())


# ---------------------------------------------------------------------------------------------
# exact match, by hand and against the reference


def test_exact_match_by_hand_on_smollm2(smollm2):
    """SmolLM2 writes ' Rome', ' Buenos Aires', ' Kuala' + a line break and ' HORSE'. So:
    right single- and two-token answers pass; ``Kuala Lumpur`` fails although its first token
    ' K' is the argmax (first-token scoring would credit it); a longer answer sharing the
    first token (``Rome, Italy``) fails; and case counts (``horse`` is not ``HORSE``)."""
    hf, tok = smollm2
    cases = [
        ("Italy", "Rome", True),
        ("Argentina", "Buenos Aires", True),
        ("Malaysia", "Kuala Lumpur", False),
        ("Italy", "Rome, Italy", False),
        ("Italy", "Madrid", False),
    ]
    episodes = _capital_episodes([(q, a) for q, a, _ in cases], [2, 3, 3, 2, 2])
    upper = [("cat", "CAT"), ("dog", "DOG")]
    episodes += [Episode(upper, "horse", "HORSE", ()), Episode(upper, "horse", "horse", ())]
    expected = [ok for *_, ok in cases] + [True, False]
    batch = _builder(tok).build(FUNCTION_TEMPLATE, episodes)
    answers = [ep.answer for ep in episodes]
    assert exact_match(hf, tok, batch, answers, chunk=4) == expected
    # first-token scoring credits Kuala Lumpur: the argmax at the query is its first token
    with torch.no_grad():
        first = hf(input_ids=batch.tokens[2][batch.attention_mask[2].bool()][None]).logits
    assert int(first[0, -1].argmax()) == int(batch.answer_ids[2]) == tok.encode(" K")[0]
    with pytest.raises(ValueError):
        exact_match(hf, tok, batch, answers[:3])


def test_exact_match_agrees_with_the_reference(smollm2):
    hf, tok = smollm2
    queries = [("Spain", "Madrid"), ("India", "New Delhi"), ("Argentina", "Buenos Aires")]
    episodes = _capital_episodes(queries, [2, 2, 1])
    batch = _builder(tok).build(FUNCTION_TEMPLATE, episodes)
    answers = [a for _, a in queries]
    margin = 2
    budgets = [n + margin for n in answer_token_lengths(tok, answers, contexts=batch.texts)]
    expected = [
        normalise_answer(text) == normalise_answer(answer)
        for text, answer in zip(_reference(hf, tok, batch, budgets), answers)
    ]
    assert exact_match(hf, tok, batch, answers, margin=margin, chunk=3) == expected
    assert expected == [True, False, False]  # Madrid; the other queries are copied back
    assert exact_accuracy(hf, tok, batch, answers, margin=margin) == pytest.approx(1 / 3)
