"""The compare view: two runs of the same kind on one page.

Curves of both runs are drawn on one figure (the same colour per series, run A solid and run B
dashed), head heatmaps share one colour scale and get a difference map (B - A), and the summary
numbers sit in one table with their delta. Runs of different kinds are not compared: each one's
summary is shown instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.common import open_run, show_figures
from app.format import figure_kind, integer_axes, short_id, sig, summary_rows
from app.runs_list import runs_table
from interp.runs.reports import decode_array
from interp.runs.store import Run

PALETTE = plotly.colors.qualitative.Plotly


def numeric_summary(summary: dict) -> dict[str, float]:
    """The summary's plain numbers, nested ones under dotted names."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            out |= {f"{key}.{k}": v for k, v in numeric_summary(value).items()}
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def delta_table(a: dict, b: dict, names: tuple[str, str]) -> pd.DataFrame:
    """One row per summary number the two runs share: A, B and B - A, at 3 figures."""
    na, nb = numeric_summary(a), numeric_summary(b)
    rows = [(k, sig(na[k]), sig(nb[k]), sig(nb[k] - na[k])) for k in na if k in nb]
    frame = pd.DataFrame(rows, columns=["measure", names[0], names[1], "B − A"])
    return frame.set_index("measure")


def overlay(fa: go.Figure, fb: go.Figure, names: tuple[str, str]) -> go.Figure:
    """Both runs' curves on one figure: a series keeps its colour, run B is dashed."""
    fig = go.Figure()
    colours: dict[str, str] = {}
    for run_name, source, dash in ((names[0], fa, "solid"), (names[1], fb, "dash")):
        for trace in source.data:
            series = trace.name or "value"
            colour = colours.setdefault(series, PALETTE[len(colours) % len(PALETTE)])
            fig.add_trace(
                go.Scatter(
                    x=decode_array(trace.x),
                    y=decode_array(trace.y),
                    mode=trace.mode or "lines",
                    name=f"{run_name} · {series}",
                    legendgroup=run_name,
                    line={"color": colour, "dash": dash},
                    marker={"color": colour},
                )
            )
    title = fa.layout.title.text or ""
    fig.update_layout(
        title=f"{title} ({names[0]} solid, {names[1]} dashed)",
        xaxis_title=fa.layout.xaxis.title.text,
        yaxis_title=fa.layout.yaxis.title.text,
    )
    return integer_axes(fig)


def _grid(fig: go.Figure) -> tuple[np.ndarray, list, list]:
    t = fig.data[0]
    z = np.asarray(decode_array(t.z), dtype=float)
    x, y = decode_array(t.x), decode_array(t.y)
    x = [_plain(v) for v in x] if x is not None else list(range(z.shape[1]))
    y = [_plain(v) for v in y] if y is not None else list(range(z.shape[0]))
    return z, x, y


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _range(figs: tuple[go.Figure, go.Figure], za: np.ndarray, zb: np.ndarray) -> tuple:
    """One colour range for both: the figures' own fixed range where both set one (an
    accuracy's 0-1), else the data's, symmetric around 0 for signed values."""
    fixed = [
        (f.data[0].zmin, f.data[0].zmax)
        if f.data[0].zmin is not None
        else (f.layout.coloraxis.cmin, f.layout.coloraxis.cmax)
        for f in figs
    ]
    if all(lo is not None and hi is not None for lo, hi in fixed):
        return min(lo for lo, _ in fixed), max(hi for _, hi in fixed)
    values = np.concatenate([za[np.isfinite(za)], zb[np.isfinite(zb)]])
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if lo < 0 < hi:  # signed effects: keep 0 at the middle of the scale
        lo, hi = -max(-lo, hi), max(-lo, hi)
    return lo, hi


def heatmaps(fa: go.Figure, fb: go.Figure, names: tuple[str, str]) -> go.Figure:
    """A, B on one shared colour scale, and B - A on a scale centred at 0 when the grids match."""
    (za, xa, ya), (zb, xb, yb) = _grid(fa), _grid(fb)
    same = za.shape == zb.shape and xa == xb and ya == yb
    lo, hi = _range((fa, fb), za, zb)
    titles = [names[0], names[1]] + (["B − A"] if same else [])
    fig = make_subplots(
        1, len(titles), subplot_titles=titles, horizontal_spacing=0.1, shared_yaxes=same
    )
    scale = fa.data[0].colorscale or fa.layout.coloraxis.colorscale or "Viridis"
    end = fig.layout.xaxis2.domain[1]  # the shared scale stands right of B
    for i, (z, x, y) in enumerate(((za, xa, ya), (zb, xb, yb))):
        bar = {"x": end + 0.01, "len": 0.9, "thickness": 12}
        heat = go.Heatmap(
            z=z,
            x=x,
            y=y,
            zmin=lo,
            zmax=hi,
            colorscale=scale,
            showscale=i == 1,
            colorbar=bar,
            name=names[i],
        )
        fig.add_trace(heat, 1, i + 1)
    if same:
        diff = zb - za
        m = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0
        fig.add_trace(
            go.Heatmap(
                z=diff,
                x=xa,
                y=ya,
                zmin=-(m or 1),
                zmax=m or 1,
                colorscale="RdBu",
                name="B − A",
                colorbar={"len": 0.9, "thickness": 12},
            ),
            1,
            3,
        )
    xt, yt = fa.layout.xaxis.title.text, fa.layout.yaxis.title.text
    reversed_y = fa.layout.yaxis.autorange == "reversed"  # px.imshow's default origin
    for i in range(len(titles)):
        axis = "" if i == 0 else str(i + 1)
        fig.layout[f"xaxis{axis}"].title.text = xt
        fig.layout[f"yaxis{axis}"].title.text = yt if i == 0 else None
        if reversed_y:
            fig.layout[f"yaxis{axis}"].autorange = "reversed"
        _integer_ticks(fig.layout[f"xaxis{axis}"], xa)
        _integer_ticks(fig.layout[f"yaxis{axis}"], ya)
    fig.update_layout(title=f"{fa.layout.title.text or ''}: one colour scale", height=420)
    return fig


