"""The task-vector run directory: its tables, figures, ``alpha.pt``, summary and report.

:class:`TaskVectorsRun` is what :class:`~circuits.task_vectors.analysis.TaskVectorsAnalysis`
returns. Every sentence of the report is written from the summary's numbers, and the gains are
read against the published ones: soft injection at least as good as ICL, function vectors and
task vectors well above 0-shot, counted only where k-shot ICL works at all.
"""

from __future__ import annotations

import io

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch

from circuits.task_vectors import METHODS, TaskVectors, TaskVectorsResult
from circuits.task_vectors.intervals import (
    accuracy_ci,
    headline_intervals,
    method_means,
    seed_spread,
)
from circuits.task_vectors.sections import (  # noqa: F401 (targets: re-exported, its old home)
    heads_line,
    seeds_section,
    stability_section,
    targets,
    targets_lines,
)
from interp.analysis import Result
from interp.io import atomic_write_bytes
from interp.runs.figures import heatmap, layer_head_heatmap
from interp.stats import with_ci

HEADLINE = ("zero_shot", "icl", "fv", "tv", "soft_injection")
"""The methods a reader compares first: the two baselines and the three ways to replace them."""


def task_vectors_tables(result: TaskVectorsResult) -> dict[str, pd.DataFrame]:
    """The result's tidy tables by name; ``alpha`` is one row per task (or shared), layer and
    head, and ``alpha_stability`` is there only when more than the main fit ran."""
    alpha = pd.DataFrame(
        [
            {"task": t, "layer": layer, "head": head, "alpha": float(a[layer, head])}
            for t, a in result.alpha.items()
            for layer in range(a.shape[0])
            for head in range(a.shape[1])
        ]
    )
    tables = {
        "accuracy": result.accuracy,
        "aie": result.aie,
        "sweeps": result.sweeps,
        "losses": result.losses,
        "alpha": alpha,
    }
    if len(result.stability):
        tables["alpha_stability"] = result.stability
    if len(result.aie_by_prompt):
        tables["aie_by_prompt"] = result.aie_by_prompt  # what the AIE intervals resample
    if len(result.hits):
        tables["accuracy_by_prompt"] = result.hits
    return tables


def write_tensors(run_dir, result: TaskVectorsResult) -> None:
    """``alpha.pt`` (task -> alpha) and ``alpha_fits.pt`` (task -> fit -> alpha)."""
    for name, tensors in (("alpha", result.alpha), ("alpha_fits", result.alpha_fits)):
        buf = io.BytesIO()
        torch.save(_cloned(tensors), buf)
        atomic_write_bytes(run_dir / f"{name}.pt", buf.getvalue())


def _cloned(tensors: dict) -> dict:
    """Nested dicts of tensors with each tensor cloned (a view would save its whole storage)."""
    return {k: _cloned(v) if isinstance(v, dict) else v.clone() for k, v in tensors.items()}


def figures(result: TaskVectorsResult) -> dict[str, go.Figure]:
    """The AIE and alpha heatmaps, the layer sweeps and the accuracy bars."""
    figs: dict[str, go.Figure] = {}
    figs["aie"] = layer_head_heatmap(
        result.aie[result.aie.task == "mean"],
        "aie",
        title="Average indirect effect per head (mean over tasks): P(answer) restored on "
        "shuffled-label prompts",
        color="AIE",
        scale="RdBu_r",
        midpoint=0.0,
    )
    key = "shared" if "shared" in result.alpha else next(iter(result.alpha))
    grid = pd.DataFrame(result.alpha[key].numpy())
    grid.index.name, grid.columns.name = "layer", "head"
    figs["alpha"] = heatmap(
        grid,
        title=f"Soft injection: learned alpha per head ({key})",
        color="alpha",
        zmin=0,
        zmax=1,
    )
    sw = result.sweeps.assign(view=result.sweeps.method + " " + result.sweeps.split)
    figs["layer_sweeps"] = px.line(
        sw,
        x="layer",
        y="acc",
        color="task",
        line_dash="view",
        markers=True,
        title="0-shot accuracy with the function vector added / task vector written at each layer",
    )
    acc = pd.concat([result.accuracy, _mean_rows(result)], ignore_index=True)
    figs["accuracy"] = px.bar(
        acc,
        x="task",
        y="acc",
        color="method",
        barmode="group",
        error_y=acc.hi - acc.acc,
        error_y_minus=acc.acc - acc.lo,
        title="Held-out accuracy (first answer token), 95% Wilson intervals",
    )
    intervals = headline_intervals(result, [])
    if intervals.get("top_heads_aie_ci"):
        figs["aie_top_heads"] = _heads_figure(result.top_heads, intervals)
    return figs


