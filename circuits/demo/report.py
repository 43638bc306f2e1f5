"""The demo's run directory: the shots table and curve, the look inside one prompt, the
circuit's tables and figures under its own heading, one summary and one report."""

from __future__ import annotations

import pandas as pd
import plotly.express as px

from circuits.icl_circuit.report import circuit_figures, circuit_report, circuit_tables
from interp.analysis import Result


def _eval_summary(by_shots: pd.DataFrame) -> dict:
    """Per family: 0-shot and 8-shot accuracy and the gain between them."""
    out = {}
    for fam, rows in by_shots.groupby("task", sort=False):
        acc = dict(zip(rows.shots, rows.accuracy))
        lo, hi = acc.get(0), acc.get(max(acc))
        out[f"{fam}_0shot"], out[f"{fam}_{max(acc)}shot"] = lo, hi
        out[f"{fam}_icl_gain"] = hi - lo
    return out


def _look_figures(lens: pd.DataFrame, attention: pd.DataFrame) -> dict:
    row = "L" + attention["layer"].astype(str) + "H" + attention["head"].astype(str)
    grid = attention.assign(row=row).pivot(index="row", columns="position", values="weight")
    tokens = attention.drop_duplicates("position").sort_values("position")
    return {
        "logit_lens": px.line(
            lens,
            x="layer",
            y="prob",
            color="label",
            markers=True,
            title="Logit lens at the query forerunner s_q: probability of each label",
        ),
        "query_attention": px.imshow(
            grid,
            aspect="auto",
            color_continuous_scale="Blues",
            labels={"x": "key position", "y": "head", "color": "attention"},
            x=[f"{p}:{t}" for p, t in zip(tokens.position, tokens.token)],
            title="Attention from s_q, every layer and head",
        ),
    }


def _report(
    model: str, by_shots: pd.DataFrame, text: str, lens: pd.DataFrame, att: pd.DataFrame
) -> str:
    shots = sorted(by_shots.shots.unique())
    lines = [
        f"# iclscope demo: {model}",
        "",
        "## Held-out evaluation",
        "",
        "Accuracy of the first answer token, by number of demonstrations "
        "(classification: argmax over the prompt's label words).",
        "",
        "| family | kind | " + " | ".join(f"{k}-shot" for k in shots) + " |",
        "|---|---|" + "---|" * len(shots),
    ]
    for fam, rows in by_shots.groupby("task", sort=False):
        cells = " | ".join(f"{a:.3f}" for a in rows.sort_values("shots").accuracy)
        lines.append(f"| {fam} | {rows.kind.iloc[0]} | {cells} |")
    gains = by_shots.pivot(index="task", columns="shots", values="accuracy")
    gains = (gains[max(shots)] - gains[min(shots)]).sort_values(ascending=False)
    learned = [f for f, g in gains.items() if g >= 0.2]
    lines += [
        "",
        (
            f"Learned in context (a gain of 0.2 or more from {min(shots)} to "
            f"{max(shots)} shots): {', '.join(learned)}."
            if learned
            else "No family gains 0.2 or more from its demonstrations."
        ),
    ]
    answer = lens[lens.is_answer]
    first_layers = answer[answer["rank"] == 0].layer
    when = (
        f"ranks the answer first from layer {first_layers.min()} on"
        if len(first_layers)
        else "never ranks the answer first"
    )
    top = att.loc[att.groupby(["layer", "head"]).weight.idxmax()]
    top = top.sort_values("weight", ascending=False).head(5)
    lines += [
        "",
        "## One prompt, inside",
        "",
        "```",
        text,
        "```",
        "",
        f"The logit lens {when} "
        f"(0 = embeddings; probability at the last layer "
        f"{answer.prob.iloc[-1]:.3f}).",
        "",
        "Strongest attention from the query forerunner s_q:",
        "",
    ]
    for _, r in top.iterrows():
        lines.append(
            f"- L{r['layer']}H{r['head']} -> position {r.position} `{r.token}` "
            f"({r.role or 'template'}), weight {r.weight:.2f}"
        )
    return "\n".join(lines) + "\n"


def shots_table(result: dict) -> pd.DataFrame:
    """:func:`~interp.tasks.evaluate.evaluate_model`'s result as one row per family and shot
    count."""
    return pd.DataFrame(
        [
            {"task": fam, "kind": r["kind"], "shots": int(k), "accuracy": acc}
            for fam, r in result["families"].items()
            for k, acc in r["shots"].items()
        ]
    )


class DemoRun(Result):
    """The demo as a run directory reads it. ``circuit``: the ICL circuit's result with what
    its report needs (``None`` without the circuit)."""

    def __init__(self, model, by_shots, text, lens, attention, suite, families, task, circuit):
        self.model, self.by_shots, self.text = model, by_shots, text
        self.lens, self.attention = lens, attention
        self.suite, self.families, self.task = suite, families, task
        self.circuit = circuit

    def params(self) -> dict:
        return {"suite": self.suite, "families": list(self.families), "circuit_task": self.task}

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {
            "eval_by_shots": self.by_shots,
            "logit_lens": self.lens,
            "query_attention": self.attention,
        }
        if self.circuit is not None:
            tables |= circuit_tables(self.circuit["result"])
        return tables

    def figures(self) -> dict:
        figs = {
            "icl_curve": px.line(
                self.by_shots,
                x="shots",
                y="accuracy",
                color="task",
                markers=True,
                title="Accuracy by number of demonstrations",
                range_y=[0, 1.02],
            ),
            **_look_figures(self.lens, self.attention),
        }
        if self.circuit is not None:
            figs |= circuit_figures(self.circuit["result"])
        return figs

    def summary(self) -> dict:
        summary = _eval_summary(self.by_shots)
        if self.circuit is not None:
            found = self.circuit["result"].summary()
            summary.update({f"circuit_{k}": v for k, v in found.items()})
        return summary

    def report(self, summary: dict) -> str:
        report = _report(self.model, self.by_shots, self.text, self.lens, self.attention)
        if self.circuit is not None:
            c = self.circuit
            found = c["result"].summary()
            report += "\n" + circuit_report(
                c["result"], found, self.model, self.task, 4, c["prompts"], c["m"], level=2
            )
        return report
