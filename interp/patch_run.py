"""``iclscope run patch``: a patching or ablation sweep written as a run directory."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import plotly.express as px

from interp.attribution import attribute, rank_agreement
from interp.engine import Engine
from interp.errors import IclscopeError
from interp.models import load_model
from interp.organism.data import build_pair_batches
from interp.plan import InterventionPlan, Knockout, Patch, PlanRow, Source
from interp.prompts import Annotation
from interp.runs import RunWriter
from interp.sweeps import head_sweep, resid_sweep

COMPONENTS = ("heads", "resid", "mlp", "edges")


def position_groups(ann: Annotation) -> dict[str, tuple[int, ...]]:
    """Annotated position groups that attention edges run between."""
    x = tuple(p for a, b in ann.x for p in range(a, b))
    return {"x_i": x, "s_i": tuple(ann.s), "y_i": tuple(ann.y),
            "x_q": tuple(range(*ann.x_q)), "s_q": (ann.s_q,)}  # fmt: skip


EDGES = [("s_q", "y_i"), ("s_q", "x_q"), ("s_q", "s_i"), ("y_i", "s_i"), ("s_i", "x_i")]


def edge_sweep(n_layers: int, prompts, annotations, base="corrupted") -> InterventionPlan:
    """Knock out each edge type between position groups, one layer per row."""
    rows = []
    for prompt in prompts:
        groups = position_groups(annotations[prompt])
        for layer in range(n_layers):
            for q, k in EDGES:
                knock = Knockout(layer, groups[q], groups[k])
                rows.append(PlanRow(prompt, (knock,), (("layer", layer), ("edge", f"{q}->{k}"))))
    return InterventionPlan(rows, base=base)


def build_plan(
    component, cfg, clean, ablation: str | None, per_position: bool = False
) -> InterventionPlan:
    # resample reads another prompt's clean run: sweep with "clean", then point each row away
    source: Source = "clean" if ablation in (None, "resample") else ablation  # type: ignore
    base = "clean" if ablation else "corrupted"
    prompts = range(len(clean))
    n_pos = clean.tokens.shape[1]
    if component == "heads":
        plan = head_sweep(cfg, prompts, n_pos if per_position else None, source, base)
    elif component in ("resid", "mlp"):
        hook = "hook_resid_pre" if component == "resid" else "hook_mlp_out"
        plan = resid_sweep(cfg, prompts, n_pos, hook=hook, source=source, base=base)
    elif component == "edges":
        plan = edge_sweep(cfg.n_layers, prompts, clean.annotations, base=base)
    else:
        raise IclscopeError(f"unknown component {component!r}", fix=f"use one of {COMPONENTS}")
    if ablation == "resample":  # each prompt reads another prompt's clean run
        rows = [
            PlanRow(r.prompt, tuple(
                replace(e, source="resample", source_prompt=(r.prompt + 1) % len(clean))
                if isinstance(e, Patch) else e for e in r.edits), r.labels)
            for r in plan.rows
        ]  # fmt: skip
        plan = InterventionPlan(rows, base=plan.base)
    return plan


def run_patch(out: Path, model: str, task: str, component: str, metric: str,
              ablation: str | None = None, prompts: int = 8, shots: int = 4, seed: int = 0,
              max_batch: int | None = None, per_position: bool = False,
              log=print) -> Path:  # fmt: skip
    if component not in COMPONENTS:
        raise IclscopeError(f"unknown component {component!r}", fix=f"use one of {COMPONENTS}")
    params = {"component": component, "metric": metric, "ablation": ablation,
              "prompts": prompts, "shots": shots, "max_batch": max_batch,
              "per_position": per_position}  # fmt: skip
    with RunWriter(out, kind="patch", model=model, task=task, seed=seed, command=sys.argv,
                   params=params) as run:  # fmt: skip
        m = load_model(model)
        clean, corrupted = build_pair_batches(m.prompt_builder(), task, prompts, shots, seed)
        plan = build_plan(component, m.cfg, clean, ablation, per_position)
        engine = Engine(m, max_batch=max_batch)
        log(f"plan: {plan!r}")
        log(engine.estimate(plan, clean.tokens.shape[1]))
        start = time.perf_counter()
        table = engine.run(plan, clean, corrupted, metric=metric)
        seconds = time.perf_counter() - start
        if component in ("heads", "resid") and ablation is None and not per_position:
            keys = ["layer", "head"] if component == "heads" else ["layer", "position"]
            approx = attribute(m, clean, corrupted, component)
            exact = table.groupby(keys, as_index=False).metric.mean()
            run.table("attribution", approx)
            run.summary({"attribution_rank_corr": rank_agreement(exact, approx, keys)})
        run.artifact("plan.json", plan.to_json())
        run.table("results", table)
        keys = [c for c in table.columns if c not in ("prompt", "metric")]
        mean = table.groupby(keys, as_index=False).metric.mean()
        run.table("by_component", mean)
        top = mean.reindex(mean.metric.abs().sort_values(ascending=False).index).head(10)
        run.table("top_components", top)
        for fig_name, index, columns in (("layer_by_head", "layer", "head"),
                                         ("layer_by_position", "layer", "position"),
                                         ("layer_by_edge", "layer", "edge")):  # fmt: skip
            if {index, columns} <= set(mean.columns):
                grid = mean.pivot_table(index=index, columns=columns, values="metric")
                run.figure(fig_name, px.imshow(
                    grid, aspect="auto", color_continuous_scale="RdBu", origin="lower",
                    color_continuous_midpoint=0.0, labels={"color": metric},
                    title=f"{metric} per {index} and {columns} ({ablation or 'patched'})",
                ))  # fmt: skip
        summary = {
            "rows": len(plan),
            "seconds": round(seconds, 3),
            "top_component": {k: _plain(top[k].iloc[0]) for k in top.columns},
            "metric_range": [float(mean.metric.min()), float(mean.metric.max())],
        }
        run.summary(summary)
        run.report(_report(model, task, component, metric, ablation, plan, top, seconds))
    return run.path


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _report(model, task, component, metric, ablation, plan, top: pd.DataFrame, seconds) -> str:
    what = f"{ablation} ablation" if ablation else "patching clean into corrupted"
    lines = [f"# Patching sweep: {component} on {model}", "",
             f"Task `{task}`, {what}, metric `{metric}`: {len(plan)} plan rows in "
             f"{seconds:.2f} s.", "", "## Top components", "",
             "| " + " | ".join(top.columns) + " |", "|" + "---|" * len(top.columns)]  # fmt: skip
    for _, r in top.iterrows():
        lines.append("| " + " | ".join(
            f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"
