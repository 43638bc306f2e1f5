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
from interp.analysis import Result
from interp.io import atomic_write_bytes
from interp.runs.figures import heatmap, layer_head_heatmap

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
    acc = result.accuracy
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
    return figs


def task_vectors_summary(result: TaskVectorsResult, circuit: dict | None, seconds: float) -> dict:
    """The headline numbers: mean accuracy per method, per task, intervals, chosen layers,
    the gains against the published ones, the top heads and their overlap with the circuit's,
    alpha and its stability."""
    per_task = result.per_task()
    means = {
        m: float(sum(t[m] for t in per_task.values()) / len(per_task))
        for m in METHODS
        if all(m in t for t in per_task.values())
    }
    acc = result.accuracy
    return {
        **means,
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
        "targets": targets(per_task),
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


def targets(per_task: dict[str, dict[str, float]], icl_floor: float = 0.6) -> dict:
    """The published gains, over the tasks where k-shot ICL reaches ``icl_floor``: soft
    injection >= ICL + 0.05 on average and never more than 0.05 below it; FV >= 0-shot + 0.30;
    TV >= 0-shot + 0.40 (all on average)."""
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
    return out


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
        f"demonstrations. Brackets: 95% Wilson intervals. {summary['seconds']:.0f} s in all.",
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
    mean = " | ".join(f"{summary[m]:.3f}" if m in summary else "-" for m in methods)
    lines += [f"| **mean** | {mean} |", ""]
    t = summary["targets"]
    if t.get("tasks"):
        lines += [
            f"Over the {len(t['tasks'])} tasks with k-shot ICL >= {t['icl_floor']}: soft "
            f"injection - ICL = {t['soft_injection_minus_icl']:+.3f} on average (target "
            f">= +0.05), {t['soft_injection_worst_minus_icl']:+.3f} on the worst task (target "
            f">= -0.05); FV - 0-shot = {t['fv_minus_zero_shot']:+.3f} (target >= +0.30); TV - "
            f"0-shot = {t['tv_minus_zero_shot']:+.3f} (target >= +0.40). Met: "
            + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in t["met"].items())
            + ".",
            "",
        ]
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
        f"Top heads by AIE (mean over tasks, {analysis.trials} shuffled-label prompts per "
        "task): " + ", ".join(f"L{l}H{h}" for l, h in result.top_heads) + ".",
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
    lines += [
        "",
        "Times (s): " + ", ".join(f"{k} {v}" for k, v in summary["seconds_by_part"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


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
    ) -> None:
        self.result, self.circuit, self.seconds = result, circuit, seconds
        self.model, self.analysis, self.tasks = model, analysis, tasks

    def params(self) -> dict:
        """The families the run covered: ``all`` is resolved only once the tokenizer is known,
        so a config that left them open still has its manifest list them."""
        return {"tasks": list(self.tasks)}

    def tables(self) -> dict[str, pd.DataFrame]:
        return task_vectors_tables(self.result)

    def figures(self) -> dict[str, go.Figure]:
        return figures(self.result)

    def figure_sections(self) -> dict[str, str]:
        return {
            "accuracy": "Accuracy per task",
            "layer_sweeps": "Accuracy per task",
            "aie": "Heads",
            "alpha": "Learned alpha",
        }

    def summary(self) -> dict:
        return task_vectors_summary(self.result, self.circuit, self.seconds)

    def report(self, summary: dict) -> str:
        return task_vectors_report(self.result, summary, self.model, self.analysis)

    def write_files(self, run_dir) -> None:
        write_tensors(run_dir, self.result)
