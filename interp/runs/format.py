"""How the explorer writes numbers, times, run ids and figure axes: one place, so every page
(and the tests) agree.

Rules: a headline number has 2-3 significant figures; a layer, head, position or shot count is
an integer; a time is how long ago ("3 min ago"); a run id is short (kind and its random suffix).
Nothing here imports Streamlit, so the rules are tested without a page.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from interp.runs.reports import integer_axes

__all__ = [
    "INTEGER_COLUMNS",
    "figure_kind",
    "headline",
    "human_time",
    "integer_axes",
    "model_name",
    "run_label",
    "short_id",
    "sig",
    "summary_rows",
    "table_config",
    "tidy_table",
]

INTEGER_COLUMNS = (
    "layer",
    "head",
    "position",
    "shots",
    "depth",
    "prompt",
    "demo",
    "rows",
    "n",
    "k",
    "pairs",
    "documents",
    "tokens",
    "rank",
)
"""Columns that count things: shown as integers, never as 1.0 or 0.5."""
_GENERATED_ID = re.compile(r"^(?P<kind>.+)-(?P<date>\d{8})-(?P<time>\d{6})-(?P<tag>[0-9a-f]{4})$")
_BOOKKEEPING = ("seconds", "rows", "ablation_prompts", "schema_version")
HEADLINE_KEYS = {
    "patch": ("clean_baseline", "corrupted_baseline", "top_component"),
    "circuit": ("step1_best_centroid_acc", "step3_best_head_label_acc", "random_drop"),
}
"""Per run kind, the summary numbers a researcher looks at first (others: the first three)."""


def sig(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant figures, plain (no exponent) between 1e-4 and 1e4;
    integers stay whole; None and NaN read as a dash."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and "int" in str(value.dtype)):
        return f"{int(value):,}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    if 1e-4 <= abs(x) < 1e4:
        decimals = digits - 1 - math.floor(math.log10(abs(x)))
        if decimals <= 0:  # 1304 -> 1,300
            return f"{int(round(x, decimals)):,}"
        text = f"{round(x, decimals):.{decimals}f}"
        return text.rstrip("0").rstrip(".")
    return f"{x:.{digits - 1}e}"


def short_id(run_id: str) -> str:
    """``patch-20261129-155504-6c2a`` -> ``patch-6c2a``: the kind and the random tag, which
    already tell runs apart; any other name is kept whole."""
    m = _GENERATED_ID.match(run_id)
    return f"{m['kind']}-{m['tag']}" if m else run_id


def human_time(iso: str | None, now: datetime | None = None) -> str:
    """An ISO time as how long ago it was: "just now", "3 min ago", "5 h ago", "yesterday",
    "4 days ago", then the date."""
    if not iso:
        return "—"
    try:
        then = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return then.strftime("%Y-%m-%d %H:%M")
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    days = int(seconds // 86400)
    if days == 1:
        return "yesterday"
    return f"{days} days ago" if days < 14 else then.strftime("%Y-%m-%d")


def model_name(model: str | None) -> str:
    """A registry name as it is; a model folder by its last part (the full path is on the run
    page)."""
    if not model:
        return "—"
    return Path(model).name if ("/" in model or "\\" in model) else model


def _scalar(key: str, value: Any) -> str | None:
    """A summary value as one short text, or None when it is not a headline kind of value."""
    if isinstance(value, dict) and {"layer", "head"} <= value.keys():
        return f"L{value['layer']}H{value['head']}"
    if isinstance(value, dict) and {"layer", "position"} <= value.keys():
        return f"L{value['layer']}@{value['position']}"
    if (
        isinstance(value, list)
        and len(value) == 2
        and "head" in key
        and all(isinstance(v, int) for v in value)
    ):
        return f"L{value[0]}H{value[1]}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return sig(value)
    return None


def headline(summary: dict[str, Any], kind: str | None = None, n: int = 3) -> str:
    """Up to ``n`` summary numbers, ``name value`` each, at 2-3 significant figures."""
    preferred = [k for k in HEADLINE_KEYS.get(kind or "", ()) if k in summary]
    if kind == "demo":  # what the demo is for: how much each family gains from its shots
        preferred = [k for k in summary if k.endswith("_icl_gain")]
    rest = [k for k in summary if k not in preferred and k not in _BOOKKEEPING]
    out = []
    for key in preferred + rest:
        text = _scalar(key, summary[key])
        if text is not None:
            out.append(f"{key} {text}")
        if len(out) == n:
            break
    return ", ".join(out)


def summary_rows(summary: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A summary as (name, text) rows: nested objects flattened with dots, a component as
    ``L1H3``, lists of records left out (they are tables on the run page)."""
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        name = f"{prefix}{key}"
        text = _scalar(key, value)
        if text is not None:
            rows.append((name, text))
        elif isinstance(value, dict):
            rows += summary_rows(value, prefix=f"{name}.")
        elif isinstance(value, str):
            rows.append((name, value))
        elif isinstance(value, list) and value and not isinstance(value[0], dict):
            rows.append((name, ", ".join(_scalar(name, v) or str(v) for v in value)))
    return rows


def run_label(entry: dict[str, Any]) -> str:
    """How a run is named in a picker: short id, kind, model, status and age."""
    parts = [short_id(entry["run_id"]), entry.get("status") or "?"]
    if entry.get("model"):
        parts.insert(1, model_name(entry["model"]))
    if entry.get("started"):
        parts.append(human_time(entry["started"]))
    return " · ".join(parts)


def _is_integer_column(name: str, series: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    if name.lower() not in INTEGER_COLUMNS:
        return False
    values = series.dropna()
    return bool((values == values.round()).all())


def tidy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Counting columns (layer, head, ...) as integers; everything else as it is."""
    out = df.copy()
    for name in out.columns:
        if _is_integer_column(str(name), out[name]):
            out[name] = out[name].astype("Int64")
    return out


def table_config(df: pd.DataFrame) -> dict[str, Any]:
    """Streamlit column formats: integers without decimals, floats at 3 significant figures
    (the numbers stay numbers, so a column still sorts by value)."""
    import streamlit as st

    config: dict[str, Any] = {}
    for name in df.columns:
        series = df[name]
        if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
            config[str(name)] = st.column_config.NumberColumn(format="%d")
        elif pd.api.types.is_float_dtype(series):
            config[str(name)] = st.column_config.NumberColumn(format="%.3g")
    return config


def figure_kind(fig: go.Figure) -> str:
    """``curve`` (lines only), ``heatmap`` (one heatmap) or ``other``: what the compare view
    can overlay, put on one scale, or only show side by side."""
    types = {t.type for t in fig.data}
    if types == {"heatmap"} and len(fig.data) == 1:
        return "heatmap"
    if types <= {"scatter", "scattergl"} and fig.data:
        if all("lines" in (t.mode or "lines") for t in fig.data):
            return "curve"
    return "other"
