"""``run_task_vectors``: function vectors, task vectors and soft injection (see the docs,
``docs/analyses/task-vectors.md``) written as a run directory of kind ``task-vectors``.

The analysis lives in :mod:`circuits.task_vectors`; this module turns its result into tables,
figures (AIE and alpha heatmaps, layer sweeps), ``alpha.pt``, ``summary.json`` and a report,
and compares the top AIE heads with the ICL circuit's step-3 retrieval heads on the same model.
"""

from __future__ import annotations

import io
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch

from circuits.task_vectors import METHODS, TaskVectors, TaskVectorsResult
from interp.errors import IclscopeError
from interp.io import atomic_write_bytes
from interp.models import HookedModel, load_model
from interp.patching.executor import recorded
from interp.runs.store import RunWriter
from interp.tasks.suite import FUNCTION_FAMILIES, default_family, family_support, get_family

HEADLINE = ("zero_shot", "icl", "fv", "tv", "soft_injection")


def resolve_tasks(task: str, tokenizer=None) -> list[str]:
    """A comma-separated list of function families, or ``all``: every natural function family
    (the organism's when the tokenizer cannot build the natural ones)."""
    if task != "all":
        names = [t.strip() for t in task.split(",") if t.strip()]
        for name in names:
            fam = get_family(name)
            if fam.kind != "function":
                raise IclscopeError(
                    f"task vectors need function tasks (Q: x / A: y), not {name!r} ({fam.kind})",
                    fix="use e.g. --task nl_antonym, or --task all",
                )
        return names
    natural = [n for n in FUNCTION_FAMILIES if n.startswith("nl_")]
    if tokenizer is not None and family_support(get_family(natural[0]), tokenizer) is not None:
        return [n for n in FUNCTION_FAMILIES if not n.startswith("nl_")]
    return natural


def circuit_heads(model: HookedModel, prompts: int = 64, k: int = 10, seed: int = 0) -> dict:
    """The ICL circuit's step-3 retrieval heads on this model: the top ``k`` by label assignment
    accuracy (ties: correctness), from ``prompts`` classification prompts."""
    from circuits.icl_circuit import CircuitData, CircuitStates, RetrieveAndCopy

    family = default_family(model.tokenizer, "nl_sentiment_natural", "sentiment_arbitrary")
    fam = get_family(family)
    rng = random.Random(f"{family}:4:{seed}")
    episodes = [fam.sample(rng, 4) for _ in range(prompts)]
    data = CircuitData.build(model.prompt_builder(), fam, episodes)
    states = CircuitStates.collect(model, data.batch, chunk=16)
    heads, _, _ = RetrieveAndCopy().measure(model, states, data)
    top = heads.sort_values(["label_acc", "correctness"], ascending=False).head(k)
    return {
        "family": family,
        "prompts": prompts,
        "heads": [[int(r.layer), int(r.head)] for r in top.itertuples()],
        "label_acc": [round(float(a), 4) for a in top.label_acc],
    }


def overlap(aie_heads: list[tuple[int, int]], circuit: dict, n_heads_total: int) -> dict:
    """How many top AIE heads are also circuit step-3 heads, against chance (k1 k2 / N)."""
    a = {tuple(h) for h in aie_heads}
    c = {tuple(h) for h in circuit["heads"]}
    shared = sorted(a & c)
    return {
        **circuit,
        "aie_heads": [list(h) for h in aie_heads],
        "shared": [list(h) for h in shared],
        "overlap": len(shared),
        "chance": round(len(a) * len(c) / n_heads_total, 3),
    }


