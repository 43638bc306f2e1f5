"""``run patch`` reads every component against the clean and corrupted baselines.

The end-to-end tests use a model whose answer is known: a tiny random model in which one head,
and only that head, writes to the residual stream (every other head's output projection is
zero). Patching that head from clean into corrupted then *is* the clean run at the read-out,
so it must rank first with a normalised effect of 1, and every other head has no effect at all.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from circuits.activation_patching import Effects
from interp.cli import main
from interp.engine.metrics import MIN_GAP, normalized_effect
from interp.engine.plan import InterventionPlan, Patch, PlanRow
from interp.engine.sweeps import BASELINE, with_baselines
from interp.models import load_model
from interp.runs.store import load_run
from interp.tasks.suite import build_pair_batches

LAYER, HEAD = 1, 3
PROMPTS, SHOTS = 4, 4


# -- the normalisation, on hand-made numbers ---------------------------------------------------
def test_normalized_effect_denoising_and_noising():
    clean, corrupted = 4.0, -2.0
    patched = np.array([-2.0, 1.0, 4.0, 7.0])
    assert normalized_effect(patched, clean, corrupted) == pytest.approx([0.0, 0.5, 1.0, 1.5])
    # noising mirrors it: removing the whole answer (patched = corrupted) is 1
    noised = normalized_effect(patched, clean, corrupted, noising=True)
    assert noised == pytest.approx([1.0, 0.5, 0.0, -0.5])
    # the formula does not care which way the metric points (KL: clean 0, corrupted 2)
    assert normalized_effect(0.5, 0.0, 2.0) == pytest.approx(0.75)
    assert normalized_effect(0.5, 0.0, 2.0, noising=True) == pytest.approx(0.25)


def test_normalized_effect_is_nan_not_inf_when_baselines_coincide():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning either
        same = normalized_effect(np.array([3.0, 5.0]), 3.0, 3.0)
        close = normalized_effect(10.0, 10.0, 10.0 - 0.5 * MIN_GAP * 10.0, noising=True)
        per_row = normalized_effect([1.0, 1.0], [2.0, 2.0], [0.0, 2.0])
    assert np.isnan(same).all() and np.isnan(close)
    assert per_row[0] == pytest.approx(0.5) and np.isnan(per_row[1])


# -- reading an engine table ---------------------------------------------------------------------
def hand_made(metrics: dict[tuple[int, int], float], clean, corrupted, base="corrupted"):
    """A two-prompt head plan with baselines, and the engine table it would produce."""
    rows = [
        PlanRow(
            p,
            (Patch(f"blocks.{layer}.attn.hook_z", "clean", heads=(0,)),),
            (("layer", layer), ("head", 0)),
        )
        for p in range(2)
        for layer in range(len(metrics) // 2)
    ]
    plan = with_baselines(InterventionPlan(rows, base=base), range(2))
    values = [metrics[r.prompt, dict(r.labels)["layer"]] for r in rows]
    for p in range(2):
        values += [clean[p], corrupted[p]] if base == "clean" else [corrupted[p], clean[p]]
    table = pd.DataFrame([dict(r.labels) | {"prompt": r.prompt} for r in plan.rows])
    return plan, table.assign(metric=np.float32(values))


def test_effects_read_each_prompt_against_its_own_baselines():
    metrics = {(0, 0): 1.0, (0, 1): 3.0, (0, 2): -1.0, (1, 0): 2.0, (1, 1): 0.0, (1, 2): 5.0}
    plan, table = hand_made(metrics, clean=[3.0, 5.0], corrupted=[-1.0, 1.0])
    effects = Effects.measure(table, plan, "logit_diff")
    assert list(effects.baselines.clean) == [3.0, 5.0]
    assert effects.clean == 4.0 and effects.corrupted == 0.0
    res = effects.results.set_index(["prompt", "layer"])
    assert res.loc[(0, 1)].effect == pytest.approx(4.0)  # 3 - (-1)
    assert res.loc[(1, 2)].normalized_effect == pytest.approx(1.0)  # (5 - 1) / (5 - 1)
    assert effects.results.layer.dtype.kind == "i"  # labels keep their type
    mean = effects.by_component.set_index("layer")
    assert mean.effect.tolist() == pytest.approx([1.5, 1.5, 2.0])
    # normalised effect of the means: (mean patched - 0) / (4 - 0)
    assert mean.normalized_effect.tolist() == pytest.approx([0.375, 0.375, 0.5])
    # ranked by restoring effect, largest first; ties keep their order
    assert effects.ranked().layer.tolist() == [2, 0, 1]
    assert effects.warnings() == []


@pytest.mark.parametrize(
    "metric, clean, corrupted, noising, order",
    [
        ("logit_diff", 4.0, -2.0, False, [2, 0, 1]),
        ("logit_diff", 4.0, -2.0, True, [1, 0, 2]),
        ("kl", 0.0, 2.0, False, [1, 0, 2]),
        ("kl", 0.0, 2.0, True, [2, 0, 1]),
        ("logit_diff", -3.0, 1.0, False, [1, 0, 2]),  # a model that gets the clean prompts wrong
        ("logit_diff", 1.0, 1.0, False, [2, 0, 1]),
        ("kl", 0.0, 0.0, True, [2, 0, 1]),
    ],
)
def test_ranking_puts_what_matters_first(metric, clean, corrupted, noising, order):
    """Effects +1, -3, +5. Denoising ranks the largest move towards clean first, noising the
    largest move away from it; which way is clean comes from the baselines (KL: 0 is clean),
    or from the metric's convention where the baselines coincide."""
    mean = pd.DataFrame({"layer": [0, 1, 2], "effect": [1.0, -3.0, 5.0]})
    baselines = pd.DataFrame({"clean": [clean], "corrupted": [corrupted]})
    effects = Effects(pd.DataFrame(), mean, baselines, metric, noising)
    assert effects.ranked().layer.tolist() == order
    first = effects.ranked().effect[0]
    assert f"{'largest' if first > 0 else 'most negative'} effect first" in effects.ranking_rule()


