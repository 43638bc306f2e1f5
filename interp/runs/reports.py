"""Reports: the markdown summary of a run rendered as one self-contained HTML page, and each
figure also written as a static SVG beside it.

The page inlines plotly's JavaScript once, so ``report.html`` opens offline, from an e-mail
attachment or a copied folder, with every figure interactive. The static copies
(``figures/<name>.svg``, made by plotly's own export through kaleido and the system Chromium)
are for the places that run no JavaScript: an image viewer, a code host's file view, a paper.
"""

from __future__ import annotations

import html
import itertools
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from interp.io import atomic_write_text

_STYLE = (
    "body{font-family:sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}"
    "td,th{border:1px solid #ccc;padding:.2rem .5rem}"
    "pre{background:#f4f4f4;padding:.5rem;overflow:auto}.static{font-size:.85rem;color:#555}"
)
STATIC_ENV = "ICLSCOPE_STATIC_FIGURES"
"""Set to 0 to skip the static copies (the test suite does: each costs a Chromium start)."""
STATIC_FORMAT = "svg"
_AXIS_KEY = re.compile(r"[xy]axis\d*")
_INTEGER_AXIS = re.compile(r"\b(layer|head|depth|shots?|position|demonstrations|documents)\b", re.I)


FIGURE_LINE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\(figures/(?P<name>[A-Za-z0-9_-]+)\.\w+\)\s*$")
"""A line of report.md that shows one figure: ``![title](figures/<name>.svg)``."""
OTHER_FIGURES = "Figures"
"""The heading of the section that takes the figures no other section discusses."""


def figure_line(name: str, fig: go.Figure | None = None) -> str:
    """The markdown line that shows figure ``name`` (its static copy) where it stands."""
    title = (fig.layout.title.text or name) if fig is not None else name
    alt = re.sub(r"[\[\]\n]", " ", re.sub(r"<[^>]+>", " ", title)).strip()
    return f"![{alt}](figures/{name}.{STATIC_FORMAT})"


def _heading(line: str) -> tuple[int, str] | None:
    m = re.match(r"(#{1,6})\s+(.*)", line)
    return (len(m[1]), m[2].strip()) if m else None


def place_figures(
    markdown: str, sections: dict[str, str], figures: dict[str, go.Figure] | list[str]
) -> str:
    """``markdown`` with a :func:`figure_line` for each figure at the end of the section that
    discusses it: ``sections`` maps a figure's name to the start of that section's heading
    (``"Step 1"`` for ``## Step 1: summarize``). A figure without a section, or whose section
    is missing, goes under a last ``## Figures`` heading; a figure already shown is left."""
    figs = figures if isinstance(figures, dict) else dict.fromkeys(figures)
    lines = markdown.rstrip("\n").split("\n")
    shown = {m["name"] for line in lines if (m := FIGURE_LINE.match(line))}
    heads = [(i, *h) for i, line in enumerate(lines) if (h := _heading(line))]
    inserts: dict[int, list[str]] = {}
    rest = []
    for name, fig in figs.items():
        if name in shown:
            continue
        start = sections.get(name)
        found = [(i, lvl) for i, lvl, text in heads if start and text.startswith(start)]
        if not found:
            rest.append(figure_line(name, fig))
            continue
        i, level = found[0]
        end = next((j for j, lvl, _ in heads if j > i and lvl <= level), len(lines))
        inserts.setdefault(end, []).append(figure_line(name, fig))
    out: list[str] = []
    for i, line in enumerate([*lines, None]):
        if i in inserts:
            while out and not out[-1].strip():
                out.pop()
            for fig_line in inserts[i]:
                out += ["", fig_line]
            if line is not None:
                out.append("")
        if line is not None:
            out.append(line)
    if rest:
        while out and not out[-1].strip():
            out.pop()
        out += ["", f"## {OTHER_FIGURES}"]
        for fig_line in rest:
            out += ["", fig_line]
    return "\n".join(out).rstrip("\n") + "\n"


def _figure_html(name: str, fig: go.Figure, first: bool, static: dict[str, str] | None) -> str:
    div = pio.to_html(fig, full_html=False, include_plotlyjs=first, default_height=480)
    link = ""
    if static and name in static:
        href = html.escape(static[name])
        link = f'<p class="static">static copy: <a href="{href}">{href}</a></p>'
    return f'<div class="figure" id="figure-{html.escape(name)}">{div}</div>\n{link}'


