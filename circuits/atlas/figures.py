"""The atlas's two figures: where each role's heads sit, and which roles share them.

:func:`role_grid` is the model's layer × head grid with every role drawn in it. A head can be in
several roles at once (that is the atlas's question), so a colour scale of one value per cell
cannot show it: each role gets its own marker at its own fixed place inside the cell, and a head
in three roles shows three markers.

:func:`overlap_upset` counts the same thing without the grid: an UpSet plot, whose bars are the
heads in each exact combination of roles. Pairwise overlaps count a head in three roles three
times; exact combinations count it once, where it belongs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from circuits.atlas.overlap import format_p, head_name, role_label
from circuits.atlas.schema import SCORES

__all__ = ["role_grid", "overlap_upset", "role_offsets"]

_COLOURS = qualitative.D3
_SYMBOLS = [
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "cross",
    "x",
    "star",
    "triangle-down",
    "pentagon",
    "hexagon",
]
_NO_ROLE = "rgba(170, 170, 170, 0.25)"  # faint: a head outside every role is context only
_IN_ROLE = "rgba(255, 255, 255, 1)"
_STRUCTURE = {"layer", "head", "depth"}


def _empty_figure(note: str, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return fig


def _roles_in_order(roles_table: pd.DataFrame) -> list[str]:
    return [str(r) for r in pd.unique(roles_table["role"])] if len(roles_table) else []


def role_offsets(n_roles: int, radius: float = 0.28) -> list[tuple[float, float]]:
    """Where each of ``n_roles`` roles draws its marker inside a cell, as (dx, dy) from the
    cell's centre: one role at the centre, more on a ring starting at the top, so every role
    has its own place and markers of one head never cover each other."""
    if n_roles <= 1:
        return [(0.0, 0.0)] * n_roles
    angles = [math.pi / 2 - 2 * math.pi * i / n_roles for i in range(n_roles)]
    return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]


def _marker_size(cell: float, n_roles: int, radius: float = 0.28) -> float:
    """A marker's diameter in pixels such that the markers on the ring of a ``cell``-pixel
    cell neither touch each other nor leave the cell."""
    if n_roles <= 1:
        return max(3.0, 0.55 * cell)
    gap = 2 * radius * math.sin(math.pi / n_roles)  # neighbours' distance, in cells
    return max(3.0, cell * min(0.3, 0.9 * gap))


def _score_columns(heads: pd.DataFrame) -> list[str]:
    """Score columns of ``heads``: the schema's in its order, then any other numeric column
    that is not a head's position or an interval end."""
    known = [c for c in SCORES if c in heads.columns]
    others = [
        c
        for c in heads.columns
        if c not in _STRUCTURE
        and c not in known
        and not c.endswith(("_low", "_high"))
        and pd.api.types.is_numeric_dtype(heads[c])
    ]
    return known + others


def _value(row: pd.Series, column: str) -> str:
    value = row.get(column, np.nan)
    if pd.isna(value):
        return f"{column}: n/a"
    text = f"{column}: {float(value):.3g}"
    low, high = row.get(f"{column}_low", np.nan), row.get(f"{column}_high", np.nan)
    if not (pd.isna(low) or pd.isna(high)):
        text += f" [{float(low):.3g}, {float(high):.3g}]"
    return text


def _hover_texts(
    heads: pd.DataFrame, head_roles: dict[tuple[int, int], list[str]], labels: dict[str, str]
) -> dict[tuple[int, int], str]:
    """Each head's hover text: its name, every score (with its interval), and its roles."""
    columns = _score_columns(heads)
    texts = {}
    for _, row in heads.iterrows():
        key = (int(row["layer"]), int(row["head"]))
        roles = head_roles.get(key, [])
        lines = [f"<b>{head_name(*key)}</b>"] + [_value(row, c) for c in columns]
        lines.append("roles: " + (", ".join(role_label(r, labels) for r in roles) or "none"))
        texts[key] = "<br>".join(lines)
    return texts


