"""The ICL circuit's run directory: its tables, figures and report, written from the numbers.

:class:`CircuitRun` is what :class:`~circuits.icl_circuit.analysis.IclCircuitAnalysis` returns;
the demo reuses :func:`circuit_tables`, :func:`circuit_figures` and :func:`circuit_report` to put
the circuit inside its own report.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from circuits.icl_circuit import IclCircuitResult
from circuits.icl_circuit.figures import (  # noqa: F401 (re-exported: the demo imports them here)
    circuit_figures,
    random_control_figure,
)
from circuits.icl_circuit.seeds import combined_summary, seed_lines
from interp.analysis import Result
from interp.runs.findings import below_chance_sentence, chance_level

CIRCUIT_TABLES = (
    "step1",
    "step2_layers",
    "step2_heads",
    "step2_labels",
    "step3_heads",
    "step3_vanilla",
    "subspace",
    "ablation",
    "ablation_by_prompt",
)


def write_circuit(run, result: IclCircuitResult) -> None:
    """The circuit's tables and figures into a run directory that is not the circuit's own
    (the demo's, which writes its summary and report itself)."""
    for name, table in circuit_tables(result).items():
        run.table(name, table)
    for name, fig in circuit_figures(result).items():
        run.figure(name, fig)


def circuit_tables(result: IclCircuitResult) -> dict:
    """The result's tidy tables by name, as a run directory stores them."""
    return {name: getattr(result, name) for name in CIRCUIT_TABLES}


CIRCUIT_SECTIONS = {
    "step1_by_layer": "Step 1",
    "step2_heads": "Step 2",
    "step2_label_states": "Step 2",
    "step3_retrieval_heads": "Step 3",
    "step3_subspace": "Step 3",
    "ablation": "Ablations",
    "ablation_random_control": "Ablations",
}
"""Each circuit figure's report section (the start of its heading)."""


def band(depths: Sequence[int], values: Sequence[float], frac: float = 0.9) -> tuple[int, int]:
    """First and last index whose value reaches ``frac`` of the way from the minimum to the
    maximum: where a measure has (nearly) arrived, which is how the paper locates each step."""
    lo, hi = min(values), max(values)
    near = [d for d, v in zip(depths, values) if v >= lo + frac * (hi - lo)]
    return min(near), max(near)


def circuit_report(
    result: IclCircuitResult,
    summary: dict,
    model: str,
    task: str,
    shots: int,
    prompts: int,
    m: int = 64,
    level: int = 1,
) -> str:
    """The markdown report, every sentence written from the numbers; ``level`` 2 nests it
    under another report's title (the demo's)."""
    s1 = result.step1.query("position == 's_q' and measure == 'centroid'")
    x1 = result.step1.query("position == 'x_q' and measure == 'centroid'")
    a1 = result.step1.query("position == 's_q' and measure == 'align_text'")
    r1 = result.step1.query("position == 's_q' and measure == 'align_random'")
    b1 = band(s1.depth.tolist(), s1.value.tolist())
    s2 = result.step2_layers
    b2 = band(s2.layer.tolist(), s2.copy_magnitude.tolist())
    labels = result.step2_labels.pivot(index="depth", columns="labels", values="centroid")
    heads = result.step3_heads
    per_layer = heads.groupby("layer").label_acc.max()
    b3 = band(per_layer.index.tolist(), per_layer.tolist())
    vanilla = result.step3_vanilla
    best_l, best_h = summary["step3_best_head"]
    best = heads.query("layer == @best_l and head == @best_h").iloc[0]
    abl = result.ablation
    none = float(abl.query("edge == 'none'").acc.iloc[0])
    zero = float(abl.query("edge == 'k=0'").acc.iloc[0])
    rand = summary["random_drop"]
    accuracy = with_ci(summary.get("accuracy", none), summary.get("accuracy_ci"))
    zero_at = summary.get("accuracy_0shot", zero)
    zero_shot = with_ci(zero_at, summary.get("accuracy_0shot_ci"))
    seeds = summary.get("seeds", [])
    step1_acc = with_ci(
        summary["step1_best_centroid_acc"], summary.get("step1_best_centroid_acc_ci")
    )
    head_acc = with_ci(best.label_acc, summary.get("step3_best_head_label_acc_ci"))
    lines = [
        f"# ICL inference circuit: {model} on `{task}`",
        "",
        *accuracy_lines(zero_shot, accuracy, shots, summary.get("accuracy", none) <= zero_at),
        f"{prompts} prompts with {shots} shots ({summary['seconds']:.1f} s)"
        + (f", repeated for seeds {', '.join(map(str, seeds))}." if len(seeds) > 1 else ".")
        + _below_chance(task, shots, none),
        "",
        "## Step 1: summarize",
        "",
        f"The query's class is read from `h[s_q]` by nearest centroid best at depth "
        f"{summary['step1_best_layer']} "
        f"({step1_acc}); it reaches "
        f"90% of its rise at depths {b1[0]}-{b1[1]}. At the last input token the best is "
        f"{x1.value.max():.3f} (depth {int(x1.loc[x1.value.idxmax()].depth)}). Kernel "
        f"alignment with the text reference peaks at {a1.value.max():.3f} against "
        f"{r1.value.mean():.3f} for the random control"
        + (
            f" (with {prompts} prompts, m = {m} neighbours is every other prompt, so both are "
            "1 by construction: use more prompts)."
            if m >= prompts - 1
            else "."
        ),
        "",
        "## Step 2: semantics merge",
        "",
        f"Forerunner-token heads per layer: {', '.join(map(str, s2.forerunner_heads))}. The "
        f"copy magnitude peaks in layer {summary['step2_peak_layer']} "
        f"({s2.copy_magnitude.max():.3f}; band layers {b2[0]}-{b2[1]}). Label-token states "
        f"give the input class at best {labels['correct'].max():.3f} with correct labels and "
        f"{labels['wrong'].max():.3f} with every label wrong.",
        "",
        "## Step 3: retrieve and copy",
        "",
        f"Best retrieval head L{best_l}H{best_h}: label assignment accuracy "
        f"{head_acc}, p(gold) {best.p_gold:.3f} (mean over heads "
        f"{heads.p_gold.mean():.3f}); {int(heads.correctness_head.sum())} heads pass the "
        f"correctness threshold, best in layers {b3[0]}-{b3[1]}. From `s_q` it reads each "
        f"gold-label token with {best.per_gold_label:.3f} and each other label token with "
        f"{best.per_other_label:.3f} of its attention"
        f" ({_selectivity(best.per_gold_label, best.per_other_label)}). The vanilla baseline "
        f"cos(h[s_i], h[s_q]) reaches {vanilla.label_acc.max():.3f} (depth "
        f"{int(vanilla.loc[vanilla.label_acc.idxmax()].depth)}).",
        "",
        "## Ablations",
        "",
        f"On {summary.get('ablation_prompts', prompts)} of the prompts. {_control(summary)}",
        "",
        "| edge | largest drop [95% interval] | in range | × random | against random |",
        "|---|---|---|---|---|",
    ]
    ranked = sorted(summary["ablation_drop"].items(), key=lambda kv: -kv[1])
    above = summary.get("above_random", [])
    every = " in every seed" if len(seeds) > 1 else ""  # the rule across seeds: see seeds.py
    for edge, drop in ranked:
        rows = abl.query("edge == @edge")
        where = rows.loc[rows["drop"].idxmax(), "range"]
        ratio = f"{drop / rand:.1f}" if rand > 0 else ("inf" if drop > 0 else "-")
        shown = with_ci(drop, summary.get("ablation_drop_ci", {}).get(edge))
        verdict = "above random" + every if edge in above else "not distinguishable from random"
        lines.append(f"| {edge} | {shown} | {where} | {ratio} | {verdict} |")
    others = [e for e, _ in ranked if e not in above]
    lines += [
        "",
        (
            f"Knockouts whose drop is above random (its interval's lower bound clears the "
            f"control's 95th percentile{every}): {', '.join(above)}."
            if above
            else "No knockout's drop is distinguishable from random."
        )
        + (f" Not distinguishable from random: {', '.join(others)}." if above and others else ""),
    ]
    spread = seed_lines(summary, shots)
    lines += ["", *spread] if spread else []
    return _nest("\n".join(lines) + "\n", level)


def accuracy_lines(zero_shot: str, k_shot: str, shots: int, no_gain: bool) -> list[str]:
    """The report's first lines: the accuracy without and with the demonstrations, and, when
    the demonstrations do not raise it, a plain sentence saying what that means."""
    lines = [
        f"Accuracy at 0 shots {zero_shot}; at {shots} shots {k_shot} (on the ablation prompts; "
        "brackets: 95% intervals).",
        "",
    ]
    if no_gain:
        lines[1:1] = [
            "",
            f"**Demonstrations do not help on this task: 0-shot {zero_shot} vs {shots}-shot "
            f"{k_shot}; the circuit below dissects a model that does not need its context.**",
        ]
    return lines


def with_ci(value: float, ci: Sequence[float] | None, digits: int = 3) -> str:
    """``0.734 [0.68, 0.78]``: a number with its interval (the number alone without one)."""
    if ci is None:
        return f"{value:.{digits}f}"
    low, high = ci
    return f"{value:.{digits}f} [{low:.{digits - 1}f}, {high:.{digits - 1}f}]"


def _control(summary: dict) -> str:
    """The random-edge control in words: its draws, their spread and the bar to clear."""
    randoms = summary.get("random_drops")
    mean = with_ci(summary["random_drop"], summary.get("random_drop_ci"))
    if not randoms:
        return f"Largest accuracy drop of the random-edge control: {mean}."
    return (
        f"The random-edge control knocks out {len(randoms)} independently drawn sets of random "
        f"edges, each as large as the largest circuit row; their largest drops run from "
        f"{min(randoms):.3f} to {max(randoms):.3f} (95th percentile "
        f"{summary['random_drop_p95']:.3f}; averaged over the draws {mean}). An edge counts "
        "as above random only when the lower bound of its drop's interval is above that "
        "95th percentile."
    )


def _below_chance(task: str, shots: int, accuracy: float) -> str:
    """A sentence when the k-shot accuracy is below guessing among the prompt's labels."""
    sentence = below_chance_sentence([(task, shots, accuracy)], {task: chance_level(task)})
    return " " + sentence if sentence else ""


def _nest(markdown: str, level: int) -> str:
    """Every heading moved ``level - 1`` levels down."""
    extra = "#" * (level - 1)
    return "\n".join(
        extra + line if line.startswith("#") else line for line in markdown.split("\n")
    )


def _selectivity(gold: float, other: float) -> str:
    """How a head's attention to gold labels compares with other labels, in words."""
    if other <= 0:
        return "only gold labels" if gold > 0 else "no label at all"
    return f"{gold / other:.2f}x: " + ("selective" if gold >= 2 * other else "not selective")


class CircuitRun(Result):
    """The circuit's result as a run directory reads it (see :class:`~interp.analysis.Result`).
    ``others``: the results of the further seeds, in order (the tables and figures are the
    first seed's; the summary and the report add the spread across all of them)."""

    def __init__(
        self,
        result: IclCircuitResult,
        model: str,
        task: str,
        shots: int,
        prompts: int,
        m: int,
        seeds: Sequence[int] = (0,),
        others: Sequence[IclCircuitResult] = (),
    ) -> None:
        self.result, self.model, self.task = result, model, task
        self.shots, self.prompts, self.m = shots, prompts, m
        self.seeds, self.others = list(seeds), list(others)

    def tables(self) -> dict:
        return circuit_tables(self.result)

    def figures(self) -> dict[str, go.Figure]:
        return circuit_figures(self.result)

    def figure_sections(self) -> dict[str, str]:
        return CIRCUIT_SECTIONS

    def summary(self) -> dict:
        results = [self.result, *self.others]
        return combined_summary(self.seeds, [r.summary() for r in results])

    def report(self, summary: dict) -> str:
        return circuit_report(
            self.result, summary, self.model, self.task, self.shots, self.prompts, self.m
        )