def render_report_html(
    title: str, markdown: str, figures: dict[str, go.Figure], static: dict[str, str] | None = None
) -> str:
    """The report page: the markdown with each figure drawn where its line stands (see
    :func:`place_figures`; figures the markdown does not show follow under ``Figures``), and
    plotly.js inlined once, with the first figure. ``static`` names each figure's static copy,
    linked under it."""
    markdown = place_figures(markdown, {}, figures)
    parts, text, fenced, first = [], [], False, True
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = None if fenced else FIGURE_LINE.match(line.strip())
        if m and m["name"] in figures:
            parts.append(markdown_to_html("\n".join(text)))
            parts.append(_figure_html(m["name"], figures[m["name"]], first, static))
            text, first = [], False
        else:
            text.append(line)
    parts.append(markdown_to_html("\n".join(text)))
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>'
        f"{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body></html>\n"
    )


def _inline(text: str) -> str:
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", r'<img alt="\1" src="\2">', text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _line_kind(line: str) -> str:
    if re.match(r"#{1,6}\s", line):
        return "h"
    return "li" if re.match(r"[-*+]\s", line) else "tr" if line.startswith("|") else "p"


def _table(lines: list[str]) -> str:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    head = ""
    if len(rows) > 1 and all(re.fullmatch(r":?-+:?", c) for c in rows[1]):
        head = "<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in rows[0]) + "</tr></thead>"
        rows = rows[2:]
    cells = ("".join(f"<td>{_inline(c)}</td>" for c in r) for r in rows)
    return f"<table>{head}" + "".join(f"<tr>{r}</tr>" for r in cells) + "</table>"


