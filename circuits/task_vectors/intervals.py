"""95% intervals for a task-vector run's headline numbers, and their spread across prompt seeds.

- A method's accuracy on one task is a plain proportion: Wilson interval
  (:func:`interp.stats.wilson_ci`). Its mean over tasks is one too when every task has the
  same number of held-out items (the mean is then the pooled accuracy); with unequal counts it
  is a mean of proportions, and gets a bootstrap that resamples each task's items.
- A head's AIE is a mean over shuffled-label prompts of that prompt's indirect effect: a
  percentile bootstrap over prompts (:func:`interp.stats.bootstrap_ci`, seeded, 1,000
  resamples). The AIE the run ranks heads by is the mean over tasks of each task's AIE, so its
  bootstrap resamples each task's prompts on their own (tasks are not pooled: a resample that
  drew more prompts of one task would move the mean for no reason a reader cares about).
- With several prompt seeds (``--seeds``), each number's per-seed values, their mean, standard
  deviation and range: how far the number moves when the prompts are drawn again, which the
  interval of one draw estimates and the seeds measure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp.stats import bootstrap_ci, wilson_ci

RESAMPLES = 1000
"""Bootstrap resamples of every interval here."""

BOOTSTRAP_SEED = 0
"""The bootstrap's own seed: a run's intervals are the same every time they are computed."""


def pair(ci: tuple[float, float]) -> list[float]:
    """An interval as summary.json stores it: ``[low, high]``, rounded to 4 places."""
    return [round(float(v), 4) for v in ci]


def stratified_mean_ci(
    groups: list[np.ndarray],
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """Percentile bootstrap interval, per column, of the mean over groups of each group's
    column means. ``groups``: one ``(prompts, columns)`` array per task, all with the same
    columns; each resample draws every group's prompts from that group alone. Returns
    ``(columns, 2)``. One group is :func:`~interp.stats.bootstrap_ci` column by column."""
    groups = [np.asarray(g, dtype=float).reshape(len(g), -1) for g in groups]
    if len(groups) == 1:
        g = groups[0]
        cis = [
            bootstrap_ci(g[:, c], resamples=resamples, level=level, seed=seed)
            for c in range(g.shape[1])
        ]
        return np.array(cis, dtype=float).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    total = np.zeros((resamples, groups[0].shape[1]))
    for g in groups:
        n = g.shape[0]
        draws = rng.integers(0, n, size=(resamples, n))
        counts = np.zeros((resamples, n))
        np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
        total += counts @ g / n  # each resample's column means, without copying the rows
    alpha = (1 - level) / 2
    return np.quantile(total / len(groups), [alpha, 1 - alpha], axis=0).T


def accuracy_ci(hits: pd.DataFrame, method: str) -> tuple[float, float]:
    """The interval of ``method``'s mean accuracy over tasks (see the module's docstring)."""
    rows = hits[hits.method == method]
    per_task = [g.hit.to_numpy(dtype=float) for _, g in rows.groupby("task", sort=False)]
    sizes = {len(h) for h in per_task}
    if len(sizes) == 1:
        return wilson_ci(int(round(sum(h.sum() for h in per_task))), sum(len(h) for h in per_task))
    low, high = stratified_mean_ci(per_task)[0]
    return float(low), float(high)


def gain_ci(hits: pd.DataFrame, method: str, base: str, tasks: list[str]) -> tuple[float, float]:
    """Interval of the mean over ``tasks`` of ``method``'s accuracy less ``base``'s: every
    method scores the same held-out items, so each item's difference is resampled as one
    (paired), each task's items on their own."""
    diffs = []
    for task in tasks:
        of = hits[hits.task == task].sort_values("prompt")
        a, b = (of[of.method == m].hit.to_numpy(dtype=float) for m in (method, base))
        diffs.append(a - b)
    low, high = stratified_mean_ci(diffs)[0]
    return float(low), float(high)


