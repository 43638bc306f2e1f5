"""The circuit over several seeds, the report's opening lines and the default task: pure
functions on hand-made summaries, then ``iclscope run circuit`` on the organism."""

from __future__ import annotations

import pytest

from circuits.icl_circuit import EDGE_NAMES, IclCircuit
from circuits.icl_circuit.report import accuracy_lines, circuit_report
from circuits.icl_circuit.seeds import across_seeds, combined_summary, seed_lines
from interp.cli import main
from interp.runs.store import load_run

SMALL = ["--model", "organism", "--prompts", "12", "--ablation-prompts", "4"]


def summary_of(acc: float, drop: float, above: list[str]) -> dict:
    """A per-seed summary holding the keys the spread reads."""
    return {
        "step1_best_centroid_acc": 0.5,
        "step1_best_centroid_acc_ci": [0.2, 0.8],
        "step3_best_head_label_acc": 0.6,
        "step3_best_head_label_acc_ci": [0.4, 0.8],
        "accuracy_0shot": 0.25,
        "accuracy_0shot_ci": [0.1, 0.5],
        "accuracy": acc,
        "accuracy_ci": [acc - 0.1, acc + 0.1],
        "ablation_drop": {e: drop if e == "xq_to_sq" else 0.0 for e in EDGE_NAMES},
        "ablation_drop_ci": {e: [0.0, 0.5] for e in EDGE_NAMES},
        "above_random": above,
        "seconds": 2.0,
    }


# -- the spread across seeds, on hand-made summaries --------------------------------------------


def test_across_seeds_gives_values_mean_min_max_and_the_every_seed_rule():
    per_seed = [
        summary_of(0.7, 0.3, ["xq_to_sq", "yi_to_sq"]),
        summary_of(0.9, 0.1, ["xq_to_sq"]),
        summary_of(0.8, 0.2, ["yi_to_sq", "xq_to_sq"]),
    ]
    out = across_seeds([0, 1, 2], per_seed)
    acc = out["accuracy_by_seed"]
    assert acc["values"] == [0.7, 0.9, 0.8]
    assert acc["mean"] == pytest.approx(0.8) and (acc["min"], acc["max"]) == (0.7, 0.9)
    assert acc["ci"][1] == pytest.approx([0.8, 1.0])
    drop = out["ablation_drop_by_seed"]["xq_to_sq"]
    assert drop["values"] == [0.3, 0.1, 0.2] and drop["min"] == 0.1
    assert set(out["ablation_drop_by_seed"]) == set(EDGE_NAMES)
    # yi_to_sq clears the control in two seeds of three: not above random across seeds
    assert out["above_random"] == ["xq_to_sq"]
    assert out["above_random_by_seed"][1] == ["xq_to_sq"]
    assert {f"{k}_by_seed" for k in ("step1_best_centroid_acc", "accuracy_0shot")} <= set(out)
    with pytest.raises(ValueError):
        across_seeds([0, 1], per_seed)


def test_combined_summary_keeps_the_first_seed_and_adds_the_spread_only_for_several():
    one = combined_summary([4], [summary_of(0.7, 0.3, ["xq_to_sq"])])
    assert one["seeds"] == [4] and "accuracy_by_seed" not in one
    assert one["above_random"] == ["xq_to_sq"] and one["seconds"] == 2.0
    two = combined_summary([4, 5], [summary_of(0.7, 0.3, ["xq_to_sq"]), summary_of(0.9, 0, [])])
    assert two["accuracy"] == 0.7  # the headline numbers are the first seed's
    assert two["above_random"] == []  # not above random in seed 5
    assert two["seconds"] == 4.0


