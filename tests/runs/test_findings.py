"""Findings a report states as warnings: attention sinks listed apart from content, and accuracy
below what guessing among the prompt's labels gives."""

from __future__ import annotations

import pandas as pd

from circuits.demo.report import _report
from interp.runs.findings import attention_sinks, below_chance_sentence, chance_level


def attention(sink: int | None) -> pd.DataFrame:
    """Two layers of two heads over four positions; ``sink`` takes most of every head's weight,
    and position 2 takes the most of what is left."""
    rows = []
    for layer in range(2):
        for head in range(2):
            for p in range(4):
                weight = 0.7 if p == sink else 0.2 if p == 2 else 0.05
                rows.append((layer, head, p, ["<s>", "␣a", "␣b", ":"][p], "", weight))
    return pd.DataFrame(rows, columns=["layer", "head", "position", "token", "role", "weight"])


def demo_report(att: pd.DataFrame, accuracy: list[float]) -> str:
    by_shots = pd.DataFrame(
        {
            "task": "sentiment_arbitrary",
            "kind": "classification",
            "shots": [0, 4],
            "accuracy": accuracy,
        }
    )
    lens = pd.DataFrame(
        {"layer": [0], "label": ["a"], "is_answer": [True], "prob": [0.5], "rank": [0]}
    )
    return _report("m", by_shots, "text", lens, att)


def test_a_sink_is_reported_as_one_and_the_attention_past_it_is_listed():
    assert attention_sinks(attention(0)) == [0]
    assert attention_sinks(attention(3)) == [3]  # not the first position, but every head's top
    assert attention_sinks(attention(None)) == []
    text = demo_report(attention(0), [0.5, 0.9])
    assert "Attention sinks: position 0 `<s>`" in text and "4 of 4 heads" in text
    listed = text.split("past the sinks:")[1]
    assert "position 0" not in listed and "position 2 `␣b`" in listed
    plain = demo_report(attention(None), [0.5, 0.9])
    assert "sink" not in plain.lower() and "position 2 `␣b`" in plain


def test_accuracy_below_chance_gets_a_sentence():
    chance = chance_level("sentiment_arbitrary")
    assert chance is not None and 0 < chance < 1
    assert chance_level("fn_copy_first") is None  # a function task has no chance level
    low = demo_report(attention(None), [0.5, chance - 0.2])
    assert "below chance" in low and f"chance {chance:.3f}" in low
    assert "below chance" not in demo_report(attention(None), [0.0, chance + 0.1])
    assert "Learned in context" in demo_report(attention(None), [0.0, chance + 0.1])
    rising = demo_report(attention(None), [0.0, chance - 0.01])  # a gain, still below chance
    assert chance > 0.2 and "No family gains" in rising and "below chance" in rising
    assert below_chance_sentence([("x", 4, 0.1)], {"x": 0.5}).startswith("**Warning**")
    assert below_chance_sentence([("x", 4, 0.6)], {"x": 0.5}) == ""


def test_the_circuit_report_says_when_its_accuracy_is_below_chance():
    from circuits.icl_circuit.report import _below_chance

    chance = chance_level("sentiment_arbitrary")
    assert "below chance" in _below_chance("sentiment_arbitrary", 4, chance - 0.1)
    assert _below_chance("sentiment_arbitrary", 4, chance + 0.1) == ""
    assert _below_chance("fn_copy_first", 4, 0.0) == ""
