"""Checks on what a report shows a reader, shared by the report tests (imported by name: the
test folders are no packages)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from interp.runs.reports import FIGURE_LINE, decode_array
from interp.tokens import has_raw_marks

HEAD = re.compile(r"L(\d+)H(\d+)")


def figure_strings(fig: go.Figure) -> list[str]:
    """Every string a figure can show: titles, axis titles, tick labels, legend names, the text
    and coordinates of its traces (the template's styling left out)."""
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                if k != "template":
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif hasattr(value, "tolist"):
            walk(value.tolist())

    walk(fig.to_plotly_json())
    return found


def raw_token_strings(figures: dict[str, go.Figure], tables: dict[str, pd.DataFrame]) -> list:
    """(where, text) for every figure string and table cell that still holds a tokenizer's own
    space or newline marker (Ġ, ▁, Ċ)."""
    bad = [(name, s) for name, fig in figures.items() for s in figure_strings(fig)]
    bad = [(name, s) for name, s in bad if has_raw_marks(s)]
    for name, table in tables.items():
        for column in table.columns:
            if table[column].dtype == object:
                cells = table[column].dropna().astype(str)
                bad += [(f"{name}.{column}", c) for c in cells if has_raw_marks(c)]
    return bad


def head_axes_out_of_order(fig: go.Figure) -> list[str]:
    """Each axis of ``fig`` that names heads (``L3H7``) or counts layers/heads out of numeric
    order, described; empty when every one is in order."""
    problems = []
    for trace in fig.data:
        for letter in ("x", "y"):
            values = decode_array(getattr(trace, letter, None))
            if values is None:
                continue
            values = list(values)
            heads = [HEAD.fullmatch(str(v)) for v in values]
            if values and all(heads):
                keys = [(int(m[1]), int(m[2])) for m in heads]
                if keys != sorted(keys):
                    problems.append(f"{letter}: {values[:6]} ...")
            title = fig.layout[f"{letter}axis"].title.text or ""
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if trace.type == "heatmap" and re.search("layer|head", title) and numbers:
                if values != sorted(values):
                    problems.append(f"{letter} ({title}): {values}")
    return problems


def report_sections(markdown: str) -> dict[str, str]:
    """Figure name -> the heading of the section its line stands in (``""`` before any)."""
    heading, placed = "", {}
    for line in markdown.splitlines():
        if re.match(r"#{1,6}\s", line):
            heading = line.lstrip("#").strip()
        elif m := FIGURE_LINE.match(line.strip()):
            assert m["name"] not in placed, f"{m['name']} shown twice"
            placed[m["name"]] = heading
    return placed


def static_link_ok(run_dir: Path, name: str) -> bool:
    """Whether report.md's line for figure ``name`` points at the static copy's path."""
    return f"](figures/{name}.svg)" in (run_dir / "report.md").read_text()