def head_effects(aie_by_prompt: pd.DataFrame, heads: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per task, the ``(prompt, head)`` matrix of indirect effects of ``heads`` (in order)."""
    out = []
    for _, t in aie_by_prompt.groupby("task", sort=False):
        grid = t.pivot_table(index="prompt", columns=["layer", "head"], values="ie")
        out.append(grid[[tuple(h) for h in heads]].to_numpy(dtype=float))
    return out


def aie_of(aie: pd.DataFrame, heads: list[tuple[int, int]]) -> list[float]:
    """The mean-over-tasks AIE of ``heads``, read off the result's ``aie`` table."""
    mean = aie[aie.task == "mean"].set_index(["layer", "head"]).aie
    return [float(mean.loc[tuple(h)]) for h in heads]


def headline_intervals(result, methods: list[str]) -> dict:
    """The summary's ``<key>_ci`` entries: each method's mean accuracy, each task's accuracy
    (``per_task_ci``) and the top heads' AIE (``top_heads_aie`` and its ``_ci``)."""
    out: dict = {}
    if len(result.hits):
        for m in methods:
            out[f"{m}_ci"] = pair(accuracy_ci(result.hits, m))
    per_task: dict[str, dict[str, list[float]]] = {}
    for r in result.accuracy.itertuples():
        per_task.setdefault(r.task, {})[r.method] = pair((r.lo, r.hi))
    out["per_task_ci"] = per_task
    heads = [tuple(h) for h in result.top_heads]
    out["top_heads_aie"] = [round(v, 6) for v in aie_of(result.aie, heads)]
    if len(result.aie_by_prompt) and heads:
        cis = stratified_mean_ci(head_effects(result.aie_by_prompt, heads))
        out["top_heads_aie_ci"] = [[round(float(lo), 6), round(float(hi), 6)] for lo, hi in cis]
    return out


def spread(values: list[float]) -> dict:
    """Per-seed values with their mean, sample standard deviation, minimum and maximum."""
    x = np.asarray(values, dtype=float)
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return {
        "values": [round(float(v), 4) for v in x],
        "mean": round(float(x.mean()), 4),
        "std": round(std, 4),
        "min": round(float(x.min()), 4),
        "max": round(float(x.max()), 4),
    }


def method_means(per_task: dict[str, dict[str, float]], methods: list[str]) -> dict[str, float]:
    """Each method's mean accuracy over the tasks (only methods every task has)."""
    return {
        m: float(sum(t[m] for t in per_task.values()) / len(per_task))
        for m in methods
        if all(m in t for t in per_task.values())
    }


def seed_spread(results: dict, methods: list[str]) -> dict:
    """The summary's ``<key>_by_seed`` entries from each seed's result (``results``: seed ->
    :class:`~circuits.task_vectors.result.TaskVectorsResult`, the first seed's first): every
    method's mean accuracy, each task's accuracies (``per_task_by_seed``), the AIE of the first
    seed's top heads under every seed's prompts (``top_heads_aie_by_seed``, one entry per
    head), and each seed's own top heads (``top_heads_by_seed``)."""
    runs = list(results.values())
    per_task = [r.per_task() for r in runs]
    means = [method_means(p, methods) for p in per_task]
    out: dict = {
        f"{m}_by_seed": spread([x[m] for x in means]) for m in methods if all(m in x for x in means)
    }
    out["per_task_by_seed"] = {
        task: {m: spread([p[task][m] for p in per_task]) for m in accs}
        for task, accs in per_task[0].items()
    }
    heads = [tuple(h) for h in runs[0].top_heads]
    aies = [aie_of(r.aie, heads) for r in runs]
    out["top_heads_aie_by_seed"] = [spread([a[k] for a in aies]) for k in range(len(heads))]
    out["top_heads_by_seed"] = {str(s): [list(h) for h in r.top_heads] for s, r in results.items()}
    return out