def test_equal_baselines_give_nan_and_a_warning():
    metrics = {(0, 0): 1.0, (0, 1): 2.0, (1, 0): 2.0, (1, 1): 2.0}
    plan, table = hand_made(metrics, clean=[2.0, 3.0], corrupted=[2.0, 1.0], base="clean")
    effects = Effects.measure(table, plan, "logit_diff")
    res = effects.results.set_index(["prompt", "layer"])
    assert np.isnan(res.loc[(0, 0)].normalized_effect)  # prompt 0: clean == corrupted
    assert res.loc[(1, 0)].normalized_effect == pytest.approx(0.5)  # (3 - 2) / (3 - 1)
    assert np.isfinite(effects.by_component.normalized_effect).all()  # the means still differ
    assert any("1 of 2 prompts" in w for w in effects.warnings())
    assert effects.ranked().layer.tolist() == [0, 1]  # damage: -1 (mean of -1, -1) before -0.5


# -- a model with one planted head ---------------------------------------------------------------
def plant_head(src: str, out: Path) -> Path:
    """Copy a tiny model keeping only head ``HEAD`` of layer ``LAYER`` in the residual stream.
    Its output is scaled up, and so are the logits (the final norm's weight), so the clean and
    corrupted runs differ by several logits rather than a few hundredths."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(src)
    llama = hf.config.model_type == "llama"
    d_head = hf.config.hidden_size // hf.config.num_attention_heads
    keep = slice(HEAD * d_head, (HEAD + 1) * d_head)
    blocks = hf.model.layers if llama else hf.transformer.h
    with torch.no_grad():
        for layer, block in enumerate(blocks):
            # o_proj is (d_model, heads * d_head); GPT-2's Conv1D c_proj is its transpose
            w = block.self_attn.o_proj.weight if llama else block.attn.c_proj.weight.T
            planted = 8 * w[:, keep] if layer == LAYER else torch.zeros_like(w[:, keep])
            w.zero_()
            w[:, keep] = planted
            if not llama:
                block.attn.c_proj.bias.zero_()
        (hf.model.norm if llama else hf.transformer.ln_f).weight.mul_(50)
    hf.save_pretrained(out)
    for f in Path(src).glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def planted(request, tiny_dirs, tmp_path_factory) -> str:
    return str(plant_head(tiny_dirs[request.param], tmp_path_factory.mktemp("planted")))


def run_patch_cli(model: str, out: Path, capsys, *extra: str):
    args = [
        "run",
        "patch",
        "--model",
        model,
        "--prompts",
        str(PROMPTS),
        "--shots",
        str(SHOTS),
        "--out",
        str(out),
        *extra,
    ]
    assert main(args) == 0
    return load_run(capsys.readouterr().out.strip().splitlines()[-1])


def unpatched(model: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The metric on plain forwards of the clean and the corrupted prompts (no engine)."""
    m = load_model(model)
    clean, corrupted = build_pair_batches(m.prompt_builder(), "sentiment_semantic", PROMPTS, SHOTS)
    rows = torch.arange(PROMPTS)
    with torch.no_grad():
        logits = [m.run_with_hooks(b.tokens, [], b.attention_mask) for b in (clean, corrupted)]
    at = [lg[rows, clean.s_q] for lg in logits]
    if metric == "logit_diff":
        good, bad = clean.answer_ids, corrupted.answer_ids
        return tuple((a[rows, good] - a[rows, bad]).numpy() for a in at)
    logp = [torch.log_softmax(a, -1) for a in at]  # kl to the clean run
    return tuple((logp[0].exp() * (logp[0] - lp)).sum(-1).numpy() for lp in logp)


