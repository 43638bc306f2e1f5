"""``iclscope run patch``: a patching or ablation sweep written as a run directory.

A patched metric means nothing without the two runs it sits between, so the sweep's plan also
holds the clean and the corrupted run of every prompt
(:func:`~interp.patching.sweeps.with_baselines`) and every table carries them. Components are
read and ranked by their *effect* on the metric (see :mod:`interp.patching.metrics`):

* **denoising** (patching clean into corrupted, the default): the plan runs on the corrupted
  prompts, ``effect = patched - corrupted``, and components are ranked by how far they restore
  the clean answer, largest first;
* **noising** (``--ablation mean|zero|resample`` and the ``edges`` knockouts): the plan runs on
  the clean prompts, ``effect = patched - clean``, and components are ranked by the damage they
  do, largest first.

Which way is "towards clean" is read from the baselines (down for ``kl``, whose clean run is
0; down for ``logit_diff`` too on a model that gets the clean prompts wrong), and from the
metric's convention only where they coincide (:func:`interp.patching.metrics.towards_clean`), so the
ranking always agrees with the normalised effect. The figures show the normalised effect
(1 = the component carries the whole answer), coloured around 0. Where the clean and corrupted
runs coincide the normalised effect is NaN, never ``inf``; the report and the log say so.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px

from interp.errors import IclscopeError
from interp.models import load_model
from interp.patching.attribution import attribute, rank_agreement
from interp.patching.engine import Engine
from interp.patching.executor import recorded
from interp.patching.metrics import baselines_equal, normalized_effect, ranking_score, towards_clean
from interp.patching.plan import InterventionPlan, Knockout, Patch, PlanRow, Source
from interp.patching.sweeps import BASELINE, head_sweep, resid_sweep, with_baselines
from interp.prompts import Annotation
from interp.runs.reports import export_static, integer_axes
from interp.runs.store import RunWriter
from interp.tasks.suite import build_pair_batches

COMPONENTS = ("heads", "resid", "mlp", "edges")
TOP = 10
FIGURES = (
    ("layer_by_head", "layer", "head"),
    ("layer_by_position", "layer", "position"),
    ("layer_by_edge", "layer", "edge"),
)
MEASURES = ["metric", "clean_baseline", "corrupted_baseline", "effect", "normalized_effect"]
"""The value columns of every effect table, after the component's labels."""


def position_groups(ann: Annotation) -> dict[str, tuple[int, ...]]:
    """Annotated position groups that attention edges run between."""
    x = tuple(p for a, b in ann.x for p in range(a, b))
    return {
        "x_i": x,
        "s_i": tuple(ann.s),
        "y_i": tuple(ann.y),
        "x_q": tuple(range(*ann.x_q)),
        "s_q": (ann.s_q,),
    }


EDGES = [("s_q", "y_i"), ("s_q", "x_q"), ("s_q", "s_i"), ("y_i", "s_i"), ("s_i", "x_i")]


def edge_sweep(n_layers: int, prompts, annotations, base="clean") -> InterventionPlan:
    """Knock out each edge type between position groups, one layer per row. A knockout removes
    something from a run, so it is read against the run it removes it from: the clean one."""
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
    """The component sweep: denoising patches on the corrupted run, or (``ablation`` given,
    and always for ``edges``) ablations on the clean run."""
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
        plan = edge_sweep(cfg.n_layers, prompts, clean.annotations)
    else:
        raise IclscopeError(f"unknown component {component!r}", fix=f"use one of {COMPONENTS}")
    if ablation == "resample":  # each prompt reads another prompt's clean run
        rows = [
            PlanRow(
                r.prompt,
                tuple(
                    replace(e, source="resample", source_prompt=(r.prompt + 1) % len(clean))
                    if isinstance(e, Patch)
                    else e
                    for e in r.edits
                ),
                r.labels,
            )
            for r in plan.rows
        ]
        plan = InterventionPlan(rows, base=plan.base)
    return plan