def role_grid(heads: pd.DataFrame, roles_table: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """The layer × head grid (head across, layer up) with one marker per role a head is in.

    Every head of ``heads`` is a cell: white if it is in a role, faint grey if not; hovering
    a cell lists all of the head's scores with their intervals and its roles. Each role (in the
    order it first appears in ``roles_table``) has one colour, one symbol, one legend entry
    (clicking it hides the role) and one fixed place in the cell.
    """
    title = "Roles of the heads"
    if heads.empty:
        return _empty_figure("no heads to draw", title)
    if roles_table.empty:  # no role at all, perhaps not even the columns
        roles_table = pd.DataFrame({"role": [], "layer": [], "head": []})
    order = _roles_in_order(roles_table)
    head_roles: dict[tuple[int, int], list[str]] = {}
    for role, layer, head in zip(roles_table["role"], roles_table["layer"], roles_table["head"]):
        head_roles.setdefault((int(layer), int(head)), []).append(str(role))
    hover = _hover_texts(heads, head_roles, labels)

    n_layers = int(heads["layer"].max()) + 1
    n_heads = int(heads["head"].max()) + 1
    if len(roles_table):
        n_layers = max(n_layers, int(roles_table["layer"].max()) + 1)
        n_heads = max(n_heads, int(roles_table["head"].max()) + 1)
    # NaN where a (layer, head) is absent from the table: no cell is drawn there
    cells = np.full((n_layers, n_heads), np.nan)
    text = np.full((n_layers, n_heads), "", dtype=object)
    for (layer, head), words in hover.items():
        cells[layer, head] = 1.0 if (layer, head) in head_roles else 0.0
        text[layer, head] = words

    fig = go.Figure(
        go.Heatmap(
            z=cells,
            x=list(range(n_heads)),
            y=list(range(n_layers)),
            text=text,
            hovertemplate="%{text}<extra></extra>",
            colorscale=[[0.0, _NO_ROLE], [1.0, _IN_ROLE]],
            zmin=0,
            zmax=1,
            showscale=False,
            xgap=1,
            ygap=1,
            name="heads",
        )
    )
    offsets = role_offsets(len(order))
    cell = min(36.0, max(10.0, 1300 / max(n_layers, n_heads)))  # pixels per cell
    size = _marker_size(cell, len(order))
    for i, role in enumerate(order):
        rows = roles_table[roles_table["role"] == role]
        dx, dy = offsets[i]
        keys = [(int(layer), int(head)) for layer, head in zip(rows["layer"], rows["head"])]
        fig.add_trace(
            go.Scatter(
                x=[head + dx for _, head in keys],
                y=[layer + dy for layer, _ in keys],
                mode="markers",
                name=role_label(role, labels),
                legendgroup=role,
                marker={
                    "color": _COLOURS[i % len(_COLOURS)],
                    "symbol": _SYMBOLS[i % len(_SYMBOLS)],
                    "size": size,
                    "line": {"width": 0.5, "color": "black"},
                },
                text=[hover.get(k, head_name(*k)) for k in keys],
                hovertemplate="%{text}<extra>" + role_label(role, labels) + "</extra>",
            )
        )
    if not order:
        fig.add_annotation(
            text="no head is in any role",
            showarrow=False,
            x=0.5,
            y=1.02,
            xref="paper",
            yref="paper",
            yanchor="bottom",
        )
    step_x = max(1, math.ceil(n_heads / 40))
    step_y = max(1, math.ceil(n_layers / 40))
    fig.update_xaxes(
        title="head",
        range=[-0.5, n_heads - 0.5],
        tickmode="array",
        tickvals=list(range(0, n_heads, step_x)),
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(
        title="layer",
        range=[-0.5, n_layers - 0.5],
        tickmode="array",
        tickvals=list(range(0, n_layers, step_y)),
        showgrid=False,
        zeroline=False,
        scaleanchor="x",  # square cells, so the ring of markers stays a ring
    )
    fig.update_layout(
        title=title,
        plot_bgcolor="white",
        height=int(160 + cell * n_layers),
        width=int(320 + cell * n_heads),  # room for the legend beside the grid
        legend={"title": {"text": "role"}},
    )
    return fig


def _groups(roles_table: pd.DataFrame, order: Sequence[str]) -> list[tuple[tuple[str, ...], list]]:
    """Heads grouped by the exact set of roles they are in, largest group first (ties: fewer
    roles first, then role order), each group's heads in layer then head order."""
    rank = {role: i for i, role in enumerate(order)}
    by_head: dict[tuple[int, int], set[str]] = {}
    for role, layer, head in zip(roles_table["role"], roles_table["layer"], roles_table["head"]):
        by_head.setdefault((int(layer), int(head)), set()).add(str(role))
    groups: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for key, roles in by_head.items():
        groups.setdefault(tuple(sorted(roles, key=rank.__getitem__)), []).append(key)
    return sorted(
        ((combo, sorted(members)) for combo, members in groups.items()),
        key=lambda g: (-len(g[1]), len(g[0]), [rank[r] for r in g[0]]),
    )


def _pair_notes(combo: Sequence[str], overlaps: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """For a combination of roles, each pair's overlap test from ``overlaps``."""
    notes = []
    if overlaps is None or overlaps.empty:
        return notes
    for i, a in enumerate(combo):
        for b in combo[i + 1 :]:
            match = overlaps[
                ((overlaps["role_a"] == a) & (overlaps["role_b"] == b))
                | ((overlaps["role_a"] == b) & (overlaps["role_b"] == a))
            ]
            if match.empty:
                continue
            row = match.iloc[0]
            notes.append(
                f"{role_label(a, labels)} & {role_label(b, labels)}: {int(row['shared'])} shared "
                f"({float(row['expected']):.1f} by chance), p (Holm) = "
                f"{format_p(float(row['p_adjusted']))}"
            )
    return notes


def overlap_upset(
    roles_table: pd.DataFrame, overlaps: pd.DataFrame, labels: dict[str, str]
) -> go.Figure:
    """UpSet plot of the role sets: bars for the heads in each exact combination of roles.

    Top: one bar per non-empty combination, largest first; its hover lists the heads and, for
    each pair of roles in it, the pair's test from ``overlaps``. Bottom: a dot matrix, a filled
    dot for each role in the combination, joined by a line. Left: each role's set size.
    """
    title = "Heads by the exact set of roles they are in"
    if roles_table.empty:
        return _empty_figure("no head is in any role", title)
    order = _roles_in_order(roles_table)
    groups = _groups(roles_table, order)
    names = [role_label(r, labels) for r in order]
    columns = list(range(len(groups)))
    rows = list(range(len(order)))

    fig = make_subplots(
        rows=2,
        cols=2,
        column_widths=[0.22, 0.78],
        row_heights=[0.6, 0.4],
        specs=[[None, {}], [{}, {}]],
        horizontal_spacing=0.02,
        vertical_spacing=0.03,
    )
    bar_text = []
    for combo, members in groups:
        lines = [" + ".join(role_label(r, labels) for r in combo)]
        lines.append(f"{len(members)} heads: " + ", ".join(head_name(*m) for m in members))
        lines += _pair_notes(combo, overlaps, labels)
        bar_text.append("<br>".join(lines))
    fig.add_trace(
        go.Bar(
            x=columns,
            y=[len(members) for _, members in groups],
            name="heads in exactly these roles",
            marker_color="#444444",
            text=[len(members) for _, members in groups],
            textposition="outside",
            hovertext=bar_text,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    # the matrix: grey dots everywhere, dark dots and a joining line where a role is in a group
    fig.add_trace(
        go.Scatter(
            x=[c for c in columns for _ in rows],
            y=[r for _ in columns for r in rows],
            mode="markers",
            marker={"color": "#dddddd", "size": 11},
            hoverinfo="skip",
            showlegend=False,
            name="not in the combination",
        ),
        row=2,
        col=2,
    )
    for column, (combo, _members) in enumerate(groups):
        in_rows = sorted(order.index(r) for r in combo)
        fig.add_trace(
            go.Scatter(
                x=[column] * len(in_rows),
                y=in_rows,
                mode="lines+markers",
                marker={"color": "#222222", "size": 11},
                line={"color": "#222222", "width": 2},
                hovertext=bar_text[column],
                hovertemplate="%{hovertext}<extra></extra>",
                showlegend=False,
                name="in the combination",
            ),
            row=2,
            col=2,
        )
    sizes = [int((roles_table["role"] == r).sum()) for r in order]
    fig.add_trace(
        go.Bar(
            x=sizes,
            y=rows,
            orientation="h",
            name="heads in the role",
            marker_color=[_COLOURS[i % len(_COLOURS)] for i in rows],
            hovertext=[f"{n}: {s} heads" for n, s in zip(names, sizes)],
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
        ),
        row=2,
        col=1,
    )
    span = [-0.5, len(order) - 0.5]
    fig.update_yaxes(range=span[::-1], showgrid=False, zeroline=False, row=2, col=2)
    fig.update_yaxes(
        range=span[::-1], tickmode="array", tickvals=rows, ticktext=names, row=2, col=1
    )
    fig.update_yaxes(showticklabels=False, row=2, col=2)
    fig.update_xaxes(autorange="reversed", title="heads in the role", row=2, col=1)
    for row in (1, 2):
        fig.update_xaxes(
            range=[-0.5, len(groups) - 0.5], showticklabels=False, showgrid=False, row=row, col=2
        )
    fig.update_yaxes(title="heads", row=1, col=2)
    fig.update_layout(
        title=title,
        plot_bgcolor="white",
        height=420 + 26 * len(order),
        width=min(1400, 420 + 34 * len(groups)),
        bargap=0.3,
    )
    return fig