def _integer_ticks(axis, values: list) -> None:
    if values and all(isinstance(v, (int, float, np.integer)) for v in values):
        step = 1 if len(values) <= 40 else len(values) // 20
        axis.update(tickmode="linear", dtick=step, tickformat="d")


def _pick(table: pd.DataFrame, i: int, options: list[str], labels: dict) -> str:
    defaults = _default_pair(table)
    wanted = st.query_params.get(f"run{i + 1}")
    first = wanted if wanted in options else defaults[i]
    return st.selectbox(
        f"run {'AB'[i]}",
        options,
        index=options.index(first),
        key=f"compare{i}",
        format_func=lambda n: labels.get(n, n),
    )


def _default_pair(table: pd.DataFrame) -> tuple[str, str]:
    """The newest complete run and the next newest of its kind (else the next run)."""
    ok = table[table.status != "broken"]
    done = ok[ok.status == "complete"]
    a = (done if len(done) else ok).id.iloc[0]
    kind = ok.set_index("id").kind[a]
    rest = ok[ok.id != a]
    same = rest[(rest.kind == kind) & (rest.status == "complete")]
    b = (same if len(same) else rest).id.iloc[0]
    return a, b


def compare_page(root: str) -> None:
    st.header("Compare runs")
    table = runs_table(root)
    ok = table[table.status != "broken"]
    if len(ok) < 2:
        st.info("two readable runs are needed to compare")
        return
    options, labels = ok.id.tolist(), dict(zip(ok.id, ok.label))
    cols = st.columns(2)
    picked = []
    for i, col in enumerate(cols):
        with col:
            picked.append(_pick(table, i, options, labels))
    if picked[0] == picked[1]:
        st.info("pick two different runs")
        return
    runs = [open_run(root, name) for name in picked]
    if any(r is None for r in runs):
        return
    compare_runs(runs[0], runs[1])


def run_label(run: Run, name: str) -> str:
    """Which run a side is: ``A patch-1a2b (organism, sentiment_semantic)``."""
    m = run.manifest
    return f"{name} ({m.get('model')}, {m.get('task')})"


def compare_runs(a: Run, b: Run) -> None:
    names = (f"A {short_id(a.path.name)}", f"B {short_id(b.path.name)}")
    ka, kb = a.manifest.get("kind"), b.manifest.get("kind")
    if ka != kb:
        st.warning(
            f"a {ka} run and a {kb} run cannot be compared: their figures and numbers "
            "measure different things. Each one's summary:"
        )
        for col, run, name in zip(st.columns(2), (a, b), names):
            with col:
                st.subheader(name)
                st.table(
                    pd.DataFrame(summary_rows(run.summary), columns=["measure", "value"]).set_index(
                        "measure"
                    )
                )
        return
    st.subheader("Summary")
    st.caption(f"{names[0]}: {a.manifest.get('model')} · {names[1]}: {b.manifest.get('model')}")
    st.table(delta_table(a.summary, b.summary, names))
    shared = [f for f in a.figures if f in b.figures]
    kinds = {f: (figure_kind(a.figures[f]), figure_kind(b.figures[f])) for f in shared}
    curves = [f for f in shared if kinds[f] == ("curve", "curve")]
    maps = [f for f in shared if kinds[f] == ("heatmap", "heatmap")]
    if curves:
        st.subheader("Curves, overlaid")
        for f in curves:
            fig = overlay(a.figures[f], b.figures[f], names)
            st.plotly_chart(fig, width="stretch", key=f"overlay-{f}")
    if maps:
        st.subheader("Heatmaps on one scale, and their difference")
        for f in maps:
            st.plotly_chart(
                heatmaps(a.figures[f], b.figures[f], names), width="stretch", key=f"maps-{f}"
            )
    rest = [f for f in shared if f not in curves and f not in maps]
    if rest:
        st.subheader("Side by side")
        st.caption(f"left: {run_label(a, names[0])} · right: {run_label(b, names[1])}")
        for f in rest:
            for col, run, name in zip(st.columns(2), (a, b), names):
                with col:
                    st.markdown(f"**{name}** · {f}")
                    show_figures(run, [f], f"cmp-{name}")
    only = sorted(set(a.figures) ^ set(b.figures))
    if only:
        st.caption(f"figures in only one of the runs: {', '.join(only)}")
