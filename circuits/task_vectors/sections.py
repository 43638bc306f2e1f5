"""Sections of the task-vector report that stand on their own: the published gains (targets),
the top heads with their AIE intervals, the spread across prompt seeds, and alpha across fits.
Each returns markdown lines written from the summary's numbers."""

from __future__ import annotations

import pandas as pd

from circuits.task_vectors.intervals import gain_ci, pair
from circuits.task_vectors.result import TaskVectorsResult
from interp.stats import with_ci

GAINS = (
    ("soft_injection_minus_icl", "soft_injection", "icl"),
    ("fv_minus_zero_shot", "fv", "zero_shot"),
    ("tv_minus_zero_shot", "tv", "zero_shot"),
)
"""The average gains of :func:`targets` that get an interval: key, method, baseline."""


def targets(
    per_task: dict[str, dict[str, float]], icl_floor: float = 0.6, hits: pd.DataFrame | None = None
) -> dict:
    """The published gains, over the tasks where k-shot ICL reaches ``icl_floor``: soft
    injection >= ICL + 0.05 on average and never more than 0.05 below it; FV >= 0-shot + 0.30;
    TV >= 0-shot + 0.40 (all on average). With the per-item ``hits``, each average gain gets a
    paired bootstrap interval ``<gain>_ci`` (see :func:`~.intervals.gain_ci`)."""
    tasks = [t for t, r in per_task.items() if r["icl"] >= icl_floor]
    if not tasks:
        return {"tasks": [], "icl_floor": icl_floor}
    mean = lambda key: sum(per_task[t][key] for t in tasks) / len(tasks)  # noqa: E731
    si_gap = [per_task[t]["soft_injection"] - per_task[t]["icl"] for t in tasks]
    out = {
        "tasks": tasks,
        "icl_floor": icl_floor,
        "soft_injection_minus_icl": round(mean("soft_injection") - mean("icl"), 4),
        "soft_injection_worst_minus_icl": round(min(si_gap), 4),
        "fv_minus_zero_shot": round(mean("fv") - mean("zero_shot"), 4),
        "tv_minus_zero_shot": round(mean("tv") - mean("zero_shot"), 4),
    }
    out["met"] = {
        "soft_injection": out["soft_injection_minus_icl"] >= 0.05
        and out["soft_injection_worst_minus_icl"] >= -0.05,
        "fv": out["fv_minus_zero_shot"] >= 0.30,
        "tv": out["tv_minus_zero_shot"] >= 0.40,
    }
    if hits is not None and len(hits):
        for key, method, base in GAINS:
            out[f"{key}_ci"] = pair(gain_ci(hits, method, base, tasks))
    return out


def _signed(t: dict, key: str) -> str:
    """A gain with its sign, and its interval where the summary has one."""
    ci = t.get(f"{key}_ci")
    shown = f"{t[key]:+.3f}"
    return shown + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def targets_lines(t: dict) -> list[str]:
    """The report's paragraph on the published gains (nothing when no task's ICL works);
    brackets: the paired bootstrap intervals of the average gains."""
    if not t.get("tasks"):
        return []
    return [
        f"Over the {len(t['tasks'])} tasks with k-shot ICL >= {t['icl_floor']}: soft "
        f"injection - ICL = {_signed(t, 'soft_injection_minus_icl')} on average (target "
        f">= +0.05), {t['soft_injection_worst_minus_icl']:+.3f} on the worst task (target "
        f">= -0.05); FV - 0-shot = {_signed(t, 'fv_minus_zero_shot')} (target >= +0.30); TV - "
        f"0-shot = {_signed(t, 'tv_minus_zero_shot')} (target >= +0.40). Met: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in t["met"].items())
        + ". Brackets: 95% bootstrap intervals of the average gains, each held-out item's "
        "difference resampled as one (every method scores the same items).",
        "",
    ]


