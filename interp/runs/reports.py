"""Reports: the markdown summary of a run rendered as one self-contained HTML page.

The page inlines plotly's JavaScript once, so ``report.html`` opens offline, from an e-mail
attachment or a copied folder, with every figure interactive.
"""

from __future__ import annotations

import html
import itertools
import re

import plotly.graph_objects as go
import plotly.io as pio

_STYLE = (
    "body{font-family:sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
    "pre{background:#f4f4f4;padding:.5rem;overflow:auto}"
)


def render_report_html(title: str, markdown: str, figures: dict[str, go.Figure]) -> str:
    """The report page: the markdown, then every figure (plotly.js inlined with the first)."""
    parts = [markdown_to_html(markdown)]
    if figures:
        parts.append("<h2>Figures</h2>")
    for i, (name, fig) in enumerate(figures.items()):
        div = pio.to_html(fig, full_html=False, include_plotlyjs=i == 0, default_height=480)
        parts.append(f'<h3>{html.escape(name)}</h3>\n<div class="figure">{div}</div>')
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
