"""Block relevance's run directory: its tables, figures and report, written from the numbers.

:class:`BlockRelevanceRun` is what :class:`~circuits.block_relevance.analysis.
BlockRelevanceAnalysis` returns. The figures are read on held-out prompts only (the best head
is picked on the others), and the report states chance precision@1 before any measure, so a
head that merely looks good on few documents can be told from one that beats chance.
"""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go

from circuits.block_relevance.intervals import RESAMPLES, row_ci
from circuits.block_relevance.result import MEAN_HEAD, VARIANTS, BlockRelevanceResult
from circuits.icl_circuit.report import with_ci
from interp.analysis import Result
from interp.runs.figures import heatmap

TABLES = ("heads", "position", "prompts")
DOCUMENT_LABELS = {
    "test": "all documents",
    "seen": "seen documents",
    "unseen": "unseen documents",
}
"""How the figures name the held-out prompt sets."""


def block_relevance_figures(result: BlockRelevanceResult) -> dict[str, go.Figure]:
    """Precision@1 by layer and head (raw and calibrated), by layer for the head-averaged
    relevance, the position bias, and one held-out prompt's documents at the best head."""
    figs: dict[str, go.Figure] = {}
    test = result.heads.query("split == 'test'")
    for variant in ("raw", "calibrated"):
        grid = test.query("variant == @variant and head >= 0").pivot(
            index="layer", columns="head", values="p_at_1"
        )
        figs[f"p_at_1_{variant}"] = heatmap(
            grid,
            zmin=0,
            zmax=1,
            color="precision@1",
            title=f"Precision@1 per layer and head ({variant}, held-out prompts)",
        )
    heads = result.heads
    mean = heads[(heads["head"] == MEAN_HEAD) & heads.split.isin(list(DOCUMENT_LABELS))].copy()
    mean["documents"] = mean.split.map(DOCUMENT_LABELS)
    mean["above"] = mean.p_at_1_high - mean.p_at_1  # error bars: the 95% interval
    mean["below"] = mean.p_at_1 - mean.p_at_1_low
    figs["by_layer"] = px.line(
        mean,
        x="layer",
        y="p_at_1",
        color="variant",
        line_dash="documents",
        error_y="above",
        error_y_minus="below",
        markers=True,
        category_orders={"documents": list(DOCUMENT_LABELS.values())},
        title="Precision@1 of the head-averaged relevance per layer, with 95% intervals "
        "(held-out prompts: all, seen and unseen documents)",
    )
    if result.trained_layer is not None:
        figs["by_layer"].add_vline(
            x=result.trained_layer, line_dash="dot", annotation_text="trained layer"
        )
    pos = result.position.query("variant == 'raw'").groupby("position").share.mean()
    figs["position_bias"] = px.bar(
        x=pos.index,
        y=pos.values,
        labels={"x": "document position", "y": "share ranked first"},
        title="How often each position is ranked first, mean over heads (raw)",
    )
    first = result.prompts.prompt.min() if len(result.prompts) else 0
    one = result.prompts.query("prompt == @first")
    if len(one):
        figs["prompt_bars"] = px.bar(
            one,
            x="doc_id",
            y="relevance",
            color="gold",
            title=f"Prompt {first}: relevance at the best head; decoded {one.decoded.iloc[0]}",
        )
    return figs


def block_relevance_report(
    result: BlockRelevanceResult, summary: dict, model: str, task: str, prompts: int
) -> str:
    """The markdown report, every sentence written from the numbers."""
    half = prompts // 2
    bias = summary["positional_heads"]
    heads = result.heads
    mean = heads[(heads.split == "test") & (heads.variant == "raw") & (heads["head"] == MEAN_HEAD)]
    best_mean = mean.loc[mean.p_at_1.idxmax()]
    lines = [
        f"# Block relevance: {model} on `{task}`",
        "",
        f"{prompts} prompts: the best layer and head are picked on the first {half} and "
        f"measured on the other {prompts - half} ({summary['seconds']:.1f} s). Chance "
        f"precision@1 is {bias['raw']['chance']:.2f}.",
        "",
        "## Precision@1 by layer and head",
        "",
        "| measure | held-out value [95% interval] |",
        "|---|---|",
        f"| decoded answer, precision@1 | {_shown(summary, 'p_at_1_decoded')} |",
        f"| decoded under the block-sparse mask | {_shown(summary, 'p_at_1_block_sparse')} |",
        f"| best head L{summary['best_layer']}H{summary['best_head']}: precision@1 | "
        f"{_shown(summary, 'p_at_1_best')} |",
        f"| best head: MRR | {_shown(summary, 'mrr_best')} |",
        f"| best head: nDCG@10 | {_shown(summary, 'ndcg10_best')} |",
        f"| calibrated, best head L{summary['best_calibrated'][0]}"
        f"H{summary['best_calibrated'][1]} | {_shown(summary, 'p_at_1_calibrated')} |",
        f"| relevance under the block-sparse mask, best head | "
        f"{_shown(summary, 'p_at_1_block_sparse_relevance')} |",
        f"| head-averaged relevance, best layer {int(best_mean.layer)} | "
        f"{with_ci(best_mean.p_at_1, _row_ci(best_mean))} |",
    ]
    if "trained_layer" in summary:
        at = summary["trained_layer"]
        for metric, name in (("p_at_1", "precision@1"), ("mrr", "MRR"), ("ndcg10", "nDCG@10")):
            lines.append(
                f"| head-averaged at the trained layer {at} (block-sparse): {name} | "
                f"{_shown(summary, f'{metric}_trained_layer_block_sparse')} |"
            )
    lines += [
        "",
        "Intervals: precision@1 is a share of prompts (Wilson interval); MRR and nDCG@10 are "
        f"means over prompts (seeded bootstrap, {RESAMPLES} resamples of the prompts).",
    ]
    lines += documents_lines(summary)
    lines += ["", "## Position bias", ""]
    for variant, b in bias.items():
        lines.append(
            f"- {variant}: {b['first']} of {b['heads']} heads rank the first document first on "
            f"more than half of the prompts, {b['last']} the last one."
        )
    prompts_table = result.prompts
    if len(prompts_table):
        first = prompts_table.prompt.min()
        one = prompts_table[prompts_table.prompt == first]
        gold = one[one.gold].doc_id.tolist()
        lines += [
            "",
            "## One held-out prompt",
            "",
            f"Prompt {first}: each document's relevance at the best head; gold document "
            f"{', '.join(map(str, gold)) or '-'}, decoded answer {one.decoded.iloc[0]}.",
        ]
    return "\n".join(lines) + "\n"


