"""Attribution patching is the true first-order effect of each patch."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from interp.engine.attribution import attribute, rank_agreement
from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, PlanRow
from interp.engine.sweeps import head_sweep, resid_sweep
from interp.errors import IclscopeError
from interp.models import load_model
from interp.tasks.suite import build_pair_batches


@pytest.fixture(scope="module")
def sharp_llama(tiny_dirs, tmp_path_factory) -> str:
    """The tiny Llama with logits 30 times larger: its KL between clean and corrupted runs is
    then far above fp32 rounding, so a finite difference of KL means something."""
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("sharp")
    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    hf.model.norm.weight.data.mul_(30)
    hf.save_pretrained(out)
    for f in Path(tiny_dirs["llama"]).glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    return str(out)


@pytest.mark.parametrize("metric", ["logit_diff", "kl"])
@pytest.mark.parametrize("component", ["heads", "resid"])
def test_attribution_matches_a_finite_difference(tiny_dirs, sharp_llama, component, metric):
    """The attribution of a metric is the derivative of that metric's patching effect, on the
    effect scale (patched - corrupted) that the exact sweep reports."""
    model = load_model(tiny_dirs["llama"] if metric == "logit_diff" else sharp_llama)
    clean, corrupted = build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 2)
    approx = attribute(model, clean, corrupted, component, metric)
    eps = 1e-3
    if component == "heads":
        plan, keys = head_sweep(model.cfg, range(2)), ["layer", "head"]
    else:
        n_pos = clean.tokens.shape[1]
        plan, keys = resid_sweep(model.cfg, range(2), n_pos), ["layer", "position"]
    # a patch with alpha = eps moves the activation eps of the way to clean: first order only
    nudged = InterventionPlan(
        [
            PlanRow(r.prompt, tuple(replace(e, alpha=eps) for e in r.edits), r.labels)
            for r in plan.rows
        ]
    )
    engine = Engine(model)
    base = engine.run(
        InterventionPlan([PlanRow(p) for p in range(2)]),
        clean,
        corrupted,
        metric=metric,
        progress=False,
    ).metric.values
    moved = engine.run(nudged, clean, corrupted, metric=metric, progress=False)
    moved["metric"] = (moved.metric - base[moved.prompt]) / eps
    finite = moved.groupby(keys, as_index=False).metric.mean().merge(approx, on=keys)
    scale = finite.attribution.abs().max()
    assert scale > 1e-3
    gap = (finite.metric - finite.attribution).abs().max()
    assert gap <= 0.03 * scale, (gap, scale)


def test_acc_has_no_attribution(tiny_dirs):
    model = load_model(tiny_dirs["llama"])
    clean, corrupted = build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 2)
    with pytest.raises(IclscopeError, match="no gradient"):
        attribute(model, clean, corrupted, "heads", "acc")


def test_rank_agreement_compares_effects():
    """Signed effects against signed attributions: a constant baseline does not matter, a
    reversed sign does."""
    exact = pd.DataFrame(
        {"layer": [0, 1, 2], "metric": [-9.0, -5.0, -1.0], "effect": [1.0, 5.0, 9.0]}
    )
    approx = pd.DataFrame({"layer": [0, 1, 2], "attribution": [0.5, 4.0, 10.0]})
    assert rank_agreement(exact, approx, ["layer"]) == pytest.approx(1.0)
    assert rank_agreement(exact, approx.assign(attribution=-approx.attribution), ["layer"]) == (
        pytest.approx(-1.0)
    )
