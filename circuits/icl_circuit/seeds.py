"""The circuit repeated over seeds: the spread of each headline number across draws of prompts.

A bootstrap interval says how much a number would move on another draw of prompts *from the
same run*; running the whole circuit again on prompts sampled with other seeds shows it
directly. :func:`across_seeds` turns each seed's summary into ``<key>_by_seed`` entries (every
seed's value and interval, their mean, minimum and maximum) and applies the every-seed rule to
``above_random``; :func:`seed_lines` writes them as the report's table.
"""

from __future__ import annotations

from collections.abc import Sequence

from circuits.icl_circuit.scores import EDGE_NAMES

SEED_KEYS = {
    "step1_best_centroid_acc": "step 1: centroid accuracy at s_q, best depth",
    "step3_best_head_label_acc": "step 3: best head's label-assignment accuracy",
    "accuracy_0shot": "accuracy at 0 shots",
    "accuracy": "accuracy at {shots} shots",
}
"""The headline numbers repeated per seed, with the words the report's table uses."""


def spread(values: Sequence[float], cis: Sequence[Sequence[float] | None]) -> dict:
    """One number across seeds: each seed's value and interval, their mean, min and max."""
    values = [float(v) for v in values]
    return {
        "values": values,
        "ci": [list(ci) if ci is not None else None for ci in cis],
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
    }


def across_seeds(seeds: Sequence[int], summaries: Sequence[dict]) -> dict:
    """From one summary per seed (same order as ``seeds``): ``seeds``, ``<key>_by_seed`` for
    each of :data:`SEED_KEYS`, ``ablation_drop_by_seed`` per edge, ``above_random_by_seed``
    (each seed's list) and ``above_random``: the edges above random in *every* seed, in the
    first seed's order (an edge that clears the control on one draw of prompts only is not
    named above random)."""
    if len(seeds) != len(summaries) or not seeds:
        raise ValueError(f"{len(seeds)} seeds for {len(summaries)} summaries")
    out: dict = {"seeds": [int(s) for s in seeds]}
    for key in SEED_KEYS:
        out[f"{key}_by_seed"] = spread(
            [s[key] for s in summaries], [s.get(f"{key}_ci") for s in summaries]
        )
    edges = [e for e in EDGE_NAMES if all(e in s["ablation_drop"] for s in summaries)]
    out["ablation_drop_by_seed"] = {
        e: spread(
            [s["ablation_drop"][e] for s in summaries],
            [s.get("ablation_drop_ci", {}).get(e) for s in summaries],
        )
        for e in edges
    }
    per_seed = [list(s.get("above_random", [])) for s in summaries]
    out["above_random_by_seed"] = per_seed
    out["above_random"] = [e for e in per_seed[0] if all(e in seen for seen in per_seed)]
    return out


def combined_summary(seeds: Sequence[int], summaries: Sequence[dict]) -> dict:
    """The run's summary: the first seed's numbers, ``seeds``, and with several seeds the
    spread of :func:`across_seeds` (its ``above_random`` the every-seed rule) and ``seconds``
    summed over the seeds."""
    out = dict(summaries[0]) | {"seeds": [int(s) for s in seeds]}
    if len(summaries) > 1:
        out |= across_seeds(seeds, summaries)
        out["seconds"] = round(sum(s["seconds"] for s in summaries), 3)
    return out


def seed_lines(summary: dict, shots: int) -> list[str]:
    """The report's section on the spread across seeds (empty for a run of one seed)."""
    seeds = summary.get("seeds", [])
    if len(seeds) < 2:
        return []
    head = " | ".join(f"seed {s} [95% interval]" for s in seeds)
    lines = [
        "## Across seeds",
        "",
        f"The whole circuit ran once per seed ({', '.join(map(str, seeds))}), each on its own "
        f"draw of prompts; the sections above are seed {seeds[0]}'s. The spread across seeds "
        "sits beside each seed's own 95% interval.",
        "",
        f"| measure | {head} | mean | min-max |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]
    rows = [(w.format(shots=shots), summary[f"{key}_by_seed"]) for key, w in SEED_KEYS.items()]
    rows += [(f"drop: {e}", d) for e, d in summary.get("ablation_drop_by_seed", {}).items()]
    for words, d in rows:
        cells = " | ".join(_cell(v, ci) for v, ci in zip(d["values"], d["ci"]))
        lines.append(f"| {words} | {cells} | {d['mean']:.3f} | {d['min']:.3f}-{d['max']:.3f} |")
    above, per_seed = summary.get("above_random", []), summary.get("above_random_by_seed", [])
    some = [e for e in EDGE_NAMES if e not in above and any(e in s for s in per_seed)]
    counts = [f"{e} ({sum(e in s for s in per_seed)} of {len(seeds)})" for e in some]
    lines += [
        "",
        "Rule: across seeds, an edge is named above random only when it is above random in "
        "every seed (in each, the lower bound of its drop's interval clears that seed's "
        "random control). "
        + (
            f"Above random in every seed: {', '.join(above)}."
            if above
            else "No edge is above random in every seed."
        )
        + (f" Above random in some seeds only: {', '.join(counts)}." if counts else ""),
    ]
    return lines


def _cell(value: float, ci: Sequence[float] | None) -> str:
    if ci is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"
