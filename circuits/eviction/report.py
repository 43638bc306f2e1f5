"""Eviction's run directory: accuracy curves, per-head heatmaps, the token view, the summary
and a report that says where the gate stands against full attention and the training-free
methods, as measured."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from circuits.eviction.evaluate import GATE, GATE_POOLED, GATE_WINDOW, EvictionResult
from circuits.eviction.joint_report import add_joint_traces, joint_lines, joint_summary
from circuits.eviction.joint_run import JointResult
from interp.analysis import Result
from interp.runs.figures import layer_head_heatmap
from interp.stats import accuracy_ci, bootstrap_ci, with_ci
from interp.tokens import shown_token


def pooled_accuracy(curves: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (method, rate) pooled over settings by prompt: ``acc`` and ``n`` prompts."""
    d = curves.assign(hits=curves.accuracy * curves.prompts)
    out = d.groupby(["method", "rate"]).agg(hits=("hits", "sum"), n=("prompts", "sum"))
    return out.assign(acc=out.hits / out.n).reset_index()


def eviction_summary(
    result: EvictionResult, seconds: float, record: dict | None, joint: JointResult | None = None
) -> dict:
    """The summary keys: ``accuracy_full``, ``by_method`` (method -> rate -> accuracy), pooled
    over settings by prompt; ``gate_rate``/``gate_accuracy`` at the gate's own threshold. Every
    accuracy has its 95% Wilson interval over prompts beside it (``<key>_ci``; ``by_method_ci``
    and ``by_setting_ci`` mirror their tables); ``gate_rate_ci`` is a bootstrap over prompts
    of each prompt's measured rate. With a jointly trained gate, the keys of
    :func:`~circuits.eviction.joint_report.joint_summary` besides."""
    c = result.curves
    acc = pooled_accuracy(c)
    full = acc.query("method == 'full'").iloc[0]
    by_method: dict = {}
    by_method_ci: dict = {}
    for row in acc.query("method != 'full'").itertuples():
        by_method.setdefault(row.method, {})[str(row.rate)] = round(float(row.acc), 4)
        by_method_ci.setdefault(row.method, {})[str(row.rate)] = accuracy_ci(row.acc, int(row.n))
    g = result.gate
    n = {s: int(c.query("setting == @s and method == 'full'").prompts.iloc[0]) for s in g}
    pool = lambda key: sum(g[s][key] * n[s] for s in g) / sum(n.values()) if g else None  # noqa: E731
    by_setting, by_setting_ci = {}, {}
    for s in c.setting.unique():
        for m, d in c.query("setting == @s").groupby("method"):
            rows = list(zip(d.rate, d.accuracy, d.prompts))
            by_setting.setdefault(s, {})[m] = {str(r): round(float(a), 4) for r, a, _ in rows}
            by_setting_ci.setdefault(s, {})[m] = {
                str(r): accuracy_ci(a, int(k)) for r, a, k in rows
            }
    rows = [r for s in g for r in result.gate_rows.get(s, [])]
    gate_cis = {s: {**v, "accuracy_ci": accuracy_ci(v["accuracy"], n[s])} for s, v in g.items()}
    gate_accuracy = None if not g else round(pool("accuracy"), 4)
    return dict(
        accuracy_full=round(float(full.acc), 4),
        accuracy_full_ci=accuracy_ci(full.acc, int(full.n)),
        by_method=by_method,
        by_method_ci=by_method_ci,
        gate_rate=None if not g else round(pool("rate"), 4),
        gate_rate_ci=_pair(bootstrap_ci(rows)) if rows else None,
        gate_accuracy=gate_accuracy,
        gate_accuracy_ci=None if not g else accuracy_ci(gate_accuracy, sum(n.values())),
        by_setting=by_setting,
        by_setting_ci=by_setting_ci,
        gate_by_setting=gate_cis or None,
        gate_training=None
        if record is None
        else {
            k: record[k]
            for k in (
                "objective",
                "target_rate",
                "epochs_run",
                "prompts",
                "seconds",
                "total_seconds",
            )
        },
        seconds=round(seconds, 1),
    ) | joint_summary(joint)


