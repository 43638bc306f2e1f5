"""``run_block_relevance``: block relevance (METHODS.md section 5) written as a run directory.

The analysis lives in :mod:`circuits.block_relevance`; this module turns its result into
tables, figures, a summary and a report (kind ``block-relevance``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import plotly.express as px
import plotly.graph_objects as go

from circuits.block_relevance import MEAN_HEAD, BlockRelevance, BlockRelevanceResult
from interp.errors import IclscopeError
from interp.models import load_model
from interp.patching.executor import recorded
from interp.runs.store import RunWriter
from interp.tasks.suite import get_family

TABLES = ("heads", "position", "prompts")
BLOCKRANK_RECORD = "blockrank.json"
"""The training record ``iclscope train blockrank`` leaves in the model folder it writes."""


def trained_layer(model_path: str) -> int | None:
    """The layer a BlockRank fine-tuned folder was trained at, else ``None``."""
    record = Path(model_path) / BLOCKRANK_RECORD
    if not record.is_file():
        return None
    return int(json.loads(record.read_text())["layer"])


def run_block_relevance(
    out: str | Path,
    model: str = "smollm2",
    task: str = "nl_ranking_lexical",
    prompts: int = 48,
    docs: int = 10,
    rows: int = 2,
    seed: int = 0,
    log: Callable[[str], object] = print,
    backend: str = "transformer_lens",
    chunk: int = 16,
    executor=None,
) -> Path:
    """Run :class:`~circuits.block_relevance.BlockRelevance` and write a run directory under
    ``out``; return its path. Both backends read the same relevance (``circuits.
    block_relevance.hook``): the scores on TransformerLens, the pattern on nnsight. The chunks
    of ``chunk`` prompts run on ``executor`` (default: the enclosing ``using`` block's, else
    here; Ray workers load the model by its folder, a BlockRank folder too), and the manifest
    records it."""
    fam = get_family(task)
    if fam.kind != "ranking":  # refuse before a run directory exists for nothing
        raise IclscopeError(
            f"block relevance runs on ranking families, not {task!r} ({fam.kind})",
            fix="use --task nl_ranking_lexical or --task nl_ranking_semantic",
        )
    params = {"prompts": prompts, "docs": docs, "rows": rows, "backend": backend, "chunk": chunk}
    with RunWriter(
        out,
        kind="block-relevance",
        model=model,
        task=task,
        seed=seed,
        command=sys.argv,
        params=params,
    ) as run:
        m = load_model(model, backend=backend)
        analysis = BlockRelevance(prompts=prompts, docs=docs, rows=rows, seed=seed, chunk=chunk)
        # a failed run still records its retries and unfinished chunks
        with recorded(executor, run.executor) as executor:
            result = analysis.run(
                m, task, log=log, trained_layer=trained_layer(m.path), executor=executor
            )
        for name in TABLES:
            run.table(name, getattr(result, name))
        for name, fig in block_relevance_figures(result).items():
            run.figure(name, fig)
        summary = result.summary()
        run.summary(summary)
        run.report(block_relevance_report(result, summary, model, task, prompts))
    log(str(run.path))
    return run.path


def block_relevance_estimate(
    model: str,
    task: str,
    prompts: int,
    docs: int,
    seed: int,
    chunk: int = 16,
    workers: int = 1,
):
    """What :func:`run_block_relevance` will cost per worker (:class:`~interp.patching.memory.
    WorkEstimate`), from the tokenizer, the config and the prompts alone: the chunks are the
    analysis's own (:class:`~circuits.block_relevance.analysis.RelevanceChunks`), built as the
    model's prompt builder builds them, each three forward passes."""
    from transformers import AutoConfig, AutoTokenizer

    from circuits.block_relevance.analysis import FORWARDS_PER_CHUNK, prompt_floats
    from interp.models import resolve_spec
    from interp.models.gguf_cache import prepend_bos
    from interp.models.hooked import ModelConfig
    from interp.patching.memory import estimate_work, weights_gb
    from interp.prompts import PromptBuilder

    folder, _ = resolve_spec(model)
    cfg = ModelConfig.from_hf(model, AutoConfig.from_pretrained(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # the builder HookedModel.prompt_builder() makes, without loading the model
    builder = PromptBuilder(tokenizer, n_ctx=cfg.n_ctx, prepend_bos=prepend_bos(folder))
    analysis = BlockRelevance(prompts=prompts, docs=docs, seed=seed, chunk=chunk)
    work = analysis.chunks(folder, "transformer_lens", task)
    sizes = []
    for index in range(work.count()):
        batch, free = work.batches(builder, index)
        sizes.append((len(batch), max(batch.tokens.shape[1], free.tokens.shape[1])))
    return estimate_work(
        sizes,
        lambda n_pos: prompt_floats(cfg, n_pos),
        FORWARDS_PER_CHUNK,
        "per chunk: as it is, with a content-free query, under the block-sparse mask",
        weights_gb(folder),
        "one forward's activations: scores and pattern at batch x heads x pos^2, logits",
        "--chunk (prompts per forward pass)",
        workers,
    )


def block_relevance_figures(result: BlockRelevanceResult) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    test = result.heads.query("split == 'test'")
    for variant in ("raw", "calibrated"):
        grid = test.query("variant == @variant and head >= 0").pivot(
            index="layer", columns="head", values="p_at_1"
        )
        figs[f"p_at_1_{variant}"] = px.imshow(
            grid,
            origin="lower",
            aspect="auto",
            zmin=0,
            zmax=1,
            color_continuous_scale="Viridis",
            labels={"color": "precision@1"},
            title=f"Precision@1 per layer and head ({variant}, held-out prompts)",
        )
    mean = test[test["head"] == MEAN_HEAD]
    figs["by_layer"] = px.line(
        mean,
        x="layer",
        y="p_at_1",
        color="variant",
        markers=True,
        title="Precision@1 of the head-averaged relevance per layer (held-out prompts)",
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
        "| measure | held-out value |",
        "|---|---|",
        f"| decoded answer, precision@1 | {summary['p_at_1_decoded']:.3f} |",
        f"| decoded under the block-sparse mask | {summary['p_at_1_block_sparse']:.3f} |",
        f"| best head L{summary['best_layer']}H{summary['best_head']}: precision@1 | "
        f"{summary['p_at_1_best']:.3f} |",
        f"| best head: MRR / nDCG@10 | {summary['mrr_best']:.3f} / {summary['ndcg10_best']:.3f} |",
        f"| calibrated, best head L{summary['best_calibrated'][0]}"
        f"H{summary['best_calibrated'][1]} | {summary['p_at_1_calibrated']:.3f} |",
        f"| relevance under the block-sparse mask, best head | "
        f"{summary['p_at_1_block_sparse_relevance']:.3f} |",
        f"| head-averaged relevance, best layer {int(best_mean.layer)} | {best_mean.p_at_1:.3f} |",
    ]
    if "trained_layer" in summary:
        lines.append(
            f"| head-averaged at the trained layer {summary['trained_layer']} "
            f"(block-sparse) | {summary['p_at_1_trained_layer_block_sparse']:.3f} |"
        )
    lines += ["", "## Position bias", ""]
    for variant, b in bias.items():
        lines.append(
            f"- {variant}: {b['first']} of {b['heads']} heads rank the first document first on "
            f"more than half of the prompts, {b['last']} the last one."
        )
    return "\n".join(lines) + "\n"
