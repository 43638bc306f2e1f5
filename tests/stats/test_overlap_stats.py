"""The atlas's overlap test and its correction, checked against numbers worked out by hand."""

from __future__ import annotations

from math import comb

import pytest

from interp.stats import holm, overlap_p_value


def _tail_by_hand(shared: int, size_a: int, size_b: int, total: int) -> float:
    """P(X >= shared) for X hypergeometric, summed term by term with binomial coefficients."""
    top = min(size_a, size_b)
    ways = sum(comb(size_a, k) * comb(total - size_a, size_b - k) for k in range(shared, top + 1))
    return ways / comb(total, size_b)


def test_overlap_p_value_matches_the_hand_computed_case():
    # [C(4,2)C(6,1) + C(4,3)C(6,0)] / C(10,3) = (36 + 4) / 120 = 1/3
    by_hand = (comb(4, 2) * comb(6, 1) + comb(4, 3) * comb(6, 0)) / comb(10, 3)
    assert by_hand == pytest.approx(1 / 3)
    assert overlap_p_value(2, 4, 3, 10) == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize(
    "shared, size_a, size_b, total",
    [(1, 4, 3, 10), (3, 4, 3, 10), (5, 10, 10, 144), (2, 10, 10, 144), (7, 7, 12, 30)],
)
def test_overlap_p_value_is_the_upper_tail(shared, size_a, size_b, total):
    assert overlap_p_value(shared, size_a, size_b, total) == pytest.approx(
        _tail_by_hand(shared, size_a, size_b, total), rel=1e-9
    )


def test_overlap_p_value_is_symmetric_in_the_two_sets():
    assert overlap_p_value(3, 5, 9, 40) == pytest.approx(overlap_p_value(3, 9, 5, 40))


def test_no_shared_heads_gives_one():
    assert overlap_p_value(0, 4, 3, 10) == 1.0
    assert overlap_p_value(0, 0, 0, 10) == 1.0


def test_more_shared_heads_is_less_likely():
    ps = [overlap_p_value(k, 10, 10, 144) for k in range(0, 11)]
    assert all(a > b for a, b in zip(ps, ps[1:]))
    # all ten shared: one draw out of C(144, 10)
    assert ps[-1] == pytest.approx(1 / comb(144, 10), rel=1e-9)


@pytest.mark.parametrize(
    "shared, size_a, size_b, total, words",
    [
        (4, 4, 3, 10, "more than"),  # more shared than set B holds
        (-1, 4, 3, 10, "negative"),
        (1, 11, 3, 10, "exceed"),
        (1, 4, 30, 10, "exceed"),
        (0, 8, 7, 10, "at least 5"),  # 8 + 7 out of 10 must share 5
        (0, 0, 0, 0, "at least 1"),
        (1.5, 4, 3, 10, "whole number"),
    ],
)
def test_impossible_sizes_raise(shared, size_a, size_b, total, words):
    with pytest.raises(ValueError, match=words):
        overlap_p_value(shared, size_a, size_b, total)


def test_holm_hand_example_keeps_the_input_order():
    # sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 to stay monotone
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_holm_caps_at_one_and_is_monotone():
    raw = [0.5, 0.001, 0.2, 0.02, 0.9]
    adjusted = holm(raw)
    assert adjusted == pytest.approx([1.0, 0.005, 0.6, 0.08, 1.0])
    assert all(a >= r for a, r in zip(adjusted, raw))
    by_raw = [a for _, a in sorted(zip(raw, adjusted))]
    assert by_raw == sorted(by_raw)


def test_holm_edge_cases():
    assert holm([]) == []
    assert holm([0.04]) == pytest.approx([0.04])
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])  # ties get the same value
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])
