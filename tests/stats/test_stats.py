"""Intervals against cases worked out by hand, and the control rule on planted effects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interp.stats import beats_control, bootstrap_ci, wilson_ci


def test_wilson_matches_the_formula_by_hand():
    # 8 of 10 at 95%: z = 1.959964, z² = 3.841459, 1 + z²/n = 1.3841459
    # centre = (0.8 + 0.1920729) / 1.3841459 = 0.716740
    # half = 1.959964 / 1.3841459 * sqrt(0.016 + 0.0096036) = 0.226578
    low, high = wilson_ci(8, 10)
    assert low == pytest.approx(0.490162, abs=1e-5)
    assert high == pytest.approx(0.943318, abs=1e-5)
    # 0 of 10: the interval is not empty, it starts at 0 and reaches 2·0.138767
    low, high = wilson_ci(0, 10)
    assert low == 0.0 and high == pytest.approx(0.277533, abs=1e-5)
    # symmetric: n - k successes mirror k successes
    assert wilson_ci(10, 10) == pytest.approx((1 - 0.277533, 1.0), abs=1e-5)
    assert wilson_ci(0, 0) == (0.0, 1.0)


def test_wilson_narrows_with_n_and_widens_with_level():
    w = [h - lo for lo, h in (wilson_ci(n // 2, n) for n in (10, 100, 1000))]
    assert w[0] > w[1] > w[2]
    lo90, hi90 = wilson_ci(50, 100, level=0.90)
    lo99, hi99 = wilson_ci(50, 100, level=0.99)
    assert lo99 < lo90 < 0.5 < hi90 < hi99
    with pytest.raises(ValueError):
        wilson_ci(11, 10)


def test_bootstrap_is_the_percentile_of_an_independent_resampling():
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(values), size=(500, len(values)))
    means = np.asarray(values)[idx].mean(axis=1)
    expected = np.quantile(means, [0.025, 0.975])
    assert bootstrap_ci(values, resamples=500, seed=3) == pytest.approx(tuple(expected))
    # a statistic without an axis argument gives the same numbers, one resample at a time
    assert bootstrap_ci(values, statistic=lambda s: float(sum(s) / len(s)), resamples=500, seed=3)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)


def test_bootstrap_resamples_whole_rows_of_a_matrix():
    # two columns that always move together: the largest column mean is column 1's mean
    rows = np.array([[0.0, 1.0], [1.0, 2.0], [0.0, 1.0], [1.0, 2.0]])
    low, high = bootstrap_ci(rows, statistic=lambda m: m.mean(0).max(), resamples=400, seed=2)
    assert (low, high) == pytest.approx(
        tuple(v + 1 for v in bootstrap_ci(rows[:, 0], resamples=400, seed=2))
    )


def test_bootstrap_on_two_values_by_enumeration():
    # resampling [0, 1] twice: mean 0 (1/4), 0.5 (1/2), 1 (1/4)
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)  # 2.5% and 97.5% fall in the 0 and 1 masses
    assert bootstrap_ci([0.0, 1.0], level=0.4) == (0.5, 0.5)  # 30% and 70% fall in the 0.5 mass


def test_constant_data_gives_a_zero_width_interval():
    assert bootstrap_ci([0.25] * 40) == (0.25, 0.25)
    assert bootstrap_ci([2.0]) == (2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_a_planted_effect_beats_the_control_and_a_null_one_does_not():
    rng = np.random.default_rng(0)
    control = list(rng.normal(0.02, 0.01, size=10))  # drops of ten random knockouts
    planted = rng.normal(0.30, 0.05, size=64)  # per-prompt drops of a real edge
    null = rng.normal(0.02, 0.05, size=64)  # per-prompt drops of an edge like the random ones
    assert beats_control(bootstrap_ci(planted)[0], control)
    assert not beats_control(bootstrap_ci(null)[0], control)
    # the rule uses the lower bound: a mean above the control is not enough on its own
    assert not beats_control(float(np.quantile(control, 0.95)), control)
    with pytest.raises(ValueError):
        beats_control(0.1, [])