def run_task_vectors(
    out: str | Path,
    model: str = "smollm2",
    task: str = "all",
    analysis: TaskVectors | None = None,
    circuit_prompts: int = 64,
    log: Callable[[str], object] = print,
    executor=None,
) -> Path:
    """Run :class:`~circuits.task_vectors.TaskVectors` and write a run directory under ``out``.

    ``executor`` runs its engine plans (the AIE, the FV and TV layer sweeps, the soft-injection
    evaluation; :mod:`interp.patching.executor`, local by default) and the manifest lists every
    one. Soft injection's training (gradient descent) and the caches stay in this process."""
    analysis = analysis or TaskVectors()
    tasks = resolve_tasks(task) if task != "all" else None  # bad names fail before the run
    params = {
        k: getattr(analysis, k)
        for k in (
            "shots",
            "test_items",
            "te_prompts",
            "trials",
            "top_k",
            "steps",
            "lr",
            "batch",
            "shared",
            "max_batch",
            "stability_lrs",
            "stability_seeds",
            "init_std",
        )
    }
    params["stability_lrs"] = list(params["stability_lrs"])
    params["stability_seeds"] = list(params["stability_seeds"])
    params["circuit_prompts"] = circuit_prompts
    t0 = time.monotonic()
    with RunWriter(
        out,
        kind="task-vectors",
        model=model,
        task=task,
        seed=analysis.seed,
        command=sys.argv,
        params=params,
    ) as run:
        m = load_model(model)
        tasks = tasks or resolve_tasks("all", m.tokenizer)
        run.params({"tasks": tasks})
        with recorded(executor, run.executor):
            result = analysis.run(m, tasks, log=log)
        circuit = None
        if circuit_prompts:
            log(f"ICL circuit step-3 heads on {circuit_prompts} prompts")
            circuit = overlap(
                result.top_heads,
                circuit_heads(m, circuit_prompts, analysis.top_k, analysis.seed),
                m.cfg.n_layers * m.cfg.n_heads,
            )
        write_tables(run, result)
        seconds = round(time.monotonic() - t0, 1)
        summary = task_vectors_summary(result, circuit, seconds)
        run.summary(summary)
        run.report(task_vectors_report(result, summary, model, analysis))
    log(str(run.path))
    return run.path


def write_tables(run: RunWriter, result: TaskVectorsResult) -> None:
    run.table("accuracy", result.accuracy)
    run.table("aie", result.aie)
    run.table("sweeps", result.sweeps)
    run.table("losses", result.losses)
    alpha = pd.DataFrame(
        [
            {"task": t, "layer": layer, "head": head, "alpha": float(a[layer, head])}
            for t, a in result.alpha.items()
            for layer in range(a.shape[0])
            for head in range(a.shape[1])
        ]
    )
    run.table("alpha", alpha)
    if len(result.stability):
        run.table("alpha_stability", result.stability)
    for name, tensors in (("alpha", result.alpha), ("alpha_fits", result.alpha_fits)):
        buf = io.BytesIO()
        torch.save(_cloned(tensors), buf)
        atomic_write_bytes(run.path / f"{name}.pt", buf.getvalue())
    for name, fig in figures(result).items():
        run.figure(name, fig)


def _cloned(tensors: dict) -> dict:
    """Nested dicts of tensors with each tensor cloned (a view would save its whole storage)."""
    return {k: _cloned(v) if isinstance(v, dict) else v.clone() for k, v in tensors.items()}


def figures(result: TaskVectorsResult) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    mean = result.aie[result.aie.task == "mean"].pivot(index="layer", columns="head", values="aie")
    figs["aie"] = px.imshow(
        mean,
        origin="lower",
        aspect="auto",
        color_continuous_scale="RdBu_r",
        color_continuous_midpoint=0.0,
        labels={"color": "AIE"},
        title="Average indirect effect per head (mean over tasks): P(answer) restored on "
        "shuffled-label prompts",
    )
    key = "shared" if "shared" in result.alpha else next(iter(result.alpha))
    figs["alpha"] = px.imshow(
        result.alpha[key].numpy(),
        origin="lower",
        aspect="auto",
        zmin=0,
        zmax=1,
        color_continuous_scale="Viridis",
        labels={"x": "head", "y": "layer", "color": "alpha"},
        title=f"Soft injection: learned alpha per head ({key})",
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
    """The issue's targets over the tasks where k-shot ICL reaches ``icl_floor``: soft
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
