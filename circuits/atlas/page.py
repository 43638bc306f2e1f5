"""The explorer's view of an ``atlas`` run: which heads play which role, one head's every score
with its interval and roles (and links to the runs the scores came from, opened on that head),
and which roles share heads more than chance would.

Reads only the run's tables (``heads``, ``roles``, ``overlaps``; their columns are fixed in
:mod:`circuits.atlas.schema`), ``summary.json``, its figures (``role_grid``, ``overlap_upset``)
and ``report.md``; nothing is recomputed, and a run without a figure or table still opens.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from circuits.atlas.overlap import head_name
from circuits.atlas.schema import ROLES, SCORES
from interp.runs.format import integer_axes, short_id, sig, table_config, tidy_table
from interp.runs.reports import FIGURE_LINE
from interp.runs.store import Run

SIGNIFICANT = 0.05
"""Holm-adjusted p-value under which a pair of roles shares more heads than chance."""
_INDEX_COLUMNS = ("layer", "head", "depth")
_HEADING = re.compile(r"^#+\s*(?P<title>.*)$")


def score_columns(heads: pd.DataFrame) -> list[str]:
    """The score columns of ``heads``: the schema's in its order, then any newer one (a score
    added after this page was written still shows), never an interval bound."""
    known = [s for s in SCORES if s in heads.columns]
    bounds = {f"{s}_{end}" for s in heads.columns for end in ("low", "high")}
    extra = [
        c
        for c in heads.columns
        if c not in known
        and c not in _INDEX_COLUMNS
        and c not in bounds
        and pd.api.types.is_numeric_dtype(heads[c])
    ]
    return known + extra


def interval_text(low: object, high: object) -> str:
    """``[0.41, 0.77]``, or "" where the underlying run gives no interval (NaN or absent)."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (low, high)):
        return ""
    return f"[{sig(low)}, {sig(high)}]"


def head_scores(heads: pd.DataFrame, layer: int, head: int) -> pd.DataFrame:
    """One head's every score, its interval and what it measures, one row per score; a score
    the atlas could not compute reads as a dash."""
    row = heads[(heads.layer == layer) & (heads["head"] == head)]
    if row.empty:
        return pd.DataFrame(columns=["score", "value", "95% interval", "measures"])
    values = row.iloc[0]
    rows = [
        {
            "score": score,
            "value": sig(values[score]),
            "95% interval": interval_text(values.get(f"{score}_low"), values.get(f"{score}_high")),
            "measures": SCORES.get(score, ""),
        }
        for score in score_columns(heads)
    ]
    return pd.DataFrame(rows).set_index("score")


def role_label(role: str, summary: dict) -> str:
    """A role's name in words: the run's own label, else the schema's, else its key."""
    described = (summary.get("roles") or {}).get(role) or {}
    default = ROLES[role].label if role in ROLES else role
    return str(described.get("label") or default)


def head_roles(roles: pd.DataFrame, summary: dict, layer: int, head: int) -> pd.DataFrame:
    """The roles one head is in, with the head's score for each, its rank in the role (1: the
    highest score) and the role's rule."""
    rows = []
    for role, members in roles.groupby("role", sort=False):
        ranked = members.sort_values(["score", "layer", "head"], ascending=[False, True, True])
        mine = (ranked.layer == layer) & (ranked["head"] == head)
        if not mine.any():
            continue
        rank = int(mine.to_numpy().argmax()) + 1
        rows.append(
            {
                "in role": role_label(str(role), summary),
                "score": sig(ranked[mine].score.iloc[0]),
                "rank": f"{rank} of {len(ranked)}",
                "rule": str(ranked.rule.iloc[0]),
            }
        )
    columns = ["in role", "score", "rank", "rule"]
    return pd.DataFrame(rows, columns=columns).set_index("in role")


def roles_overview(roles: pd.DataFrame | None, summary: dict) -> pd.DataFrame:
    """Every role set: its label, rule and size (from the summary, else counted in ``roles``)."""
    described = dict(summary.get("roles") or {})
    if roles is not None:
        for role, members in roles.groupby("role", sort=False):
            described.setdefault(str(role), {"rule": members.rule.iloc[0], "size": len(members)})
    rows = [
        {
            "role": role,
            "label": role_label(role, summary),
            "rule": info.get("rule", ""),
            "heads": info.get("size"),
        }
        for role, info in described.items()
    ]
    return pd.DataFrame(rows, columns=["role", "label", "rule", "heads"]).set_index("role")


def run_address(run_id: str, head: str) -> str:
    """The explorer's address of a run opened on the Runs page with ``head`` picked out (the
    run view shows that head's rows above its tables). Relative, so it keeps the server's path."""
    return "?" + urlencode({"page": "Runs", "run": run_id, "head": head})