def _shown(summary: dict, key: str) -> str:
    """``0.810 [0.72, 0.88]``: a summary value with its interval ``<key>_ci``; ``-`` when it
    was not measured."""
    value = summary.get(key)
    if value is None:
        return "-"
    return with_ci(value, summary.get(f"{key}_ci"))


def _row_ci(row) -> list[float] | None:
    return row_ci(row, "p_at_1")


def documents_lines(summary: dict) -> list[str]:
    """The section on seen and unseen documents: where the split comes from, then precision@1
    on each set side by side."""
    docs = summary.get("documents")
    lines = ["", "## Seen and unseen documents", ""]
    unit = "documents" if docs is None else docs.get("pool", "documents")
    if docs is None:
        return lines + [
            "This family has no document pool to split: precision@1 is measured on the "
            "held-out prompts above only."
        ]
    where = {
        "training record": "the documents this model's BlockRank training kept out",
        "default split": f"a split of the pool by seed {docs['seed']} (this model was not "
        "trained with BlockRank, so both sets are new to it)",
        "trained on the whole pool": "none: this model was trained on every document, so "
        "no unseen precision@1 is measured",
    }[docs["source"]]
    lines += [
        f"{docs['prompts']} more held-out prompts built only from the {docs['train']} training "
        f"{unit} (seen) and {docs['prompts']} built only from the {docs['unseen']} unseen "
        f"{unit}; unseen {unit}: {where}.",
        "",
        "| measure [95% interval] | seen documents | unseen documents |",
        "|---|---|---|",
    ]
    trained = "trained_layer" in summary
    headline = (
        f"head-averaged at the trained layer {summary['trained_layer']} (block-sparse)"
        if trained
        else f"best head L{summary['best_layer']}H{summary['best_head']}"
    )
    rows = [(f"**{headline}**", "p_at_1_{}")]
    if trained:
        rows.append(
            (f"best head L{summary['best_layer']}H{summary['best_head']}", "p_at_1_best_{}")
        )
        rows += [
            (f"head-averaged at the trained layer ({v})", f"p_at_1_trained_layer_{v}_{{}}")
            for v in VARIANTS
            if v != "block_sparse"
        ]
    rows.append(("decoded answer", "p_at_1_decoded_{}"))
    for label, key in rows:
        lines.append(
            f"| {label} | {_shown(summary, key.format('seen'))} | "
            f"{_shown(summary, key.format('unseen'))} |"
        )
    return lines


class BlockRelevanceRun(Result):
    """Block relevance's result as a run directory reads it (see
    :class:`~interp.analysis.Result`); ``model`` is the name the run was asked for."""

    def __init__(self, result: BlockRelevanceResult, model: str, task: str, prompts: int) -> None:
        self.result, self.model, self.task, self.prompts = result, model, task, prompts

    def tables(self) -> dict:
        return {name: getattr(self.result, name) for name in TABLES}

    def figures(self) -> dict[str, go.Figure]:
        return block_relevance_figures(self.result)

    def figure_sections(self) -> dict[str, str]:
        return {
            "p_at_1_raw": "Precision@1",
            "p_at_1_calibrated": "Precision@1",
            "by_layer": "Precision@1",
            "position_bias": "Position bias",
            "prompt_bars": "One held-out prompt",
        }

    def summary(self) -> dict:
        return self.result.summary()

    def report(self, summary: dict) -> str:
        return block_relevance_report(self.result, summary, self.model, self.task, self.prompts)
