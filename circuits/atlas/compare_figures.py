"""The atlas comparison's figures, drawn from its tables: where each role sits along relative
depth in both models, and each score's profile by depth, one line per model."""

from __future__ import annotations

import math
from typing import Any

import plotly.express as px
import plotly.graph_objects as go

from circuits.atlas.schema import ROLES

AtlasComparison = Any
"""A :class:`~circuits.atlas.compare.AtlasComparison` (not imported: it imports this module)."""

PROFILE_COLUMNS = 3
"""Small multiples per row: nine scores make three rows of three."""


def comparison_figures(result: AtlasComparison) -> dict[str, go.Figure]:
    """``bands`` and ``profiles`` (see the module docstring)."""
    return {"bands": bands_figure(result), "profiles": profiles_figure(result)}


def bands_figure(result: AtlasComparison) -> go.Figure:
    """One horizontal box per (role, model): whiskers at the role's shallowest and deepest
    head, the box over the middle half, the line at the median; boxes of one role side by
    side, so a shift in relative depth between the models shows at a glance."""
    fig = go.Figure()
    for model in (result.model_a, result.model_b):
        rows = result.bands[(result.bands.model == model) & (result.bands.heads > 0)]
        # a box drawn from quartiles already computed: the heads themselves are not kept here
        fig.add_trace(
            go.Box(
                name=model,
                y=[ROLES[r].label if r in ROLES else r for r in rows.role],
                lowerfence=rows.depth_min,
                q1=rows.depth_q25,
                median=rows.depth_median,
                q3=rows.depth_q75,
                upperfence=rows.depth_max,
                orientation="h",
                customdata=rows.heads,
                hovertemplate="%{y}: %{customdata} heads<extra>" + model + "</extra>",
            )
        )
    fig.update_layout(
        title="Where each role's heads sit, by relative depth (box: middle half, line: median)",
        boxmode="group",
        xaxis={"title": "relative depth (0 = first layer, 1 = last)", "range": [-0.02, 1.02]},
        yaxis={"title": "", "autorange": "reversed"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig


def profiles_figure(result: AtlasComparison) -> go.Figure:
    """Small multiples: one panel per score, its mean per relative-depth bin, one line per
    model; each panel keeps its own y scale, since the scores share none."""
    profiles = result.profiles.dropna(subset=["mean"])  # lines run across bins no layer fills
    if profiles.empty:
        return go.Figure(layout={"title": "No score to compare by depth"})
    rho = {s: v["rho"] for s, v in result.scores.items()}
    titled = profiles.assign(
        panel=[
            f"{s} (rho {rho[s]:.2f})" if rho.get(s) is not None and not math.isnan(rho[s]) else s
            for s in profiles.score
        ]
    )
    fig = px.line(
        titled,
        x="depth",
        y="mean",
        color="model",
        facet_col="panel",
        facet_col_wrap=PROFILE_COLUMNS,
        markers=True,
        hover_data={"heads": True, "panel": False},
        labels={"depth": "relative depth", "mean": "mean score"},
        title="Each score's mean by relative depth, one line per model",
    )
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.update_xaxes(range=[0, 1])
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    return fig
