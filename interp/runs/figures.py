"""Figures every analysis draws the same way.

A layer × head (or layer × position, edge × range ...) grid is the picture this field reads most,
so it is drawn by one function: the same orientation (layer 0 at the bottom), the same aspect,
whole-number ticks, and a colour scale centred where the numbers ask for it.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from interp.runs.reports import integer_axes


def heatmap(
    grid: pd.DataFrame,
    *,
    title: str,
    color: str,
    scale: str = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    midpoint: float | None = None,
    origin: str | None = "lower",
    text: str | bool | None = None,
) -> go.Figure:
    """A heatmap of ``grid`` (rows on y, columns on x, as ``DataFrame.pivot`` lays them out),
    titled ``title`` with colour bar ``color``. ``midpoint`` centres a diverging ``scale`` (an
    effect's 0); ``zmin``/``zmax`` fix the range (accuracies in [0, 1]); ``text`` writes each
    cell's value in that format; ``origin="lower"`` puts layer 0 at the bottom."""
    kwargs = {"zmin": zmin, "zmax": zmax, "color_continuous_midpoint": midpoint}
    fig = px.imshow(
        grid,
        aspect="auto",
        origin=origin,
        color_continuous_scale=scale,
        labels={"color": color},
        title=title,
        text_auto=text if text is not None else False,
        **{k: v for k, v in kwargs.items() if v is not None},
    )
    return integer_axes(fig)


def layer_head_heatmap(
    table: pd.DataFrame, value: str, *, title: str, color: str | None = None, **style
) -> go.Figure:
    """``table``'s ``value`` column as a layer × head grid (a tidy table with ``layer`` and
    ``head`` columns; several rows per cell are averaged)."""
    grid = table.pivot_table(index="layer", columns="head", values=value, dropna=False)
    return heatmap(grid, title=title, color=color or value, **style)