def _mean_rows(result: TaskVectorsResult) -> pd.DataFrame:
    """Each method's mean over tasks as a ``task = 'mean'`` row with its interval (none when
    the per-prompt hits were not kept)."""
    if not len(result.hits):
        return pd.DataFrame()
    means = method_means(result.per_task(), list(METHODS))
    rows = []
    for m, value in means.items():
        lo, hi = accuracy_ci(result.hits, m)
        rows.append({"task": "mean", "method": m, "acc": value, "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def _heads_figure(heads: list[tuple[int, int]], intervals: dict) -> go.Figure:
    """The top heads' mean AIE with their bootstrap intervals, heads in numeric order (as on
    every head axis of a report)."""
    order = sorted(range(len(heads)), key=lambda k: tuple(heads[k]))
    heads = [heads[k] for k in order]
    values = [intervals["top_heads_aie"][k] for k in order]
    lows, highs = zip(*(intervals["top_heads_aie_ci"][k] for k in order))
    fig = go.Figure(
        go.Bar(
            x=[f"L{l}H{h}" for l, h in heads],
            y=values,
            error_y={
                "type": "data",
                "array": [h - v for h, v in zip(highs, values)],
                "arrayminus": [v - lo for lo, v in zip(lows, values)],
            },
        )
    )
    fig.update_layout(
        title="Top heads by AIE (mean over tasks), 95% bootstrap intervals over prompts",
        xaxis_title="head",
        yaxis_title="AIE",
    )
    return fig


def task_vectors_summary(
    result: TaskVectorsResult,
    circuit: dict | None,
    seconds: float,
    by_seed: dict[int, TaskVectorsResult] | None = None,
) -> dict:
    """The headline numbers: mean accuracy per method, per task, intervals, chosen layers,
    the gains against the published ones, the top heads and their overlap with the circuit's,
    alpha and its stability. Each measured headline number ``<key>`` has its 95% interval
    ``<key>_ci`` (see :mod:`~circuits.task_vectors.intervals`). ``by_seed``: every prompt
    seed's result, the first being ``result``; with more than one, ``seeds`` lists them and
    ``<key>_by_seed`` gives each number's per-seed values, mean, sd, min and max."""
    per_task = result.per_task()
    means = method_means(per_task, list(METHODS))
    acc = result.accuracy
    spread = seed_spread(by_seed, list(means)) if by_seed and len(by_seed) > 1 else {}
    return {
        **means,
        **headline_intervals(result, list(means)),
        "seeds": list(by_seed) if by_seed else None,
        **spread,
        "per_task": per_task,
        "intervals": {
            f"{r.task}/{r.method}": [round(r.lo, 4), round(r.hi, 4)] for r in acc.itertuples()
        },
        "layers": {
            f"{r.task}/{r.method}": int(r.layer)
            for r in acc.itertuples()
            if r.layer is not None and r.layer == r.layer
        },
        "test_items": int(acc.n.min()),
        "targets": targets(per_task, hits=result.hits),
        "top_heads": [list(h) for h in result.top_heads],
        "overlap_with_circuit_heads": circuit,
        "alpha_above_0_9": {t: int((a > 0.9).sum()) for t, a in result.alpha.items()},
        "alpha_fits": {t: list(f) for t, f in result.alpha_fits.items()},
        "alpha_stable_heads": {
            t: None if h is None else [list(x) for x in h] for t, h in result.stable_heads().items()
        },
        "alpha_fit_agreement": {
            t: None if j is None else round(j, 4) for t, j in result.fit_agreement().items()
        },
        "seconds": seconds,
        "seconds_by_part": {k: round(v, 1) for k, v in result.seconds.items()},
    }


def task_vectors_report(
    result: TaskVectorsResult, summary: dict, model: str, analysis: TaskVectors
) -> str:
    """The markdown report: accuracy per task and method, the gains, the heads and their
    overlap with the circuit's, the learned alpha and (with extra fits) its stability."""
    acc = result.accuracy
    n = summary["test_items"]
    methods = [m for m in METHODS if m in set(acc.method)]
    lines = [
        f"# Function vectors, task vectors and soft injection: {model}",
        "",
        f"{len(summary['per_task'])} function tasks, {n}+ held-out items each, scored by the "
        "argmax over the whole vocabulary at the last prompt token against the answer's first "
        f"token; every method except ICL runs on the 0-shot prompt. ICL uses {analysis.shots} "
        f"demonstrations. Brackets: 95% Wilson intervals (the mean row: every task's items "
        "pooled, or, with unequal counts per task, a bootstrap resampling each task's items). "
        f"{summary['seconds']:.0f} s in all.",
        "",
        "## Accuracy per task",
        "",
        "| task | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for task, group in acc.groupby("task", sort=False):
        cells = []
        for m in methods:
            r = group[group.method == m]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            at = f" (L{int(r.layer)})" if r.layer is not None and r.layer == r.layer else ""
            cells.append(f"{r.acc:.2f} [{r.lo:.2f}, {r.hi:.2f}]{at}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    mean = " | ".join(
        with_ci(summary[m], summary.get(f"{m}_ci")) if m in summary else "-" for m in methods
    )
    lines += [f"| **mean** | {mean} |", ""]
    lines += targets_lines(summary["targets"])
    lines += [
        "FV: the top-10 heads' mean outputs, summed through the output projection, added to "
        "the residual stream after the layer in brackets (chosen on 0-shot dev prompts of "
        "non-test items). TV: the mean k-shot last-token residual written over the 0-shot one "
        "at that layer (chosen the same way). Soft injection: alpha learned per task "
        f"({analysis.steps} Adam steps, lr {analysis.lr}, batch {analysis.batch}, model frozen); "
        "'shared' learns one alpha for all tasks.",
        "",
        "## Heads",
        "",
        heads_line(summary, analysis.trials),
        "",
    ]
    circuit = summary["overlap_with_circuit_heads"]
    if circuit:
        shared = ", ".join(f"L{l}H{h}" for l, h in circuit["shared"]) or "none"
        lines += [
            f"ICL circuit step-3 retrieval heads (top {len(circuit['heads'])} by label "
            f"assignment accuracy on {circuit['prompts']} `{circuit['family']}` prompts): "
            + ", ".join(f"L{l}H{h}" for l, h in circuit["heads"])
            + f". Shared with the top AIE "
            f"heads: {circuit['overlap']} ({shared}); chance {circuit['chance']}.",
            "",
        ]
    lines += ["## Learned alpha", ""]
    for t, a in result.alpha.items():
        q = torch.quantile(a.flatten(), torch.tensor([0.1, 0.5, 0.9])).tolist()
        lines.append(
            f"- {t}: {int((a > 0.9).sum())} of {a.numel()} heads above 0.9, "
            f"{int((a < 0.1).sum())} below 0.1; deciles 10/50/90% = "
            f"{q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}"
        )
    if len(result.alpha) > 1:
        stack = torch.stack([a for t, a in result.alpha.items() if t != "shared"])
        high = (stack > 0.9).all(0).nonzero().tolist()
        lines += [
            "",
            f"Heads above 0.9 in every per-task alpha ({len(high)}): "
            + (", ".join(f"L{l}H{h}" for l, h in high[:30]) or "none")
            + (" ..." if len(high) > 30 else "")
            + ".",
        ]
    lines += stability_section(result, summary)
    lines += seeds_section(summary, methods)
    lines += [
        "",
        "Times (s): " + ", ".join(f"{k} {v}" for k, v in summary["seconds_by_part"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


class TaskVectorsRun(Result):
    """A task-vector result as a run directory reads it (see :class:`~interp.analysis.Result`):
    the result, the circuit overlap (None when skipped), the run's seconds, the model's name,
    the :class:`TaskVectors` that ran (the report quotes its knobs) and the families it ran on."""

    def __init__(
        self,
        result: TaskVectorsResult,
        circuit: dict | None,
        seconds: float,
        model: str,
        analysis: TaskVectors,
        tasks: list[str],
        by_seed: dict[int, TaskVectorsResult] | None = None,
    ) -> None:
        self.result, self.circuit, self.seconds = result, circuit, seconds
        self.model, self.analysis, self.tasks = model, analysis, tasks
        self.by_seed = by_seed  # prompt seed -> result, ``result`` first

    def params(self) -> dict:
        """The families the run covered: ``all`` is resolved only once the tokenizer is known,
        so a config that left them open still has its manifest list them."""
        return {"tasks": list(self.tasks)}

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = task_vectors_tables(self.result)
        if self.by_seed and len(self.by_seed) > 1:
            tables["accuracy_by_seed"] = pd.concat(
                [r.accuracy.assign(seed=s) for s, r in self.by_seed.items()], ignore_index=True
            )
        return tables

    def figures(self) -> dict[str, go.Figure]:
        return figures(self.result)

    def figure_sections(self) -> dict[str, str]:
        return {
            "accuracy": "Accuracy per task",
            "layer_sweeps": "Accuracy per task",
            "aie": "Heads",
            "aie_top_heads": "Heads",
            "alpha": "Learned alpha",
        }

    def summary(self) -> dict:
        return task_vectors_summary(self.result, self.circuit, self.seconds, self.by_seed)

    def report(self, summary: dict) -> str:
        return task_vectors_report(self.result, summary, self.model, self.analysis)

    def write_files(self, run_dir) -> None:
        write_tensors(run_dir, self.result)
