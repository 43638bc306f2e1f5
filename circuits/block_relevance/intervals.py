"""95% intervals over prompts for block relevance's numbers (docs/analyses/block-relevance.md).

A precision@1 read off a few dozen prompts could move a lot on another draw of prompts, so
every headline number comes with an interval. Precision@1 is a proportion (the share of
prompts whose gold document is ranked first): its interval is Wilson's, which stays inside
``[0, 1]`` and does not collapse to a point at 0 or 1. MRR and nDCG@10 are means of per-prompt
values: their interval is a seeded percentile bootstrap over the prompts (:data:`RESAMPLES`
resamples), so a run gives the same interval every time. Both come from :mod:`interp.stats`.

The heads table carries the interval as ``<metric>_low`` and ``<metric>_high`` columns on the
rows that are reported (the head-averaged relevance at every layer, and each variant's picked
head); summary.json carries it as ``<key>_ci``, ``[low, high]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from interp.stats import bootstrap_ci, wilson_ci

RESAMPLES = 1000
"""Bootstrap resamples of the prompts for MRR and nDCG@10."""
LEVEL = 0.95
METRICS = ("p_at_1", "mrr", "ndcg10")
"""The measures of a ranking, each a mean over prompts of a per-prompt value."""


def metric_ci(
    metric: str, values: Sequence[float] | np.ndarray, seed: int = 0, level: float = LEVEL
) -> tuple[float, float]:
    """The interval of ``metric``'s mean over ``values`` (one per prompt): Wilson for
    ``p_at_1`` (each value 0 or 1), a seeded bootstrap of the mean otherwise."""
    x = np.asarray(values, dtype=float)
    if metric == "p_at_1":
        return wilson_ci(int(round(float(x.sum()))), len(x), level)
    return bootstrap_ci(x, resamples=RESAMPLES, level=level, seed=seed)


def ci_pair(low: float, high: float) -> list[float] | None:
    """An interval as summary.json stores it, ``[low, high]`` to 4 places, rounded outwards
    so that it still brackets its value; ``None`` when it is undefined (no prompts)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return [math.floor(low * 1e4 + 1e-9) / 1e4, math.ceil(high * 1e4 - 1e-9) / 1e4]


def row_ci(row: pd.Series, metric: str) -> list[float] | None:
    """The interval a heads-table row holds for ``metric`` (``None`` when it holds none)."""
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or high is None:
        return None
    return ci_pair(float(low), float(high))


def proportion_ci(hits: Tensor) -> list[float] | None:
    """The Wilson interval of a share of prompts (``hits``: one boolean per prompt)."""
    if len(hits) == 0:
        return None
    return ci_pair(*wilson_ci(int(hits.sum()), len(hits)))


def add_intervals(
    heads: pd.DataFrame,
    scores: dict[tuple[str, str], dict[str, Tensor]],
    wanted: pd.Series,
    seed: int = 0,
) -> pd.DataFrame:
    """``heads`` with ``<metric>_low`` and ``<metric>_high`` filled on the rows ``wanted``
    (a boolean mask) and NaN elsewhere. ``scores``: per (variant, split) each metric's
    per-prompt values ``(prompt, layer, head)``, the mean over heads last."""
    out = heads.copy()
    for metric in METRICS:
        out[f"{metric}_low"] = np.nan
        out[f"{metric}_high"] = np.nan
    for index, row in heads[wanted].iterrows():
        per_prompt = scores[(row.variant, row.split)]
        head = int(row["head"])
        for metric in METRICS:
            values = per_prompt[metric][:, int(row.layer), head]  # head -1: the mean, last
            low, high = metric_ci(metric, values.numpy(), seed)
            out.loc[index, [f"{metric}_low", f"{metric}_high"]] = [low, high]
    return out
