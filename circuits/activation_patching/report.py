"""The sweep's run directory: tables, heatmaps, attribution beside the exact sweep, the summary
and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuits.activation_patching.effects import Effects
from interp.analysis import Result
from interp.engine.attribution import rank_agreement
from interp.engine.metrics import normalized_effect
from interp.runs.figures import heatmap

TOP = 10
FIGURES = (
    ("layer_by_head", "layer", "head"),
    ("layer_by_position", "layer", "position"),
    ("layer_by_edge", "layer", "edge"),
)


def describe(component: str, ablation: str | None) -> str:
    """What the sweep does to each component, in words."""
    if component == "edges":
        return "attention-edge knockouts"
    return f"{ablation} ablation" if ablation else "patching clean into corrupted"


def effect_tables(effects: Effects) -> dict[str, pd.DataFrame]:
    """The per-prompt results, the baselines, the means per component and the top of the
    ranking."""
    return {
        "results": effects.results,
        "baselines": effects.baselines.rename_axis("prompt").reset_index(),
        "by_component": effects.by_component,
        "top_components": effects.ranked().head(TOP),
    }


def effect_figures(effects: Effects, component: str, ablation: str | None) -> dict:
    """One heatmap per pair of label columns, of the normalised effect (the raw effect where
    the baselines coincide), with 0 (no effect) at the middle of the colour scale."""
    mean = effects.by_component
    value = "effect" if mean.normalized_effect.isna().all() else "normalized_effect"
    what = describe(component, ablation)
    what += "; 1 = carries the answer" if value == "normalized_effect" else ""
    figs = {}
    for fig_name, index, columns in FIGURES:
        if {index, columns} <= set(mean.columns):
            grid = mean.pivot_table(index=index, columns=columns, values=value, dropna=False)
            figs[fig_name] = heatmap(
                grid,
                title=f"{value} of {effects.metric} per {index} and {columns} ({what})",
                color=value,
                scale="RdBu",
                midpoint=0.0,
            )
    return figs


def attribution_table(approx: pd.DataFrame, effects: Effects) -> pd.DataFrame:
    """Attribution patching beside the exact sweep, on the same scale: both are the effect
    ``patched - corrupted`` of the same metric, so their rank agreement compares like with
    like."""
    return approx.assign(
        normalized_attribution=normalized_effect(
            effects.corrupted + approx.attribution, effects.clean, effects.corrupted
        )
    )


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


def patch_report(model, task, component, ablation, effects: Effects, rows, seconds) -> str:
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
        "## Effect per component",
        "",
        f"The mean {'normalised ' if effects.by_component.normalized_effect.notna().any() else ''}"
        f"effect of each component over the prompts, 0 (no effect) at the middle of the "
        "colour scale.",
        "",
        "## Top components",
        "",
        *_ranked_table(effects.ranked().head(TOP)),
    ]
    return "\n".join(lines) + "\n"


def _ranked_table(df: pd.DataFrame) -> list[str]:
    """The top of the ranking: the columns that hold one value in every row (the baselines,
    which do not depend on the component) as a line above the table, the rest as the table."""
    constant = [c for c in df.columns if len(df) > 1 and df[c].nunique(dropna=False) == 1]
    constant = [c for c in constant if c not in ("layer", "head", "position", "edge")]
    if not constant:
        return _markdown_table(df)
    same = ", ".join(f"{c} {_cell(df[c].iloc[0])}" for c in constant)
    return [f"Same in every row: {same}.", "", *_markdown_table(df.drop(columns=constant))]


def _markdown_table(df: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):  # itertuples keeps each column's type
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return lines


class PatchRun(Result):
    """A sweep's result as a run directory reads it (see :class:`~interp.analysis.Result`).
    ``attribution``: the gradient approximation of the same sweep, where one was computed."""

    def __init__(self, effects, plan, seconds, model, task, component, ablation, attribution):
        self.effects, self.plan, self.seconds = effects, plan, seconds
        self.model, self.task, self.component, self.ablation = model, task, component, ablation
        self.attribution = attribution

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = effect_tables(self.effects)
        if self.attribution is not None:
            tables["attribution"] = self.attribution
        return tables

    def figures(self) -> dict:
        return effect_figures(self.effects, self.component, self.ablation)

    def figure_sections(self) -> dict[str, str]:
        return {name: "Effect per component" for name, _, _ in FIGURES}

    def artifacts(self) -> dict[str, str]:
        return {"plan.json": self.plan.to_json()}

    def summary(self) -> dict:
        values = summary(self.effects, len(self.plan), self.seconds)
        if self.attribution is not None:
            keys = ["layer", "head"] if self.component == "heads" else ["layer", "position"]
            by_component = self.effects.by_component
            values["attribution_rank_corr"] = rank_agreement(by_component, self.attribution, keys)
        return values

    def report(self, summary: dict) -> str:
        return patch_report(
            self.model,
            self.task,
            self.component,
            self.ablation,
            self.effects,
            len(self.plan),
            self.seconds,
        )