def test_seed_table_has_a_row_per_number_and_states_the_rule():
    summary = combined_summary(
        [0, 1], [summary_of(0.7, 0.3, ["xq_to_sq"]), summary_of(0.9, 0.1, ["xq_to_sq"])]
    )
    lines = seed_lines(summary, shots=4)
    text = "\n".join(lines)
    assert lines[0] == "## Across seeds"
    assert "| accuracy at 4 shots | 0.700 [0.60, 0.80] | 0.900 [0.80, 1.00] | 0.800 |" in text
    assert "| drop: xq_to_sq | 0.300" in text and "0.100-0.300" in text
    assert "above random in every seed: xq_to_sq" in text.lower()
    assert sum(line.startswith("| drop:") for line in lines) == len(EDGE_NAMES)
    assert seed_lines(combined_summary([0], [summary_of(0.7, 0.3, [])]), 4) == []


def test_opening_lines_say_when_demonstrations_do_not_help():
    helped = accuracy_lines("0.250 [0.10, 0.50]", "0.800 [0.60, 0.90]", 4, no_gain=False)
    assert helped[0].startswith("Accuracy at 0 shots 0.250 [0.10, 0.50]; at 4 shots 0.800")
    assert not any("do not help" in line for line in helped)
    hurt = accuracy_lines("0.938 [0.85, 0.98]", "0.797 [0.68, 0.88]", 4, no_gain=True)
    assert (
        "Demonstrations do not help on this task: 0-shot 0.938 [0.85, 0.98] vs 4-shot "
        "0.797 [0.68, 0.88]; the circuit below dissects a model that does not need its "
        "context." in hurt[2]
    )


# -- the whole run, on the organism --------------------------------------------------------------


@pytest.fixture(scope="module")
def organism():
    from interp.models import load_model

    return load_model("organism")


def test_report_opens_with_both_accuracies_and_flags_no_gain(organism):
    result = IclCircuit(prompts=12, ablation_prompts=4).run(organism, "sentiment_arbitrary")
    summary = result.summary()

    def opening(summary: dict) -> list[str]:
        report = circuit_report(result, summary, "organism", "sentiment_arbitrary", 4, 12)
        return [line for line in report.splitlines() if line][:3]

    title, first, second = opening(summary)
    assert title.startswith("# ICL inference circuit")
    assert first.startswith(f"Accuracy at 0 shots {summary['accuracy_0shot']:.3f} [")
    assert f"at 4 shots {summary['accuracy']:.3f} [" in first
    gains = summary["accuracy"] > summary["accuracy_0shot"]
    assert ("do not help" in second) is not gains
    # the same run, its k-shot accuracy set at or below 0-shot: the sentence must appear
    flat = summary | {"accuracy": summary["accuracy_0shot"]}
    _, _, second = opening(flat)
    assert "Demonstrations do not help on this task: 0-shot" in second
    assert "does not need its context" in second
    better = summary | {"accuracy_0shot": 0.0, "accuracy": 1.0, "accuracy_0shot_ci": [0, 0.1]}
    assert not any("do not help" in line for line in opening(better))


def test_each_seed_draws_its_own_prompts():
    fam = "sentiment_arbitrary"
    from interp.tasks.suite import get_family

    a, b = (IclCircuit(prompts=8, seed=s).episodes(get_family(fam), 4) for s in (0, 1))
    assert [e.query for e in a] != [e.query for e in b]
    assert a == IclCircuit(prompts=8, seed=0).episodes(get_family(fam), 4)


def run_cli(capsys, *args: str):
    code = main(["run", "circuit", *args])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    return load_run(out.out.strip().splitlines()[-1]), out.out + out.err


