"""Attribution patching is the true first-order effect of each patch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from interp.attribution import attribute
from interp.engine import Engine
from interp.models import load_model
from interp.tasks.suite import build_pair_batches
from interp.plan import InterventionPlan, PlanRow
from interp.sweeps import head_sweep, resid_sweep


@pytest.mark.parametrize("component", ["heads", "resid"])
def test_attribution_matches_a_finite_difference(tiny_dirs, component):
    model = load_model(tiny_dirs["llama"])
    clean, corrupted = build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 2)
    approx = attribute(model, clean, corrupted, component)
    eps = 1e-3
    if component == "heads":
        plan, keys = head_sweep(model.cfg, range(2)), ["layer", "head"]
    else:
        n_pos = clean.tokens.shape[1]
        plan, keys = resid_sweep(model.cfg, range(2), n_pos), ["layer", "position"]
    # a patch with alpha = eps moves the activation eps of the way to clean: first order only
    nudged = InterventionPlan(
        [PlanRow(r.prompt, tuple(replace(e, alpha=eps) for e in r.edits), r.labels)
         for r in plan.rows]
    )  # fmt: skip
    engine = Engine(model)
    base = engine.run(InterventionPlan([PlanRow(p) for p in range(2)]), clean, corrupted,
                      progress=False).metric.values  # fmt: skip
    moved = engine.run(nudged, clean, corrupted, progress=False)
    moved["metric"] = (moved.metric - base[moved.prompt]) / eps
    finite = moved.groupby(keys, as_index=False).metric.mean().merge(approx, on=keys)
    scale = finite.attribution.abs().max()
    assert scale > 1e-3
    gap = (finite.metric - finite.attribution).abs().max()
    assert gap <= 0.03 * scale, (gap, scale)
