"""The jointly trained gate in an eviction run's summary, report and curves figure."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from circuits.eviction.joint_run import GATE_JOINT, JointResult
from interp.stats import accuracy_ci, bootstrap_ci, with_ci


def _pooled(joint: JointResult, model: str, method: str) -> tuple[float, int] | None:
    return _pooled_rows(joint.table.query("model == @model and method == @method"))


def joint_summary(joint: JointResult | None) -> dict:
    """``accuracy_full_adapted`` (the adapted model, every key), ``gate_joint_accuracy`` and
    ``gate_joint_rate`` (its gate at its threshold), ``snapkv_joint_rate_accuracy`` (the base
    model) and ``snapkv_adapted_joint_rate_accuracy`` (SnapKV at that rate), pooled over
    settings by prompt, each with its 95% interval ``<key>_ci`` (Wilson; the rate's a bootstrap
    over prompts); ``gate_joint_training``: how training went. Empty without a joint gate."""
    if joint is None:
        return {}
    out: dict = {}
    for key, model, method in (
        ("accuracy_full_adapted", "adapted", "full"),
        ("gate_joint_accuracy", "adapted", GATE_JOINT),
        ("snapkv_joint_rate_accuracy", "base", "snapkv"),
        ("snapkv_adapted_joint_rate_accuracy", "adapted", "snapkv"),
    ):
        pooled = _pooled(joint, model, method)
        if pooled is not None:
            out[key] = round(pooled[0], 4)
            out[f"{key}_ci"] = accuracy_ci(*pooled)
    out["gate_joint_rate"] = round(joint.rate, 4)
    rate_ci = bootstrap_ci(joint.rows) if joint.rows else (joint.rate, joint.rate)
    out["gate_joint_rate_ci"] = [round(float(v), 4) for v in rate_ci]
    if joint.curve is not None and len(joint.curve):
        out["gate_joint_curve"] = curve_summary(joint.curve)
    r = joint.record or {}
    keys = ("status", "epochs_run", "steps_done", "rank", "accumulate", "prompts", "seconds")
    out["gate_joint_training"] = {k: r.get(k) for k in keys} | {"folder": joint.folder}
    return out


CURVE_COLUMNS = (
    ("gate_joint", "adapted", "gate_joint"),
    ("gate_joint_pooled", "adapted", "gate_joint_pooled"),
    ("snapkv_base", "base", "snapkv"),
    ("snapkv_adapted", "adapted", "snapkv"),
)


def curve_summary(curve) -> list[dict]:
    """One entry per fixed rate: the joint gate's accuracy (its top scores kept, adapted model)
    and SnapKV's on the base and the adapted model, pooled over settings by prompt, each with
    its Wilson interval; ``full_base`` is the base model with every key, the bar to meet."""
    out = []
    full = _pooled_rows(curve[(curve.model == "base") & (curve.method == "full")])
    for rate in sorted(curve.rate[curve.method != "full"].dropna().unique()):
        entry: dict = {"rate": float(rate)}
        for key, model, method in CURVE_COLUMNS:
            d = curve[(curve.model == model) & (curve.method == method) & (curve.rate == rate)]
            pooled = _pooled_rows(d)
            if pooled is not None:
                entry[key] = round(pooled[0], 4)
                entry[f"{key}_ci"] = accuracy_ci(*pooled)
        if full is not None:
            entry["full_base"] = round(full[0], 4)
        out.append(entry)
    return out


def _pooled_rows(d) -> tuple[float, int] | None:
    if not len(d):
        return None
    n = int(d.prompts.sum())
    return float((d.accuracy * d.prompts).sum() / n), n


def curve_lines(summary: dict) -> list[str]:
    """The report's table of the joint gate against SnapKV at fixed rates."""
    curve = summary.get("gate_joint_curve") or []
    if not curve:
        return []
    fmt = lambda e, k: with_ci(e[k], e.get(f"{k}_ci")) if k in e else "n/a"  # noqa: E731
    lines = [
        "",
        "At fixed rates, 95% intervals. Per head: the joint gate keeps the same share of "
        "every head's keys, its top-scoring ones; pooled: its top-scoring keys over all heads "
        "together, so it splits the budget between heads as its threshold does.",
        "",
        "| rate | joint gate, per head | joint gate, pooled | SnapKV (base) | SnapKV (adapted) | "
        "pooled minus full attention (base) |",
        "|---|---|---|---|---|---|",
    ]
    for e in curve:
        gap = e.get("gate_joint_pooled", float("nan")) - e.get("full_base", float("nan"))
        lines.append(
            f"| {e['rate']:.2f} | {fmt(e, 'gate_joint')} | {fmt(e, 'gate_joint_pooled')} | "
            f"{fmt(e, 'snapkv_base')} | {fmt(e, 'snapkv_adapted')} | {gap:+.3f} |"
        )
    return lines