def stability_section(result: TaskVectorsResult, summary: dict) -> list[str]:
    """The report's lines on alpha across fits (other learning rates and seeds): per fit,
    heads above 0.9 and held-out accuracy; per alpha, the heads above 0.9 in every fit and
    the fits' mean pairwise Jaccard index. Nothing when only the main fit ran."""
    st = result.stability
    if st.empty or st.groupby("task").size().max() < 2:
        return []
    lines = [
        "",
        "## Alpha across learning rates and seeds",
        "",
        f"{st.groupby('task').size().max()} fits per alpha: the main one (the alpha above), the "
        "other learning rates at the main seed and the other seeds at the main learning rate. "
        "Accuracy: held-out 0-shot items with that fit's alpha (shared: every task's items "
        "pooled). Stable heads: above 0.9 in every fit. Agreement: mean Jaccard index of the "
        "fits' above-0.9 sets over all pairs.",
        "",
        "| alpha | fit | heads > 0.9 | heads < 0.1 | accuracy |",
        "|---|---|---|---|---|",
    ]
    for r in st.itertuples():
        fit = f"{r.fit} (main)" if r.main else r.fit
        lines.append(
            f"| {r.task} | {fit} | {r.above_0_9} | {r.below_0_1} | "
            f"{r.acc:.2f} [{r.lo:.2f}, {r.hi:.2f}] |"
        )
    lines.append("")
    for task, heads in summary["alpha_stable_heads"].items():
        if heads is None:
            continue
        names = ", ".join(f"L{l}H{h}" for l, h in heads) or "none"
        agree = summary["alpha_fit_agreement"][task]
        lines.append(f"- {task}: {len(heads)} stable heads (agreement {agree:.2f}): {names}")
    return lines


def heads_line(summary: dict, trials: int) -> str:
    """The top heads by mean AIE, each with its AIE and bootstrap interval."""
    heads, values = summary["top_heads"], summary.get("top_heads_aie", [])
    cis = summary.get("top_heads_aie_ci") or [None] * len(heads)
    cells = [
        f"L{h[0]}H{h[1]} {aie_with_ci(v, ci)}" if values else f"L{h[0]}H{h[1]}"
        for h, v, ci in zip(heads, values or [0.0] * len(heads), cis)
    ]
    return (
        f"Top heads by AIE (mean over tasks, {trials} shuffled-label prompts per task; brackets: "
        "95% bootstrap interval over prompts, each task's prompts resampled on their own, "
        "1,000 resamples): " + ", ".join(cells) + "."
    )


def aie_with_ci(value: float, ci) -> str:
    """An AIE with its interval, one more digit when it is small (AIEs are often ~0.001)."""
    ends = [abs(value), *(abs(x) for x in ci or ())]
    return with_ci(value, ci, digits=3 if max(ends) >= 0.1 else 4)


def _range(s: dict, digits: int = 3) -> str:
    m, sd, lo, hi = s["mean"], s["std"], s["min"], s["max"]
    return f"{m:.{digits}f} (sd {sd:.{digits}f}, {lo:.{digits}f} to {hi:.{digits}f})"


def seeds_section(summary: dict, methods: list[str]) -> list[str]:
    """The report's lines on the spread across prompt seeds: per headline number, the first
    seed's value with its interval, each seed's value, their mean, sd and range. Nothing with
    one seed."""
    seeds = summary.get("seeds", [])
    if len(seeds) < 2:
        return []
    lines = [
        "",
        "## Across prompt seeds",
        "",
        f"The run again with the prompts drawn by each of {len(seeds)} seeds (test items, "
        "demonstrations, task-embedding and AIE prompts; everything else the same). The numbers "
        f"above are seed {seeds[0]}'s; here, its 95% interval next to what the other draws "
        "gave: the interval estimates how far a number moves on another draw, the seeds show it.",
        "",
        "| number | seed " + " | seed ".join(str(s) for s in seeds) + " | mean (sd, min to max) | "
        f"seed {seeds[0]} with 95% interval |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]
    for m in methods:
        by = summary.get(f"{m}_by_seed")
        if by is None:
            continue
        shown = with_ci(summary[m], summary.get(f"{m}_ci"))
        cells = " | ".join(f"{v:.3f}" for v in by["values"])
        lines.append(f"| {m} (mean over tasks) | {cells} | {_range(by)} | {shown} |")
    heads = summary["top_heads"]
    cis = summary.get("top_heads_aie_ci") or [None] * len(heads)
    for h, v, ci, by in zip(heads, summary["top_heads_aie"], cis, summary["top_heads_aie_by_seed"]):
        cells = " | ".join(f"{x:.4f}" for x in by["values"])
        shown = aie_with_ci(v, ci)
        lines.append(f"| AIE of L{h[0]}H{h[1]} | {cells} | {_range(by, 4)} | {shown} |")
    own = summary.get("top_heads_by_seed", {})
    if own:
        first = {tuple(h) for h in heads}
        lines += [
            "",
            "Each seed's own top heads, and how many of them are seed "
            f"{seeds[0]}'s: "
            + "; ".join(
                f"seed {s}: {sum(tuple(h) in first for h in hs)} of {len(hs)}"
                for s, hs in own.items()
            )
            + ".",
        ]
    return lines
