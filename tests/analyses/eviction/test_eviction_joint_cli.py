"""The joint objective from the command line, on the organism: ``run eviction --gate-objective
joint`` end to end, ``train gate --objective joint`` writing a folder ``--model`` loads, and the
refusals that come before any work."""

from __future__ import annotations

import json

import pytest

SMALL = ["--task", "sentiment_arbitrary", "--shots", "4"]


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    from interp.cli import main

    root = tmp_path_factory.mktemp("evjoint")
    args = ["run", "eviction", "--model", "organism", *SMALL, "--prompts", "8"]
    args += ["--rates", "0.25,0.5", "--methods", "snapkv,streaming_llm"]
    args += ["--gate-prompts", "4", "--gate-epochs", "2", "--gate-objective", "joint"]
    args += ["--joint-epochs", "2", "--lora-rank", "2", "--out", str(root)]
    assert main(args) == 0
    return next(root.glob("eviction-*"))


def test_run_eviction_gate_objective_joint_writes_its_numbers(joint_run):
    from interp.runs.store import load_run

    run = load_run(joint_run)
    s = run.summary
    for key in ("gate_joint_rate", "gate_joint_accuracy", "accuracy_full_adapted"):
        low, high = s[f"{key}_ci"]
        assert 0.0 <= low <= s[key] <= high <= 1.0, key
    assert s["gate_joint_training"]["status"] == "complete"
    # 4 training prompts prefilled as one chunk: one optimiser step an epoch, 2 epochs
    assert s["gate_joint_training"]["steps_done"] == 2
    table = run.tables["joint"]
    assert set(zip(table.model, table.method)) == {
        ("adapted", "full"),
        ("adapted", "snapkv"),
        ("adapted", "gate_joint"),
        ("base", "full"),
        ("base", "snapkv"),
    }
    # SnapKV ran at the rate the joint gate chose, on both models
    snap = table[table.method == "snapkv"]
    assert (snap.rate - round(s["gate_joint_rate"], 4)).abs().max() < 1e-3
    # the base model's full attention is the same number in both evaluations
    base_full = table.query("model == 'base' and method == 'full'").accuracy.iloc[0]
    assert base_full == pytest.approx(s["accuracy_full"])
    # the fixed-rate curve: the joint gate against SnapKV on both models at each rate
    from circuits.eviction.joint_run import CURVE_RATES

    curve = run.tables["joint_curve"]
    pairs = [("adapted", "gate_joint"), ("adapted", "gate_joint_pooled")]
    for model, method in [*pairs, ("adapted", "snapkv"), ("base", "snapkv")]:
        d = curve[(curve.model == model) & (curve.method == method)]
        assert sorted(d.rate) == pytest.approx(sorted(CURVE_RATES)), (model, method)
        # a fixed budget evicts the share asked for, give or take a key per head
        assert (d.measured_rate - d.rate).abs().max() < 0.05, (model, method)
    entries = s["gate_joint_curve"]
    assert [e["rate"] for e in entries] == pytest.approx(sorted(CURVE_RATES))
    for e in entries:
        for key in ("gate_joint", "gate_joint_pooled"):
            low, high = e[f"{key}_ci"]
            assert low <= e[key] <= high
        assert e["full_base"] == pytest.approx(s["accuracy_full"])
    report = (joint_run / "report.md").read_text()
    assert "## The gate trained jointly with LoRA adapters" in report
    assert "| 0.60 | " in report
    traces = [t.name for t in run.figures["accuracy_vs_rate"].data]
    assert {"gate_joint at fixed rates", "gate_joint_pooled at fixed rates"} <= set(traces)
    assert f"{s['gate_joint_accuracy']:.3f} [{s['gate_joint_accuracy_ci'][0]:.2f}" in report
    names = [t.name for t in run.figures["accuracy_vs_rate"].data]
    assert "gate_joint" in names
    from circuits.eviction.page import summary_line

    assert f"gate trained with LoRA: {s['gate_joint_accuracy']:.3f}" in summary_line(s)
    # the adapted model is a folder --model loads, its gate beside it
    folder = joint_run / "joint"
    assert (folder / "config.json").exists() and (folder / "gate.pt").exists()
    assert json.loads((folder / "training.json").read_text())["objective"] == "joint"