def test_planted_head_restores_the_clean_run(planted, tmp_path, capsys):
    run = run_patch_cli(planted, tmp_path, capsys)
    top = run.tables["top_components"]
    assert (top.layer[0], top["head"][0]) == (LAYER, HEAD)
    assert top.normalized_effect[0] == pytest.approx(1.0, abs=1e-4)
    gap = run.summary["clean_baseline"] - run.summary["corrupted_baseline"]
    assert abs(gap) > 0.05  # the test means something only if the two runs differ
    assert top.effect[0] == pytest.approx(gap, rel=1e-4)
    others = run.tables["by_component"].query("not (layer == @LAYER and head == @HEAD)")
    assert others.effect.abs().max() < 1e-4 * abs(gap)
    # the baselines are the plain clean and corrupted forwards
    clean, corrupted = unpatched(planted, "logit_diff")
    baselines = run.tables["baselines"].sort_values("prompt")
    assert baselines.clean.to_numpy() == pytest.approx(clean, abs=1e-4)
    assert baselines.corrupted.to_numpy() == pytest.approx(corrupted, abs=1e-4)
    assert run.tables["results"].clean_baseline.to_numpy() == pytest.approx(
        clean[run.tables["results"].prompt], abs=1e-4
    )
    # summary.json: the baselines and top_components ranked by (restoring) effect
    summary = json.loads((run.path / "summary.json").read_text())
    assert {"clean_baseline", "corrupted_baseline", "top_components"} <= set(summary)
    assert summary["clean_baseline"] == pytest.approx(clean.mean(), abs=1e-4)
    # restoring = towards clean: up where clean sits above corrupted (the random GPT-2 here
    # has clean below corrupted, so there the most negative effect comes first)
    restored = [c["effect"] * np.sign(gap) for c in summary["top_components"]]
    assert restored == sorted(restored, reverse=True)
    assert summary["top_components"][0]["layer"] == LAYER
    report = (run.path / "report.md").read_text()
    assert f"clean **{summary['clean_baseline']:.4f}**" in report and "clean_baseline" in report


def test_planted_head_on_kl_ranks_restoring_first(tiny_dirs, tmp_path, capsys):
    """KL to the clean run falls as a patch restores it: the planted head's effect is the most
    negative one, and attribution (also of KL now) agrees with it in sign."""
    model = str(plant_head(tiny_dirs["llama"], tmp_path / "model"))
    run = run_patch_cli(model, tmp_path / "runs", capsys, "--metric", "kl")
    clean, corrupted = unpatched(model, "kl")
    assert run.summary["clean_baseline"] == pytest.approx(0.0, abs=1e-5)
    assert run.summary["corrupted_baseline"] == pytest.approx(corrupted.mean(), rel=1e-3)
    top = run.tables["top_components"]
    assert (top.layer[0], top["head"][0]) == (LAYER, HEAD)
    assert top.effect[0] == pytest.approx(-corrupted.mean(), rel=1e-3)
    assert top.normalized_effect[0] == pytest.approx(1.0, abs=1e-3)
    approx = run.tables["attribution"].set_index(["layer", "head"])
    assert approx.attribution.idxmin() == (LAYER, HEAD)
    assert approx.normalized_attribution.idxmax() == (LAYER, HEAD)
    assert approx.attribution[(LAYER, HEAD)] < 0 < approx.normalized_attribution[(LAYER, HEAD)]


def test_ablating_the_planted_head_does_the_most_damage(tiny_dirs, tmp_path, capsys):
    model = str(plant_head(tiny_dirs["llama"], tmp_path / "model"))
    run = run_patch_cli(model, tmp_path / "runs", capsys, "--ablation", "zero", "--metric", "kl")
    assert run.summary["clean_baseline"] == pytest.approx(0.0, abs=1e-5)
    top = run.tables["top_components"]
    assert (top.layer[0], top["head"][0]) == (LAYER, HEAD)
    assert top.effect[0] > 1e-3 and top.normalized_effect[0] > 0  # KL up: damage
    assert top.effect.iloc[1:].abs().max() < 1e-5
    effects = [c["effect"] for c in run.summary["top_components"]]
    assert effects == sorted(effects, reverse=True)  # KL: the largest damage is the largest
    assert run.summary["ranked_by"].startswith("damage")
    assert BASELINE not in run.tables["results"]