# -- effects --------------------------------------------------------------------------------
@dataclass
class Effects:
    """A sweep read against its baselines: what the tables, figures, summary and report show.

    ``results`` has one row per component and prompt, ``by_component`` the means over
    prompts, both with :data:`MEASURES`; ``baselines`` is the clean and corrupted metric per
    prompt. ``noising``: the plan ran on the clean prompts (ablations, knockouts)."""

    results: pd.DataFrame
    by_component: pd.DataFrame
    baselines: pd.DataFrame
    metric: str
    noising: bool

    @classmethod
    def measure(cls, table: pd.DataFrame, plan: InterventionPlan, metric: str) -> Effects:
        """Read the engine's table of a plan made by
        :func:`~interp.patching.sweeps.with_baselines`."""
        rows, baselines = split_baselines(table, plan)
        noising = plan.base == "clean"
        results = _with_effects(
            rows.assign(
                clean_baseline=baselines.clean.loc[rows.prompt].to_numpy(),
                corrupted_baseline=baselines.corrupted.loc[rows.prompt].to_numpy(),
            ),
            noising,
        )
        keys = [c for c in results.columns if c not in ("prompt", *MEASURES)]
        # the normalised effect of the means, not the mean of per-prompt ratios: one prompt
        # with a small clean-corrupted gap cannot then dominate it
        mean = _with_effects(results.groupby(keys, as_index=False)[MEASURES[:3]].mean(), noising)
        return cls(results, mean, baselines, metric, noising)

    @property
    def clean(self) -> float:
        """The clean run's metric, mean over prompts."""
        return float(self.baselines.clean.mean())

    @property
    def corrupted(self) -> float:
        """The corrupted run's metric, mean over prompts."""
        return float(self.baselines.corrupted.mean())

    @property
    def direction(self) -> float:
        """+1 where clean sits above corrupted on the metric, -1 where below."""
        return towards_clean(self.clean, self.corrupted, self.metric)

    def ranked(self) -> pd.DataFrame:
        """Components by effect, the one that matters most first: the largest move towards
        clean when denoising (restoration), away from clean when noising (damage); see
        :func:`interp.patching.metrics.ranking_score`."""
        score = ranking_score(self.by_component.effect, self.direction, self.noising)
        return self.by_component.iloc[np.argsort(-score, kind="stable")].reset_index(drop=True)

    def ranking_rule(self) -> str:
        """The ranking, in words."""
        up = (self.direction > 0) != self.noising  # which sign of the effect comes first
        if self.noising:
            rule = "damage: effect = patched - clean, away from clean"
        else:
            rule = "restoration: effect = patched - corrupted, towards clean"
        return f"{rule}, {'largest' if up else 'most negative'} effect first"

    def warnings(self) -> list[str]:
        """Where the normalised effect is NaN because the baselines coincide."""
        out = []
        if baselines_equal(self.clean, self.corrupted):
            out.append(
                "the mean clean and corrupted baselines are equal to within 1e-4: the "
                "normalised effect is NaN and the figures show the raw effect"
            )
        flat = baselines_equal(self.baselines.clean, self.baselines.corrupted)
        if flat.any():
            out.append(
                f"{int(flat.sum())} of {len(flat)} prompts have equal clean and corrupted "
                "baselines: their per-prompt normalised effects are NaN"
            )
        return out


def split_baselines(table: pd.DataFrame, plan: InterventionPlan) -> tuple[pd.DataFrame, ...]:
    """The engine's table of ``plan`` (its component rows, then its baseline rows) as the
    component rows and, per prompt, the ``clean`` and ``corrupted`` baselines."""
    n = sum(BASELINE not in dict(r.labels) for r in plan.rows)
    labels = pd.DataFrame([dict(r.labels) for r in plan.rows[:n]])
    # the baseline rows' missing labels made integer columns float; give them their types back
    rows = table.iloc[:n].drop(columns=BASELINE).astype(labels.dtypes.to_dict())
    baselines = table.iloc[n:].pivot(index="prompt", columns=BASELINE, values="metric")
    return rows.reset_index(drop=True), baselines[["clean", "corrupted"]].rename_axis(None, axis=1)


def _with_effects(df: pd.DataFrame, noising: bool) -> pd.DataFrame:
    """``effect`` against the plan's base run and ``normalized_effect``, from the metric and
    the two baseline columns."""
    base = df.clean_baseline if noising else df.corrupted_baseline
    normalized = normalized_effect(df.metric, df.clean_baseline, df.corrupted_baseline, noising)
    return df.assign(effect=df.metric - base, normalized_effect=normalized)


# -- the run --------------------------------------------------------------------------------
def run_patch(
    out: Path,
    model: str,
    task: str,
    component: str,
    metric: str,
    ablation: str | None = None,
    prompts: int = 8,
    shots: int = 4,
    seed: int = 0,
    max_batch: int | None = None,
    per_position: bool = False,
    log=print,
    executor=None,
) -> Path:
    """``executor``: where the plan's chunks run (:mod:`interp.patching.executor`; local by
    default); the manifest records it, its workers and retries."""
    if component not in COMPONENTS:
        raise IclscopeError(f"unknown component {component!r}", fix=f"use one of {COMPONENTS}")
    params = {
        "component": component,
        "metric": metric,
        "ablation": ablation,
        "prompts": prompts,
        "shots": shots,
        "max_batch": max_batch,
        "per_position": per_position,
    }
    with RunWriter(
        out, kind="patch", model=model, task=task, seed=seed, command=sys.argv, params=params
    ) as run:
        m = load_model(model)
        clean, corrupted = build_pair_batches(m.prompt_builder(), task, prompts, shots, seed)
        sweep = build_plan(component, m.cfg, clean, ablation, per_position)
        plan = with_baselines(sweep, range(len(clean)))
        start = time.perf_counter()
        # a failed run still records its retries and unfinished chunks
        with recorded(executor, run.executor) as executor:
            engine = Engine(m, max_batch=max_batch, executor=executor)
            log(f"plan: {plan!r}")
            log(engine.estimate(plan, clean.tokens.shape[1]))
            table = engine.run(plan, clean, corrupted, metric=metric)
        effects = Effects.measure(table, plan, metric)
        seconds = time.perf_counter() - start
        for warning in effects.warnings():
            log(f"warning: {warning}")
        run.artifact("plan.json", plan.to_json())
        write_tables(run, effects)
        write_figures(run, effects, component, ablation)
        run.summary(summary(effects, len(plan), seconds))
        exact = component in ("heads", "resid") and ablation is None and not per_position
        if exact and metric != "acc":  # acc has no gradient
            write_attribution(run, m, clean, corrupted, component, effects)
        run.report(_report(model, task, component, ablation, effects, len(plan), seconds))
        export_static(run.path, log=log)
    return run.path