def joint_lines(summary: dict) -> list[str]:
    """The report's section on the jointly trained gate, as measured."""
    if "gate_joint_accuracy" not in summary:
        return []
    s = summary
    ci = lambda key: with_ci(s[key], s.get(f"{key}_ci"))  # noqa: E731
    rate = s["gate_joint_rate"]
    t = s.get("gate_joint_training") or {}
    gain = s["gate_joint_accuracy"] - s.get("snapkv_joint_rate_accuracy", float("nan"))
    return [
        "",
        "## The gate trained jointly with LoRA adapters",
        "",
        f"Gates and rank-{t.get('rank')} LoRA adapters on q, k, v and o, trained together "
        f"from the distilled gate ({t.get('steps_done')} steps, status {t.get('status')}); "
        f"the adapted model and its gate are in `{Path(t.get('folder', 'joint')).name}/` "
        "beside this report. Held-out prompts, 95% intervals:",
        "",
        f"- base model, every key: {ci('accuracy_full')}",
        f"- adapted model, every key: {ci('accuracy_full_adapted')}",
        f"- adapted model, joint gate at its threshold: {ci('gate_joint_accuracy')}, "
        f"evicting {with_ci(rate, s.get('gate_joint_rate_ci'))} of the context",
        f"- SnapKV at that rate on the base model: {ci('snapkv_joint_rate_accuracy')}; "
        f"on the adapted model: {ci('snapkv_adapted_joint_rate_accuracy')}",
        f"- joint gate minus SnapKV on the base model: {gain:+.3f}"
        + (" (the intervals overlap)" if _overlap(s) else ""),
        *curve_lines(s),
    ]


def _overlap(s: dict) -> bool:
    a, b = s.get("gate_joint_accuracy_ci"), s.get("snapkv_joint_rate_accuracy_ci")
    return bool(a and b and a[0] <= b[1] and b[0] <= a[1])


def add_joint_traces(fig: go.Figure, joint: JointResult, settings: list[str]) -> None:
    """On each setting's panel: the adapted model's full attention as a dotted line, the joint
    gate and SnapKV at its rate (base model) as points with their intervals."""
    t = joint.table
    curve = joint.curve if joint.curve is not None else t.iloc[:0]
    for col, setting in enumerate(settings, start=1):
        for method, dash in ((GATE_JOINT, "dot"), ("gate_joint_pooled", "dash")):
            _add_curve(fig, curve, setting, method, dash, col)
        d = t[t.setting == setting]
        full = d[(d.model == "adapted") & (d.method == "full")]
        if len(full):
            fig.add_hline(
                y=float(full.accuracy.iloc[0]),
                line_dash="dot",
                line_color="purple",
                annotation_text="adapted, every key",
                col=col,
                row=1,
            )
        _add_points(fig, d, col)


def _add_curve(fig: go.Figure, curve, setting: str, method: str, dash: str, col: int) -> None:
    """The adapted model's gate at the fixed rates, with Wilson intervals."""
    c = curve[
        (curve.setting == setting) & (curve.model == "adapted") & (curve.method == method)
    ].sort_values("rate")
    if not len(c):
        return
    cis = [accuracy_ci(a, int(n)) for a, n in zip(c.accuracy, c.prompts)]
    fig.add_trace(
        go.Scatter(
            x=c.rate,
            y=c.accuracy,
            mode="lines+markers",
            name=f"{method} at fixed rates",
            line=dict(color="purple", dash=dash),
            error_y=dict(
                type="data",
                array=[hi - a for a, (_, hi) in zip(c.accuracy, cis)],
                arrayminus=[a - lo for a, (lo, _) in zip(c.accuracy, cis)],
            ),
            showlegend=col == 1,
        ),
        row=1,
        col=col,
    )


def _add_points(fig: go.Figure, d, col: int) -> None:
    """The joint gate at its own threshold and SnapKV (base model) at the rate it chose."""
    for model, method, colour in (("adapted", GATE_JOINT, "purple"), ("base", "snapkv", "grey")):
        p = d[(d.model == model) & (d.method == method)]
        if not len(p):
            continue
        acc, n = float(p.accuracy.iloc[0]), int(p.prompts.iloc[0])
        low, high = accuracy_ci(acc, n)
        name = GATE_JOINT if method == GATE_JOINT else "snapkv (base) at the joint rate"
        fig.add_trace(
            go.Scatter(
                x=[float(p.measured_rate.iloc[0])],
                y=[acc],
                mode="markers",
                name=name,
                marker=dict(
                    symbol="star" if method == GATE_JOINT else "diamond", size=12, color=colour
                ),
                error_y=dict(type="data", array=[high - acc], arrayminus=[acc - low]),
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
