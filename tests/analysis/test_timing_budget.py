"""A run times its engine plans only until a budget is spent (the dry run times them all)."""

from __future__ import annotations

import pytest

from interp.analysis import timing
from interp.analysis.base import engine_costs
from interp.engine.batched import Engine
from interp.models import load_model


@pytest.fixture(scope="module")
def steps():
    from circuits.task_vectors import TaskVectors

    model = load_model("organism")
    tv = TaskVectors(test_items=8, te_prompts=4, trials=2, steps=2)
    return model, tv.engine_steps(model, ["fn_copy_first", "fn_copy_last"])


def test_a_spent_budget_prices_the_remaining_plans_by_their_work(steps, monkeypatch):
    model, plans = steps
    calls = []
    real = timing.time_plan
    monkeypatch.setattr(timing, "time_plan", lambda *a, **k: calls.append(1) or real(*a, **k))
    full = engine_costs(model, plans, None, 1)
    assert len(calls) == len(plans) > 2  # no budget (the dry run): every plan is timed
    calls.clear()
    with timing.measuring_budget(0.0):
        budgeted = engine_costs(model, plans, None, 1)
    assert len(calls) == 1  # the first plan spends the budget; the rest are priced
    priced = [est for _, est in budgeted.steps[1:]]
    assert all(est.seconds > 0 and est.measured_in == 0.0 for est in priced)
    # the same plan is priced in proportion to its work: a task's AIE and the other task's
    engine = Engine(model)
    units = [timing.plan_units(engine, plan, clean, bad) for _, plan, clean, bad in plans]
    same_width = [
        i for i, p in enumerate(plans) if p[2].tokens.shape[1] == plans[0][2].tokens.shape[1]
    ]
    rate = budgeted.steps[0][1].seconds / units[0]
    for i in same_width[1:]:
        assert budgeted.steps[i][1].seconds == pytest.approx(rate * units[i])
    # and the total stays of the order of the fully timed one
    assert full.seconds / 5 <= budgeted.seconds <= 5 * full.seconds