def _pair(ci: tuple[float, float]) -> list[float]:
    return [round(float(v), 4) for v in ci]


def with_intervals(curves: pd.DataFrame) -> pd.DataFrame:
    """``curves`` with each accuracy's Wilson interval: ``low``, ``high`` and the error-bar
    lengths ``err_minus``, ``err_plus``."""
    cis = [accuracy_ci(a, int(k)) for a, k in zip(curves.accuracy, curves.prompts)]
    low = [lo for lo, _ in cis]
    high = [hi for _, hi in cis]
    return curves.assign(
        low=low, high=high, err_minus=curves.accuracy - low, err_plus=high - curves.accuracy
    )


def eviction_figures(result: EvictionResult, joint: JointResult | None = None) -> dict:
    """The accuracy curves (with the jointly trained gate's points where there is one), the
    per-head heatmaps at the middle rate, the token view."""
    figs: dict[str, go.Figure] = {}
    c = with_intervals(result.curves)
    curves = c.query("method != 'full'")
    figs["accuracy_vs_rate"] = px.line(
        curves,
        x="rate",
        y="accuracy",
        color="method",
        facet_col="setting",
        markers=True,
        error_y="err_plus",
        error_y_minus="err_minus",
        title="Accuracy against eviction rate, 95% intervals (dashed and shaded: every key kept)",
        range_y=[0, 1.02],
    )
    for row in c.query("method == 'full'").itertuples():
        col = list(c.setting.unique()).index(row.setting) + 1
        fig = figs["accuracy_vs_rate"]
        fig.add_hline(y=row.accuracy, line_dash="dash", col=col, row=1)
        fig.add_hrect(y0=row.low, y1=row.high, opacity=0.12, line_width=0, col=col, row=1)
    if joint is not None:
        add_joint_traces(figs["accuracy_vs_rate"], joint, list(c.setting.unique()))
    heads = result.by_head
    mid = sorted(r for r in heads.rate.dropna().unique())
    mid = mid[len(mid) // 2] if mid else None
    first = heads.setting.iloc[0] if len(heads) else None
    for method, d in heads[(heads.setting == first) & (heads.rate == mid)].groupby("method"):
        figs[f"heads_{method}"] = layer_head_heatmap(
            d,
            "attention_lost",
            title=f"{method} at rate {mid}: share of the final rows' attention on evicted keys",
            color="attention_lost",
            scale="Reds",
            zmin=0,
            zmax=1,
        )
    gate = heads[(heads.method == GATE) & heads.rate.isna() & (heads.setting == first)]
    if len(gate):
        figs["heads_gate_evicted"] = layer_head_heatmap(
            gate,
            "evicted",
            title="Gate at its threshold: share of context evicted per layer and head",
            scale="Blues",
            zmin=0,
            zmax=1,
        )
    t = result.tokens
    if len(t):
        t = t.query("setting == @t.setting.iloc[0]")
        grid = t.pivot(index="method", columns="pos", values="kept")
        words = t.pivot(index="method", columns="pos", values="token")
        figs["tokens_kept"] = go.Figure(
            go.Heatmap(
                z=grid.values,
                x=[f"{p}:{shown_token(w)}" for p, w in zip(grid.columns, words.iloc[0])],
                y=grid.index,
                zmin=0,
                zmax=1,
                text=words.map(shown_token).values,
                hovertemplate="%{y} %{text}: kept by %{z:.2f} of heads",
                colorscale="Greens",
            )
        )
        figs["tokens_kept"].update_layout(
            title="First prompt: share of (layer, head) keeping each token, at the middle rate"
        )
    return figs


def eviction_report(result: EvictionResult, summary: dict, model: str, task: str) -> str:
    """The markdown report: every setting's table, then the gate's verdict."""
    c = result.curves
    rates = sorted(r for r in c.rate.unique() if r > 0)
    lines = [
        f"# KV-cache eviction: {model} on `{task}`",
        "",
        f"Eviction simulated after the prefill: the query line's rows lose the evicted "
        f"keys, every earlier row saw every key. {summary['seconds']:.0f} s.",
        "",
    ]
    for setting, d in c.groupby("setting", sort=False):
        full = float(d.query("method == 'full'").accuracy.iloc[0])
        n = int(d.prompts.iloc[0])
        lines += [
            f"## {setting} ({n} prompts)",
            "",
            f"Every key kept: {with_ci(full, accuracy_ci(full, n))}. Accuracies with their "
            "95% Wilson intervals over prompts.",
            "",
            "| method | " + " | ".join(f"evict {r:g}" for r in rates) + " |",
            "|---" * (len(rates) + 1) + "|",
        ]
        for method, m in d.query("method != 'full'").groupby("method"):
            acc = {r: (a, k) for r, a, k in zip(m.rate, m.accuracy, m.prompts)}
            cells = [with_ci(acc[r][0], accuracy_ci(*acc[r])) if r in acc else "-" for r in rates]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        g = result.gate.get(setting)
        if g:
            lines += [
                "",
                f"Gate at its threshold: evicts {g['rate']:.3f} of the context, "
                f"accuracy {with_ci(g['accuracy'], accuracy_ci(g['accuracy'], n))}.",
            ]
        lines.append("")
    lines += _verdict(summary) + joint_lines(summary)
    return "\n".join(lines) + "\n"


def _verdict(summary: dict) -> list[str]:
    """Where each gate variant stands against full attention and the best training-free
    method at each rate, as measured; nothing is claimed that the numbers do not show."""
    by, cis = summary["by_method"], summary.get("by_method_ci", {})
    gates = [g for g in (GATE, GATE_WINDOW, GATE_POOLED) if g in by]
    if not gates:
        return ["No gate in this run."]
    out = ["## The gate against the baselines", ""]
    free = {m: v for m, v in by.items() if m not in gates}
    for gate in gates:
        for rate, acc in sorted(by[gate].items()):
            others = {m: v[rate] for m, v in free.items() if rate in v}
            best = max(others, key=others.get)
            verdict = "ahead or level" if acc >= others[best] else "behind"
            out.append(
                f"- {gate}, evict {rate}: {with_ci(acc, cis.get(gate, {}).get(rate))} (full "
                f"minus it {summary['accuracy_full'] - acc:+.3f}); best training-free {best} "
                f"{with_ci(others[best], cis.get(best, {}).get(rate))}: the gate is {verdict}"
            )
    return out


class EvictionRun(Result):
    """An eviction evaluation as a run directory reads it; ``record``: the training record of
    the gate trained inside the run (None for a loaded gate or none)."""

    TABLES = ("curves", "by_head", "tokens")

    def __init__(
        self, result: EvictionResult, seconds: float, record, model: str, task: str, joint=None
    ):
        self.result, self.seconds, self.record = result, seconds, record
        self.model, self.task, self.joint = model, task, joint

    def params(self) -> dict:
        return {"eviction": "after prefill: the query line's rows"}

    def tables(self) -> dict:
        tables = {name: getattr(self.result, name) for name in self.TABLES}
        if self.joint is not None:
            tables["joint"] = self.joint.table
            if self.joint.curve is not None:
                tables["joint_curve"] = self.joint.curve
        return tables

    def figures(self) -> dict[str, go.Figure]:
        return eviction_figures(self.result, self.joint)

    def figure_sections(self) -> dict[str, str]:
        """The curves, the per-head maps and the token view under the first setting (the one
        they draw, the curves' first panel); the gate's map under its verdict."""
        first = str(self.result.curves.setting.iloc[0]) if len(self.result.curves) else ""
        names = eviction_figures(self.result)
        out = {name: f"{first} (" for name in names}
        if "heads_gate_evicted" in names:
            out["heads_gate_evicted"] = "The gate against the baselines"
        return out

    def summary(self) -> dict:
        return eviction_summary(self.result, self.seconds, self.record, self.joint)

    def report(self, summary: dict) -> str:
        return eviction_report(self.result, summary, self.model, self.task)
