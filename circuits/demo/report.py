"""The demo's run directory: the shots table and curve, the look inside one prompt, the
circuit's tables and figures under its own heading, one summary and one report."""

from __future__ import annotations

import pandas as pd
import plotly.express as px

from circuits.demo.choice import CircuitChoice
from circuits.icl_circuit.report import (
    CIRCUIT_SECTIONS,
    circuit_figures,
    circuit_report,
    circuit_tables,
)
from interp.analysis import Result
from interp.runs.figures import head_label, heatmap
from interp.runs.findings import below_chance_sentence, chance_level, sink_lines
from interp.tokens import shown_token


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
    tokens = attention.drop_duplicates("position").sort_values("position")
    names = {p: f"{p}:{shown_token(t)}" for p, t in zip(tokens.position, tokens.token)}
    att = attention.assign(
        row=[head_label(l, h) for l, h in zip(attention.layer, attention["head"])],
        key=attention.position.map(names),
    )
    grid = att.pivot(index="row", columns="key", values="weight")
    grid = grid.reindex(columns=[names[p] for p in tokens.position])
    grid.index.name, grid.columns.name = "head", "key position"
    return {
        "logit_lens": px.line(
            lens.assign(label=lens.label.map(shown_token)),
            x="layer",
            y="prob",
            color="label",
            markers=True,
            title="Logit lens at the query forerunner s_q: probability of each label",
        ),
        "query_attention": heatmap(
            grid,
            title="Attention from s_q, every layer and head (L0H0 at the bottom)",
            color="attention",
            scale="Blues",
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
    chance = {f: c for f in gains.index if (c := chance_level(f)) is not None}
    last = by_shots[by_shots.shots == max(shots)].set_index("task").accuracy
    # a gain that ends below chance is no learning (the warning below says so)
    learned = [f for f, g in gains.items() if g >= 0.2 and last[f] >= chance.get(f, 0.0)]
    cells = [(r.task, int(r.shots), float(r.accuracy)) for r in by_shots.itertuples()]
    warning = below_chance_sentence([c for c in cells if c[1] > 0], chance)
    lines += [
        "",
        (
            f"Learned in context (a gain of 0.2 or more from {min(shots)} to "
            f"{max(shots)} shots): {', '.join(learned)}."
            if learned
            else "No family gains 0.2 or more from its demonstrations."
        ),
        *(["", warning] if warning else []),
    ]
    answer = lens[lens.is_answer]
    first_layers = answer[answer["rank"] == 0].layer
    when = (
        f"ranks the answer first from layer {first_layers.min()} on"
        if len(first_layers)
        else "never ranks the answer first"
    )
    where = lambda r: f"position {r.position} `{r.token}` ({r.role or 'template'})"  # noqa: E731
    sinks, past = sink_lines(att, where)
    top = past.loc[past.groupby(["layer", "head"]).weight.idxmax()]
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
        *sinks,
        "Strongest attention from the query forerunner s_q"
        + (" past the sinks:" if sinks else ":"),
        "",
    ]
    for _, r in top.iterrows():
        lines.append(f"- {head_label(r['layer'], r['head'])} -> {where(r)}, weight {r.weight:.2f}")
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

    def __init__(self, model, by_shots, text, lens, attention, suite, families, choice, circuit):
        self.model, self.by_shots, self.text = model, by_shots, text
        self.lens, self.attention = lens, attention
        self.suite, self.families = suite, families
        self.choice: CircuitChoice = choice
        self.task = choice.task
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

    def figure_sections(self) -> dict[str, str]:
        own = {
            "icl_curve": "Held-out evaluation",
            "logit_lens": "One prompt",
            "query_attention": "One prompt",
        }
        return own | CIRCUIT_SECTIONS

    def summary(self) -> dict:
        summary = _eval_summary(self.by_shots) | self.choice.summary()
        if self.circuit is not None:
            found = self.circuit["result"].summary()
            summary.update({f"circuit_{k}": v for k, v in found.items()})
        return summary

    def report(self, summary: dict) -> str:
        report = _report(self.model, self.by_shots, self.text, self.lens, self.attention)
        # the choice belongs to the evaluation: it reads that table, before the prompt inside
        head, sep, rest = report.partition("\n## One prompt, inside")
        ran = "runs" if self.circuit is not None else "(left out by --no-pipeline) would run"
        chose = f"The ICL circuit {ran} on `{self.task}`: {self.choice.why}.\n"
        report = head.rstrip("\n") + "\n\n" + chose + sep + rest
        if self.circuit is not None:
            c = self.circuit
            found = c["result"].summary()
            report += "\n" + circuit_report(
                c["result"], found, self.model, self.task, 4, c["prompts"], c["m"], level=2
            )
        return report
