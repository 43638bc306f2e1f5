"""Intervals for headline numbers: a number read off a few hundred prompts is an estimate, and a
reader needs to know how far it could move on another draw of prompts.

Two intervals, both torch-free (numpy and the standard library only):

- :func:`wilson_ci` for a plain accuracy, ``successes`` out of ``n`` independent prompts. The
  Wilson score interval keeps its coverage near the nominal level even at small ``n`` or at
  accuracies near 0 or 1, where the textbook ``p ± z·sqrt(p(1-p)/n)`` interval collapses to a
  point or leaves ``[0, 1]``.
- :func:`bootstrap_ci` for anything else computed from per-prompt values (a mean of paired
  differences, a drop in accuracy): resample the prompts with replacement, recompute the
  statistic, and take the percentiles of the resampled statistics. It assumes nothing about the
  statistic's distribution, only that prompts are independent draws. It is seeded, so a run's
  interval is the same every time it is computed.

:func:`beats_control` is the rule for "larger than a control": an effect's lower bound must clear
a high percentile of the control's distribution, so neither a lucky effect nor a lucky control
decides it.

Two tests for the atlas, which asks whether two sets of attention heads (the retrieval heads and
the function-vector heads, say) share more heads than chance would:

- :func:`overlap_p_value`: two sets drawn from the same few hundred heads share some heads by
  chance alone, more the larger the sets are. The hypergeometric tail gives the probability of
  at least the observed overlap if one set were drawn at random from all heads.
- :func:`holm`: the atlas tests every pair of role sets, and with dozens of pairs one of them
  passes ``p < 0.05`` by chance. Holm's step-down correction keeps the probability of any false
  positive over all pairs at the nominal level, and is never less powerful than Bonferroni.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "accuracy_ci",
    "beats_control",
    "bootstrap_ci",
    "holm",
    "overlap_p_value",
    "wilson_ci",
    "with_ci",
]


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n``.

    With ``z`` the two-sided normal quantile of ``level`` and ``p = successes / n``::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)

    The interval always lies in ``[0, 1]`` and is not empty at ``p = 0`` or ``p = 1``. ``n = 0``
    says nothing: the interval is ``(0, 1)``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level {level} must be between 0 and 1")
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n} is not a proportion")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not rounding noise
    high = 1.0 if successes == n else min(1.0, centre + half)
    return float(low), float(high)


def accuracy_ci(accuracy: float, n: int, level: float = 0.95) -> list[float]:
    """The Wilson interval of an accuracy measured on ``n`` prompts, as a summary stores it
    beside the number (``<key>_ci``): ``[low, high]``, rounded to 4 places."""
    return [round(v, 4) for v in wilson_ci(int(round(float(accuracy) * n)), n, level)]


def with_ci(value: float, ci: Sequence[float] | None, digits: int = 3) -> str:
    """``0.734 [0.68, 0.78]``: a number with its interval (the number alone without one)."""
    if ci is None:
        return f"{value:.{digits}f}"
    low, high = ci
    return f"{value:.{digits}f} [{low:.{digits - 1}f}, {high:.{digits - 1}f}]"


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values``, one entry per prompt.

    Draws ``resamples`` samples of ``len(values)`` prompts with replacement (numpy's
    ``default_rng(seed)``), applies ``statistic`` to each, and returns the ``(1 - level) / 2``
    and ``(1 + level) / 2`` percentiles of the results. Values that are all equal give a
    zero-width interval; one value gives that value twice.

    ``values`` may be 2-D, ``(prompts, columns)``: whole rows are resampled, so a statistic
    across columns (the largest of several column means, say) keeps each prompt's columns
    together. ``statistic`` receives one resample (an array of the same shape as ``values``); a
    1-D statistic that takes ``axis`` (``np.mean``, ``np.median``) is applied to all resamples
    at once.
    """
    if not 0 < level < 1:
        raise ValueError(f"level {level} must be between 0 and 1")
    if resamples < 1:
        raise ValueError(f"resamples {resamples} must be at least 1")
    x = np.asarray(values, dtype=float)
    if x.ndim == 0:
        x = x.ravel()
    if x.shape[0] == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.shape[0], size=(resamples, x.shape[0]))]
    stats = None
    if x.ndim == 1:
        try:
            stats = np.asarray(statistic(samples, axis=1), dtype=float)
        except TypeError:
            stats = None
    if stats is None or stats.shape != (resamples,):
        stats = np.array([statistic(s) for s in samples], dtype=float)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def beats_control(low: float, control: Sequence[float], q: float = 0.95) -> bool:
    """Whether an effect whose interval starts at ``low`` is above the ``q`` quantile of a
    control's values (e.g. drops of random knockouts of the same size): an effect counts only
    when even its lower bound clears all but the top ``1 - q`` of the control."""
    if len(control) == 0:
        raise ValueError("no control values to compare with")
    return bool(low > float(np.quantile(np.asarray(control, dtype=float), q)))


def overlap_p_value(shared: int, size_a: int, size_b: int, total: int) -> float:
    """One-sided hypergeometric p-value of two head sets sharing ``shared`` heads or more.

    Of ``total`` heads, ``size_a`` are in set A; set B's ``size_b`` heads are taken as a random
    draw without replacement, and the result is ``P(|A ∩ B| >= shared)``. ``shared = 0`` gives 1
    (any two sets share at least nothing). Sizes that cannot occur (negative, a set larger than
    ``total``, or more shared heads than either set holds) raise :class:`ValueError` rather than
    returning a probability for an impossible table.
    """
    for name, value in (
        ("shared", shared),
        ("size_a", size_a),
        ("size_b", size_b),
        ("total", total),
    ):
        if isinstance(value, bool) or value != int(value):
            raise ValueError(f"{name} {value!r} must be a whole number of heads")
        if value < 0:
            raise ValueError(f"{name} {value} must not be negative")
    if total < 1:
        raise ValueError(f"total {total} must be at least 1 head")
    if size_a > total or size_b > total:
        raise ValueError(f"set sizes {size_a} and {size_b} cannot exceed the {total} heads")
    if shared > min(size_a, size_b):
        raise ValueError(f"{shared} shared heads is more than the sets of {size_a} and {size_b}")
    if shared < size_a + size_b - total:
        # two sets this large must share at least this many heads (pigeonhole)
        raise ValueError(
            f"sets of {size_a} and {size_b} out of {total} heads share at least "
            f"{size_a + size_b - total}, not {shared}"
        )
    if shared == 0:
        return 1.0
    from scipy.stats import hypergeom  # scipy is slow to import; only the atlas needs it

    tail = hypergeom.sf(int(shared) - 1, int(total), int(size_a), int(size_b))
    return float(min(1.0, max(0.0, tail)))  # clip floating-point noise outside [0, 1]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given.

    Sorted ascending, the ``i``-th smallest of ``m`` p-values (``i`` from 0) is multiplied by
    ``m - i``; a running maximum keeps the adjusted values in the same order as the raw ones
    (a smaller raw p never gets a larger adjusted p), and each is capped at 1. Rejecting every
    hypothesis whose adjusted p is below ``alpha`` controls the family-wise error at ``alpha``.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("p_values must be a flat sequence")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]
