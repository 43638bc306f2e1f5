"""Figures every analysis draws the same way.

A layer × head (or layer × position, edge × range ...) grid is the picture this field reads most,
so it is drawn by one function: the same orientation (layer 0 at the bottom), the same aspect,
whole-number ticks, and a colour scale centred where the numbers ask for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from interp.runs.reports import integer_axes

_HEAD = re.compile(r"L(\d+)H(\d+)")
_RANGE = re.compile(r"(-?\d*\.?\d+)\s*[-\u2013]\s*(-?\d*\.?\d+)")
_NUMBER = re.compile(r"-?\d*\.?\d+")


def head_label(layer: int, head: int) -> str:
    """A head's name as every figure and report writes it: ``L3H7``."""
    return f"L{int(layer)}H{int(head)}"


def _numeric_key(label) -> tuple | None:
    """How a label sorts by its numbers: a head by (layer, head), a range ``a-b`` by its width
    and then its start (the quarters 0-0.25 ... 0.75-1 before the whole 0-1), a number by its
    value; None for a label without numbers."""
    text = str(label)
    if m := _HEAD.fullmatch(text):
        return (0, int(m[1]), int(m[2]))
    if m := _RANGE.fullmatch(text):
        lo, hi = float(m[1]), float(m[2])
        return (1, hi - lo, lo, hi)
    if _NUMBER.fullmatch(text):
        return (2, float(text))
    return None


def numeric_order(labels: Iterable) -> list:
    """``labels`` in the order their numbers give (``L2H0`` before ``L10H0``, ``0.25-0.5``
    before ``0-1``), the labels without numbers after them in the order they came; labels that
    are not text (layer and head numbers) stay as they are."""
    labels = list(labels)
    if not any(isinstance(x, str) for x in labels):
        return labels
    keyed = [x for x in labels if _numeric_key(x) is not None]
    if not keyed:
        return labels
    rest = [x for x in labels if _numeric_key(x) is None]
    return sorted(keyed, key=_numeric_key) + rest


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
    cell's value in that format; ``origin="lower"`` puts layer 0 at the bottom. Rows and
    columns named by text are put in :func:`numeric_order` (``L2H0`` before ``L10H0``)."""
    grid = grid.reindex(index=numeric_order(grid.index), columns=numeric_order(grid.columns))
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