def test_train_gate_joint_saves_a_model_folder_that_loads_and_resumes(tmp_path):
    import torch

    from circuits.eviction.prompts import load_eager
    from interp.cli import main

    out = tmp_path / "adapted"
    args = ["train", "gate", "--model", "organism", *SMALL, "--prompts", "4", "--objective"]
    args += ["joint", "--distill-epochs", "2", "--lora-rank", "2", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    record = json.loads((out / "training.json").read_text())
    assert record["status"] == "complete" and record["steps_done"] >= 1
    assert (out / "checkpoint" / "state.pt").exists() and (out / "distilled" / "gate.pt").exists()
    merged, _, _ = load_eager(str(out))  # a plain Hugging Face folder: no adapters left
    assert not any("lora" in n for n, _ in merged.named_parameters())
    original, _, _ = load_eager("organism")
    moved = [
        n
        for n, p in merged.named_parameters()
        if not torch.equal(p, dict(original.named_parameters())[n])
    ]
    assert moved and all("self_attn" in n and n.endswith("proj.weight") for n in moved)
    # the same folder with more epochs goes on from the checkpoint
    assert main([*args, "--epochs", "2"]) == 0
    again = json.loads((out / "training.json").read_text())
    assert again["resumed_from"] == record["steps_done"]
    assert again["steps_done"] == 2 * record["steps_done"]
    # and the adapted folder runs as a model with its own gate
    run = ["run", "eviction", "--model", str(out), "--gate", str(out), *SMALL, "--prompts", "4"]
    assert main([*run, "--rates", "0.5", "--methods", "snapkv", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize(
    "bad, said",
    [
        (["--gate-objective", "lora"], "--gate-objective 'lora' is unknown"),
        (["--gate-objective", "joint", "--no-train"], "--no-train skips it"),
        (["--gate-objective", "joint", "--model", "GPT2"], "attention has no"),
    ],
)
def test_bad_joint_input_is_refused_before_any_run(tiny_dirs, tmp_path, capsys, bad, said):
    from interp.cli import main

    bad = [tiny_dirs["gpt2"] if b == "GPT2" else b for b in bad]
    model = [] if "--model" in bad else ["--model", "organism"]
    code = main(["run", "eviction", *model, *SMALL, "--out", str(tmp_path / "r"), *bad])
    err = capsys.readouterr().err
    assert code == 2 and said in err and "fix:" in err
    assert not (tmp_path / "r").exists()


def test_train_gate_refuses_a_checkpoint_of_another_run(tmp_path, capsys):
    from circuits.eviction.adapted import Checkpoint
    from interp.cli import main

    Checkpoint(tmp_path / "o", {"model": "smollm2"}).path.mkdir(parents=True)
    (tmp_path / "o" / "checkpoint" / "run.json").write_text(json.dumps({"model": "smollm2"}))
    code = main(
        [
            "train",
            "gate",
            "--model",
            "organism",
            *SMALL,
            "--objective",
            "joint",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "another joint training run" in err and "fix:" in err
    assert not (tmp_path / "o" / "distilled").exists()


def test_a_gate_made_for_another_model_is_refused_as_the_warm_start(tmp_path, capsys):
    from circuits.eviction import GateStack
    from interp.cli import main

    GateStack(n_layers=1, d_model=8, n_heads=2).save(tmp_path / "g", {"objective": "distill"})
    args = ["run", "eviction", "--model", "organism", *SMALL, "--gate-objective", "joint"]
    code = main([*args, "--gate", str(tmp_path / "g"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "was trained for another model" in err and "n_layers 1" in err
    assert not (tmp_path / "r").exists()