def test_seeds_report_the_spread_and_the_same_seed_gives_the_same_numbers(tmp_path, capsys):
    run, log = run_cli(capsys, *SMALL, "--seeds", "3,1", "--out", str(tmp_path))
    s = run.summary
    assert "task: sentiment_arbitrary" in log  # no --task: the default is said in the log
    assert s["seeds"] == [3, 1] and run.manifest["seed"] == 3
    for key in ("step1_best_centroid_acc", "step3_best_head_label_acc", "accuracy_0shot"):
        d = s[f"{key}_by_seed"]
        assert len(d["values"]) == 2 and d["min"] <= d["mean"] <= d["max"]
        assert d["values"][0] == s[key]  # the headline is the first seed's
    assert set(s["ablation_drop_by_seed"]) == set(EDGE_NAMES)
    assert len(s["above_random_by_seed"]) == 2
    assert set(s["above_random"]) == set.intersection(*map(set, s["above_random_by_seed"]))
    assert "## Across seeds" in run.report and "in every seed" in run.report
    # seed 1 alone gives exactly the numbers seed 1 gave inside the two-seed run
    alone, _ = run_cli(capsys, *SMALL, "--seed", "1", "--out", str(tmp_path))
    assert alone.summary["seeds"] == [1] and "accuracy_by_seed" not in alone.summary
    assert "## Across seeds" not in alone.report
    for key in ("step1_best_centroid_acc", "step3_best_head_label_acc", "accuracy"):
        assert s[f"{key}_by_seed"]["values"][1] == alone.summary[key]
    for edge in EDGE_NAMES:
        by_seed = s["ablation_drop_by_seed"][edge]["values"][1]
        assert by_seed == alone.summary["ablation_drop"][edge]


@pytest.mark.parametrize(
    "value, says",
    [
        ("x", "comma-separated list of integers"),
        ("0,-1", "integers >= 0"),
        ("0,1,0", "repeats a seed"),
        (",", "integers >= 0"),
    ],
)
def test_bad_seeds_are_refused_before_any_work(tmp_path, capsys, value, says):
    out = tmp_path / "runs"
    code = main(["run", "circuit", *SMALL, "--seeds", value, "--out", str(out)])
    text = "".join(capsys.readouterr())
    assert code != 0
    assert "--seeds" in text and says in text and "Traceback" not in text
    assert "loading" not in text and not out.exists()  # nothing loaded, nothing written


def test_a_seed_that_disagrees_with_seeds_is_refused(tmp_path, capsys):
    code = main(["run", "circuit", *SMALL, "--seed", "5", "--seeds", "0,1", "--out", str(tmp_path)])
    text = "".join(capsys.readouterr())
    assert code != 0 and "--seed 5" in text and "--seeds" in text


# -- the default task follows the tokenizer -------------------------------------------------------


def test_default_task_skips_families_the_tokenizer_cannot_build(monkeypatch):
    import circuits.icl_circuit.tasks as tasks
    from interp.organism.tokenizer import build_tokenizer

    tok = build_tokenizer()
    assert tasks.default_task(tok)[0] == "sentiment_arbitrary"
    real = tasks.family_support

    def no_kappa(family, tokenizer):  # as on SmolLM2: `kappa` is two tokens
        if family.name == "sentiment_arbitrary":
            return "label 'kappa' is 2 tokens"
        return real(family, tokenizer)

    monkeypatch.setattr(tasks, "family_support", no_kappa)
    task, why = tasks.default_task(tok)
    assert task == "sentiment_semantic" and "sentiment_arbitrary cannot be built" in why
    monkeypatch.setattr(tasks, "family_support", lambda f, t: "no")
    from interp.errors import IclscopeError

    with pytest.raises(IclscopeError, match="single-token labels"):
        tasks.default_task(tok)


def test_default_task_on_smollm2s_tokenizer_has_single_token_labels():
    """SmolLM2 splits `kappa`, so the organism's family cannot be its default (its tokenizer
    only; `make test` installs the model's package)."""
    from transformers import AutoTokenizer

    from circuits.icl_circuit.tasks import default_task
    from interp.models import resolve_spec
    from interp.tasks.suite import family_support, get_family

    tok = AutoTokenizer.from_pretrained(resolve_spec("smollm2")[0])
    assert "kappa" in (family_support(get_family("sentiment_arbitrary"), tok) or "")
    task, _ = default_task(tok)
    assert task == "nl_sentiment_arbitrary"
    assert family_support(get_family(task), tok) is None
