"""Helpers the explorer test modules share (imported by name: the test folders are no
packages, and pytest puts each test file's folder on sys.path)."""

from __future__ import annotations

import re

import pandas as pd

RUNS_LIST_HEAD = "| run | status |"
"""How the runs list's Markdown table begins (its first two columns)."""


def significant(text: str) -> int:
    """Significant digits of one formatted number."""
    mantissa = text.lstrip("-").replace(",", "").split("e")[0]
    if "." not in mantissa:
        mantissa = mantissa.rstrip("0") or "0"  # 1,300: two or three figures, not four
    return len(mantissa.replace(".", "").lstrip("0"))


def markdown_table(text: str) -> pd.DataFrame:
    """A Markdown table as the text a reader sees: cells split at unescaped ``|``, every
    backslash escape undone, the delimiter row dropped."""
    rows = []
    for line in text.strip().splitlines():
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([re.sub(r"\\(.)", r"\1", cell.strip()) for cell in cells])
    header, delimiter, *body = rows
    assert all(set(d) <= set("-:") and d for d in delimiter), delimiter
    return pd.DataFrame(body, columns=header)


def runs_list(at) -> pd.DataFrame:
    """The runs list an AppTest page shows (one row per run, ``run`` first)."""
    lists = [m.value for m in at.markdown if m.value.startswith(RUNS_LIST_HEAD)]
    assert len(lists) == 1, f"{len(lists)} runs lists on the page"
    return markdown_table(lists[0])