def describe(component: str, ablation: str | None) -> str:
    """What the sweep does to each component, in words."""
    if component == "edges":
        return "attention-edge knockouts"
    return f"{ablation} ablation" if ablation else "patching clean into corrupted"


def write_tables(run: RunWriter, effects: Effects) -> None:
    run.table("results", effects.results)
    run.table("baselines", effects.baselines.rename_axis("prompt").reset_index())
    run.table("by_component", effects.by_component)
    run.table("top_components", effects.ranked().head(TOP))


def write_figures(run: RunWriter, effects: Effects, component: str, ablation: str | None):
    """One heatmap per pair of label columns, of the normalised effect (the raw effect where
    the baselines coincide), with 0 (no effect) at the middle of the colour scale."""
    mean = effects.by_component
    value = "effect" if mean.normalized_effect.isna().all() else "normalized_effect"
    what = describe(component, ablation)
    what += "; 1 = carries the answer" if value == "normalized_effect" else ""
    for fig_name, index, columns in FIGURES:
        if {index, columns} <= set(mean.columns):
            grid = mean.pivot_table(index=index, columns=columns, values=value, dropna=False)
            title = f"{value} of {effects.metric} per {index} and {columns} ({what})"
            fig = px.imshow(
                grid,
                aspect="auto",
                color_continuous_scale="RdBu",
                origin="lower",
                color_continuous_midpoint=0.0,
                labels={"color": value},
                title=title,
            )
            run.figure(fig_name, integer_axes(fig))


def write_attribution(run, model, clean, corrupted, component, effects: Effects) -> None:
    """Attribution patching beside the exact sweep, on the same scale: both are the effect
    ``patched - corrupted`` of the same metric, so their rank agreement compares like with
    like."""
    keys = ["layer", "head"] if component == "heads" else ["layer", "position"]
    approx = attribute(model, clean, corrupted, component, effects.metric)
    approx["normalized_attribution"] = normalized_effect(
        effects.corrupted + approx.attribution, effects.clean, effects.corrupted
    )
    run.table("attribution", approx)
    run.summary({"attribution_rank_corr": rank_agreement(effects.by_component, approx, keys)})


def summary(effects: Effects, rows: int, seconds: float) -> dict:
    """summary.json: the baselines (means over prompts), the ranking and its top components."""
    top = effects.ranked().head(TOP)
    components = [{k: _plain(v) for k, v in row.items()} for row in top.to_dict("records")]
    return {
        "clean_baseline": effects.clean,
        "corrupted_baseline": effects.corrupted,
        "rows": rows,
        "seconds": round(seconds, 3),
        "metric": effects.metric,
        "ranked_by": effects.ranking_rule(),
        "top_component": components[0],
        "top_components": components,
        "effect_range": [float(effects.by_component.effect.agg(f)) for f in ("min", "max")],
        "warnings": effects.warnings(),
    }


def _plain(value):
    """A JSON value: numpy scalars as Python ones, NaN as null (JSON has no NaN)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and np.isnan(value) else value


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "NaN" if np.isnan(value) else f"{value:.4f}"
    return str(value)


def _report(model, task, component, ablation, effects: Effects, rows, seconds) -> str:
    """report.md: what ran, the baselines, how components are ranked, the top of the ranking."""
    what = describe(component, ablation)
    formula = "(clean - patched)" if effects.noising else "(patched - corrupted)"
    lines = [
        f"# Patching sweep: {component} on {model}",
        "",
        f"Task `{task}`, {what}, metric `{effects.metric}`: {rows} plan rows (the clean and "
        f"corrupted run of each prompt among them) in {seconds:.2f} s.",
        "",
        f"Baselines, mean over prompts: clean **{effects.clean:.4f}**, corrupted "
        f"**{effects.corrupted:.4f}**. Ranked by {effects.ranking_rule()}; normalised effect = "
        f"{formula} / (clean - corrupted), 1 = the component carries the whole answer.",
        "",
        *(line for w in effects.warnings() for line in (f"**Warning**: {w}.", "")),
        "## Top components",
        "",
        *_markdown_table(effects.ranked().head(TOP)),
    ]
    return "\n".join(lines) + "\n"


def _markdown_table(df: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):  # itertuples keeps each column's type
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return lines
