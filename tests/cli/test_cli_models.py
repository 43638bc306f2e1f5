"""`iclscope models`, `tasks --model` and `eval`: the registry and the suite from the shell."""

from __future__ import annotations

import json

from interp.cli import main
from interp.models.registry import MODELS


def test_models_json_lists_every_entry_with_its_facts(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == list(MODELS)
    for row in rows.values():
        assert {
            "parameters",
            "layers",
            "heads",
            "kv_heads",
            "context",
            "license",
            "source",
            "converted",
        } <= set(row)
    organism = rows["organism"]
    assert organism["converted"] and organism["layers"] == 4 and organism["kv_heads"] == 4
    assert organism["parameters"] == 852_864  # read from the safetensors header alone
    assert "Gemma Terms of Use" in rows["gemma3-270m"]["license"]


def test_tasks_for_a_model_say_what_its_tokenizer_cannot_build(capsys):
    assert main(["tasks", "--model", "organism", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["sentiment_arbitrary"]["buildable"] is True
    natural = [r for r in rows.values() if r["source"] == "natural"]
    assert len(natural) >= 15
    # the organism's word vocabulary has no 'Paris': English prompts are refused with a reason
    assert not any(r["buildable"] for r in natural)
    assert all(r["why_not"] for r in natural)


def test_tasks_lists_the_natural_suite(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    natural = [r for r in rows if r["source"] == "natural"]
    kinds = [r["kind"] for r in natural]
    assert kinds.count("function") >= 10 and kinds.count("classification") >= 6
    assert kinds.count("ranking") == 2 and kinds.count("retrieval") >= 1


def test_eval_json_has_the_documented_shape(capsys):
    args = [
        "eval",
        "--model",
        "organism",
        "--task",
        "sentiment_arbitrary",
        "--shots",
        "0,8",
        "--n",
        "16",
        "--json",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "organism"
    cell = result["families"]["sentiment_arbitrary"]
    assert cell["kind"] == "classification" and set(cell["shots"]) == {"0", "8"}
    # the shipped organism learns arbitrary labels in context (see test_organism.py)
    assert cell["shots"]["8"] >= cell["shots"]["0"] + 0.3


def test_eval_refuses_bad_shots_and_unknown_tasks(capsys):
    assert main(["eval", "--model", "organism", "--shots", "0,-3"]) == 2
    assert "--shots" in capsys.readouterr().err
    assert main(["eval", "--model", "organism", "--task", "nl_antonyms"]) == 2
    assert "nl_antonym" in capsys.readouterr().err  # the nearest name is suggested
    assert main(["eval", "--model", "orgnism"]) == 2
    assert "organism" in capsys.readouterr().err