def markdown_to_html(text: str) -> str:
    """Tiny markdown subset: headings, paragraphs, bullet lists, fenced code, pipe tables."""
    out: list[str] = []
    pieces = re.split(
        r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```[^\n]*$", text, flags=re.MULTILINE | re.DOTALL
    )
    for n, piece in enumerate(pieces):
        if n % 2:  # odd pieces are the insides of code fences
            out.append(f"<pre><code>{html.escape(piece)}</code></pre>")
            continue
        lines = [line.strip() for line in piece.splitlines()]
        for (kind, blank), group in itertools.groupby(lines, lambda x: (_line_kind(x), not x)):
            g = list(group)
            if blank:
                continue
            if kind == "h":
                for line in g:
                    level = len(line) - len(line.lstrip("#"))
                    out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            elif kind == "li":
                out.append(
                    "<ul>" + "".join(f"<li>{_inline(x[2:].strip())}</li>" for x in g) + "</ul>"
                )
            elif kind == "tr":
                out.append(_table(g))
            else:
                out.append(f"<p>{_inline(' '.join(g))}</p>")
    return "\n".join(out)


def decode_array(value):
    """A trace's data as plain values: a figure read back from JSON keeps its arrays in
    plotly's typed form (``{"dtype", "bdata", "shape"}``, base64); anything else is returned
    as it is."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        import numpy as np

        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value.get("dtype", "f8"))
        shape = value.get("shape")
        if shape:
            dims = shape if isinstance(shape, (list, tuple)) else str(shape).split(",")
            array = array.reshape([int(d) for d in dims])
        return array
    return value


def _axes(fig: go.Figure) -> list[tuple[str, str]]:
    """Every axis of the layout as (layout key, trace anchor): ("xaxis", "x"), ("yaxis2", "y2")."""
    keys = {"xaxis", "yaxis"} | {k for k in fig.layout.to_plotly_json() if _AXIS_KEY.fullmatch(k)}
    return [(k, k[0] + k[5:]) for k in sorted(keys)]


def _axis_values(fig: go.Figure, key: str, anchor: str) -> list | None:
    """Every value the traces drawn on axis ``anchor`` (``x``, ``y2`` ...) put on it (a heatmap
    without coordinates counts its cells), or None when one of them is not a number."""
    letter = key[0]
    values: list = []
    for trace in fig.data:
        if (getattr(trace, f"{letter}axis", None) or letter) != anchor:
            continue
        data = decode_array(getattr(trace, letter, None))
        if data is None and trace.type == "heatmap" and trace.z is not None:
            z = decode_array(trace.z)
            data = range(len(z[0]) if letter == "x" else len(z)) if len(z) else []
        if data is None:
            continue
        for v in data:
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "dtype"):
                return None
            values.append(float(v))
    return values


def integer_axes(fig: go.Figure, max_ticks: int = 40, max_rows: int = 20) -> go.Figure:
    """Axes that count layers, heads, depths, shots or positions get whole-number ticks at the
    values the data takes, one per value up to ``max_ticks`` on a horizontal axis and
    ``max_rows`` on a vertical one (so every head is labelled and 30 layers are not crammed),
    never a tick at 0.5 nor one past the data. An axis that overlays another (a second y axis)
    gets three significant figures and no grid of its own."""
    for key, anchor in _axes(fig):
        axis = fig.layout[key]
        values = _axis_values(fig, key, anchor)
        if not values:
            continue
        if axis.overlaying and not all(v == round(v) for v in values):
            axis.update(tickformat=".3~g", showgrid=False)
            continue
        if not all(v == round(v) for v in values):
            continue
        heatmap = any(t.type == "heatmap" for t in fig.data)
        if not (_INTEGER_AXIS.search(axis.title.text or "") or heatmap):
            continue
        lo, hi = int(min(values)), int(max(values))
        limit = max_ticks if key.startswith("x") else max_rows
        step = 1 if hi - lo < limit else math.ceil((hi - lo) / limit)
        ticks = list(range(lo, hi + 1, step))
        axis.update(tickmode="array", tickvals=ticks, ticktext=[str(t) for t in ticks])
    return fig


def export_static(
    run_dir: str | os.PathLike[str], fmt: str = STATIC_FORMAT, log: Callable[[str], object] = print
) -> dict[str, str]:
    """Write every figure of a run as ``figures/<name>.<fmt>`` (one Chromium session for all)
    and link each from ``report.html``; return name -> relative path.

    Never fails the run: without Chromium, or when kaleido cannot drive it, it logs why and
    writes nothing. ``ICLSCOPE_STATIC_FIGURES=0`` skips it.
    """
    run_dir = Path(run_dir)
    if os.environ.get(STATIC_ENV, "1") == "0":
        return {}
    files = sorted((run_dir / "figures").glob("*.json"))
    if not files:
        return {}
    reason = _static_unavailable()
    if reason:
        log(f"static figures not written: {reason}")
        return {}
    figures = {f.stem: pio.from_json(f.read_text(encoding="utf-8")) for f in files}
    paths = [str(run_dir / "figures" / f"{name}.{fmt}") for name in figures]
    log(f"writing {len(figures)} static figures ({fmt}) ...")
    try:
        import kaleido

        jobs = [
            {"fig": fig, "path": path, "opts": {"format": fmt}}
            for fig, path in zip(figures.values(), paths)
        ]
        errors = kaleido.write_fig_from_object_sync(jobs) or ()
    except Exception as err:  # noqa: BLE001 (a missing copy must not lose the run)
        errors = (err,)
    missing = [p for p in paths if not os.path.isfile(p)]
    if errors or missing:
        why = f"{type(errors[0]).__name__}: {errors[0]}" if errors else f"{missing[0]} missing"
        log(f"static figures not written: kaleido failed ({why})")
        return {}
    static = {name: f"figures/{name}.{fmt}" for name in figures}
    report_md = run_dir / "report.md"
    if report_md.is_file():
        page = render_report_html(
            run_dir.name, report_md.read_text(encoding="utf-8"), figures, static
        )
        atomic_write_text(run_dir / "report.html", page)
    return static


def _static_unavailable() -> str | None:
    """Why the static export cannot run here, or None when it can."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return "kaleido is not installed (pip install kaleido)"
    browser = os.environ.get("BROWSER_PATH") or shutil.which("chromium")
    if not browser:
        known = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
        browser = next((p for p in known if os.path.exists(p)), None)
        if browser is None:
            return "no Chromium found (install Debian's chromium, or set BROWSER_PATH)"
    os.environ.setdefault("BROWSER_PATH", browser)  # kaleido's browser finder reads it
    return None
