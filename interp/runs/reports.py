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
_INTEGER_AXIS = re.compile(r"\b(layer|head|depth|shots?|position|demonstrations|documents)\b", re.I)


def render_report_html(
    title: str, markdown: str, figures: dict[str, go.Figure], static: dict[str, str] | None = None
) -> str:
    """The report page: the markdown, then every figure (plotly.js inlined with the first);
    ``static`` names each figure's static copy, linked under its heading."""
    parts = [markdown_to_html(markdown)]
    if figures:
        parts.append("<h2>Figures</h2>")
    for i, (name, fig) in enumerate(figures.items()):
        div = pio.to_html(fig, full_html=False, include_plotlyjs=i == 0, default_height=480)
        link = ""
        if static and name in static:
            href = html.escape(static[name])
            link = f'<p class="static">static copy: <a href="{href}">{href}</a></p>'
        parts.append(f'<h3>{html.escape(name)}</h3>\n{link}<div class="figure">{div}</div>')
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>'
        f"{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _inline(text: str) -> str:
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
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


def _axis_values(fig: go.Figure, letter: str) -> list | None:
    """Every value the traces put on the ``x`` or ``y`` axis (a heatmap without coordinates
    counts its cells), or None when one of them is not a number."""
    values: list = []
    for trace in fig.data:
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


def integer_axes(fig: go.Figure, max_ticks: int = 40) -> go.Figure:
    """Axes that count layers, heads, depths, shots or positions get whole-number ticks, one
    per value up to ``max_ticks`` values (so every head is labelled), never a tick at 0.5."""
    for letter in ("x", "y"):
        axis = fig.layout[f"{letter}axis"]
        title = axis.title.text or ""
        values = _axis_values(fig, letter)
        if not values or not all(v == round(v) for v in values):
            continue
        heatmap = any(t.type == "heatmap" for t in fig.data)
        if not (_INTEGER_AXIS.search(title) or heatmap):
            continue
        span = max(values) - min(values)
        step = 1 if span < max_ticks else math.ceil(span / max_ticks)
        axis.update(tickmode="linear", tick0=min(values), dtick=step, tickformat="d")
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