def source_links(summary: dict, root: Path, head: str) -> list[str]:
    """One Markdown line per run the atlas read: a link to it in the explorer, on ``head``, or,
    for a run outside the explorer's runs root (which the explorer cannot open), its path."""
    lines = []
    for analysis, source in (summary.get("runs") or {}).items():
        run_id, path = str(source.get("run_id") or ""), source.get("path")
        reused = " (reused)" if source.get("reused") else ""
        here = root / run_id if run_id else None
        inside = here is not None and here.is_dir()
        if inside and path:  # the same name under the root may be another run than the atlas's
            inside = Path(path).resolve() == here.resolve()
        if inside:
            link = f"[{short_id(run_id)}]({run_address(run_id, head)})"
            lines.append(f"- **{analysis}**: {link}{reused}")
        else:
            lines.append(
                f"- **{analysis}**: `{run_id or '?'}`{reused} is not under the explorer's runs "
                f"root (`{root}`), so it cannot be opened here; its path: `{path or '?'}`"
            )
    return lines


def overlaps_table(overlaps: pd.DataFrame) -> pd.DataFrame:
    """The role pairs, those sharing more heads than chance (Holm-adjusted p below
    :data:`SIGNIFICANT`) first, then by adjusted p-value and shared heads."""
    table = overlaps.assign(significant=overlaps.p_adjusted < SIGNIFICANT)
    table = table.sort_values(
        ["significant", "p_adjusted", "shared"], ascending=[False, True, False], kind="stable"
    )
    first = ["role_a", "role_b", "significant"]
    return table[first + [c for c in table.columns if c not in first]]


def report_overlap_text(report: str | None) -> str:
    """The report's sections about shared heads (a heading naming overlaps or sharing, as the
    atlas's "Shared heads"), to read beside the table, without its figure lines (the figure is
    drawn above); "" when the report has none (the whole report is below the page)."""
    kept, keep = [], False
    for line in (report or "").split("\n"):
        heading = _HEADING.match(line.strip())
        if heading:
            keep = bool(re.search(r"overlap|shar", heading["title"], re.IGNORECASE))
            continue
        if keep and not FIGURE_LINE.match(line.strip()):
            kept.append(line)
    return "\n".join(kept).strip()


def _show_figure(run: Run, figure: str, name: str, missing: str) -> None:
    if figure in run.figures:
        st.plotly_chart(integer_axes(run.figures[figure]), width="stretch", key=f"{name}-{figure}")
    else:
        st.info(missing)


def _picked_head(heads: pd.DataFrame, roles: pd.DataFrame | None) -> tuple[list[str], int]:
    """The heads to pick from, in layer then head order, and the one shown first: the head the
    address names (``head=L3H2``), else the first head in a role, else the first head."""
    ordered = heads.sort_values(["layer", "head"])
    names = [head_name(r.layer, r.head) for r in ordered.itertuples()]
    wanted = st.query_params.get("head")
    if wanted in names:
        return names, names.index(wanted)
    in_role = set() if roles is None else {head_name(r.layer, r.head) for r in roles.itertuples()}
    return names, next((i for i, n in enumerate(names) if n in in_role), 0)


def head_picker(run: Run, name: str) -> None:
    """Pick one head: its scores with their intervals, its roles, and the runs behind them."""
    heads, roles = run.tables["heads"], run.tables.get("roles")
    names, first = _picked_head(heads, roles)
    if not names:
        st.info("this atlas has no heads")
        return
    picked = st.selectbox("head", names, index=first, key="atlas_head")
    layer, head = (int(x) for x in re.findall(r"\d+", picked))
    left, right = st.columns([3, 2])
    with left:
        st.caption(f"Every score of {picked}, with its 95% interval where its run gives one")
        st.dataframe(head_scores(heads, layer, head), key=f"{name}-head-scores")
    with right:
        mine = head_roles(roles, run.summary, layer, head) if roles is not None else None
        if mine is not None and len(mine):
            st.caption(f"{picked} is in {len(mine)} role(s)")
            st.dataframe(mine, key=f"{name}-head-roles")
        else:
            st.caption(f"{picked} is in no role")
    links = source_links(run.summary, run.path.parent, picked)
    if links:
        st.caption(f"The runs its scores come from, each opened on {picked}'s rows")
        st.markdown("\n".join(links))


def atlas_view(run: Run, name: str) -> None:
    """The role grid, a head picker, then the overlaps of the roles."""
    s = run.summary
    if s:
        st.caption(
            f"{s.get('model', '?')}: {s.get('heads', '?')} heads ({s.get('n_layers', '?')} layers "
            f"of {s.get('n_heads', '?')}), {len(s.get('roles') or {})} roles"
        )
    st.subheader("Roles by layer and head")
    _show_figure(run, "role_grid", name, "this run has no role grid figure")
    overview = roles_overview(run.tables.get("roles"), s)
    if len(overview):
        st.dataframe(overview, key=f"{name}-roles")
    if "heads" in run.tables:
        st.subheader("One head")
        head_picker(run, name)
    st.subheader("Roles that share heads")
    _show_figure(run, "overlap_upset", name, "this run has no overlap figure")
    overlaps = run.tables.get("overlaps")
    if overlaps is not None and len(overlaps):
        table = tidy_table(overlaps_table(overlaps))
        st.caption(
            f"Every pair of roles, significant ones first (Holm-adjusted p < {SIGNIFICANT:g}); "
            "expected: the shared heads under chance"
        )
        st.dataframe(table, hide_index=True, column_config=table_config(table), key=f"{name}-ov")
    said = report_overlap_text(run.report)
    if said:
        st.markdown(said)
