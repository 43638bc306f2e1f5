"""The demo's circuit task, chosen from its own evaluation: the family whose demonstrations help
most, on synthetic evaluation tables, then a whole demo on the organism."""

from __future__ import annotations

import pandas as pd
import pytest

from circuits.demo.choice import choose_circuit_task
from circuits.demo.look import CIRCUIT_TASK, DEMO_FAMILIES, circuit_candidates
from interp.cli import main
from interp.runs.store import load_run

SHOTS = (0, 1, 2, 4, 8)


def table(curves: dict[str, list[float]]) -> pd.DataFrame:
    """An evaluation table like the demo's: one accuracy per family and shot count."""
    return pd.DataFrame(
        [
            {"task": fam, "kind": "classification", "shots": k, "accuracy": acc}
            for fam, accs in curves.items()
            for k, acc in zip(SHOTS, accs)
        ]
    )


def test_the_largest_gain_to_the_circuits_shots_wins():
    by_shots = table(
        {
            "nl_sentiment_natural": [0.94, 0.9, 0.85, 0.80, 0.8],  # demonstrations hurt
            "nl_kind_arbitrary": [0.30, 0.4, 0.5, 0.60, 0.9],  # +0.30 at 4 shots
            "nl_topic_natural": [0.20, 0.3, 0.5, 0.70, 0.7],  # +0.50 at 4 shots: the winner
        }
    )
    eligible = ["nl_sentiment_natural", "nl_kind_arbitrary", "nl_topic_natural"]
    choice = choose_circuit_task(by_shots, eligible, "nl_kind_arbitrary")
    assert choice.task == "nl_topic_natural" and choice.shots == 4
    assert list(choice.gains) == ["nl_topic_natural", "nl_kind_arbitrary", "nl_sentiment_natural"]
    assert choice.gains["nl_sentiment_natural"] == pytest.approx(-0.14)
    assert "gains the most" in choice.why and "0.200 at 0 shots, 0.700 at 4" in choice.why
    # read at 8 shots instead, nl_kind_arbitrary gains more (+0.60 against +0.50)
    assert choose_circuit_task(by_shots, eligible, "x", shots=8).task == "nl_kind_arbitrary"
    # shots the table lacks: its largest count
    assert choose_circuit_task(by_shots, eligible, "x", shots=16).shots == 8


def test_a_family_the_circuit_cannot_read_is_never_chosen():
    by_shots = table({"a": [0.1, 0.2, 0.3, 0.9, 0.9], "b": [0.5, 0.5, 0.5, 0.6, 0.6]})
    assert choose_circuit_task(by_shots, ["b"], "fallback").task == "b"


def test_ties_go_to_the_first_family_in_suite_order():
    by_shots = table({"a": [0.25, 0, 0, 0.75, 0], "b": [0.5, 0, 0, 1.0, 0]})  # both +0.5
    assert choose_circuit_task(by_shots, ["b", "a"], "x").task == "b"
    assert choose_circuit_task(by_shots, ["a", "b"], "x").task == "a"


def test_no_gain_falls_back_to_the_arbitrary_label_family():
    by_shots = table(
        {"nl_sentiment_natural": [0.9, 0.9, 0.9, 0.8, 0.8], "nl_kind_arbitrary": [0.5] * 5}
    )
    eligible = ["nl_sentiment_natural", "nl_kind_arbitrary"]
    choice = choose_circuit_task(by_shots, eligible, CIRCUIT_TASK["natural"])
    assert choice.task == "nl_kind_arbitrary" == CIRCUIT_TASK["natural"]
    assert "no classification family gains" in choice.why
    assert "nl_sentiment_natural -0.100" in choice.why
    summary = choice.summary()
    assert summary["circuit_task"] == "nl_kind_arbitrary"
    assert summary["circuit_task_reason"] == choice.why
    assert summary["circuit_task_gains"]["nl_kind_arbitrary"] == 0.0
    # nothing eligible at all: the fallback, saying none was scored
    empty = choose_circuit_task(by_shots, [], "sentiment_arbitrary")
    assert empty.task == "sentiment_arbitrary" and "none was scored" in empty.why


def test_candidates_are_the_classification_families_the_tokenizer_builds():
    from interp.organism.tokenizer import build_tokenizer

    tok = build_tokenizer()
    assert circuit_candidates(DEMO_FAMILIES["organism"], tok) == [
        "sentiment_semantic",
        "sentiment_arbitrary",
    ]
    # the organism's tokenizer has no English words: the natural families are not candidates
    assert circuit_candidates(DEMO_FAMILIES["natural"], tok) == []


def test_the_demo_records_its_choice_from_its_own_evaluation(tmp_path, capsys, monkeypatch):
    import interp.tasks.evaluate as evaluate

    calls = []
    real = evaluate.evaluate_model
    monkeypatch.setattr(
        evaluate, "evaluate_model", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    args = ["demo", "--model", "organism", "--out", str(tmp_path), "--n", "8", "--no-pipeline"]
    assert main(args) == 0
    out = capsys.readouterr()
    run = load_run(out.out.strip().splitlines()[-1])
    assert calls == [1]  # the choice reads the one evaluation; it scores nothing again
    s = run.summary
    expected = choose_circuit_task(
        run.tables["eval_by_shots"],
        ["sentiment_semantic", "sentiment_arbitrary"],
        CIRCUIT_TASK["organism"],
    )
    assert s["circuit_task"] == expected.task == run.manifest["params"]["circuit_task"]
    assert s["circuit_task_reason"] == expected.why
    assert set(s["circuit_task_gains"]) == {"sentiment_semantic", "sentiment_arbitrary"}
    assert f"would run on `{expected.task}`: {expected.why}." in run.report
    assert run.report.index(expected.why) < run.report.index("## One prompt")
    assert "the circuit's task: " + expected.task in out.out + out.err


def test_the_demos_circuit_runs_on_the_chosen_family_and_opens_with_its_accuracies(
    tmp_path, capsys
):
    args = ["demo", "--model", "organism", "--out", str(tmp_path), "--n", "8"]
    assert main([*args, "--circuit-prompts", "8", "--ablation-prompts", "4"]) == 0
    run = load_run(capsys.readouterr().out.strip().splitlines()[-1])
    task = run.summary["circuit_task"]
    assert f"The ICL circuit runs on `{task}`" in run.report
    circuit = run.report[run.report.index("## ICL inference circuit") :].splitlines()
    assert circuit[0] == f"## ICL inference circuit: organism on `{task}`"
    zero, k = run.summary["circuit_accuracy_0shot"], run.summary["circuit_accuracy"]
    assert circuit[2].startswith(f"Accuracy at 0 shots {zero:.3f} [")
    assert f"at 4 shots {k:.3f} [" in circuit[2]
    assert ("do not help" in "\n".join(circuit[:6])) is (k <= zero)
