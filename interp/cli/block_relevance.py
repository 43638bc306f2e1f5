"""``iclscope run block-relevance`` and ``train blockrank`` (``docs/analyses/block-relevance.md``).

Both check their inputs (output folder, model, a ranking family the tokenizer can build)
before anything heavy loads, so a mistake leaves the runs folder as it was. Both declare the
ranking family and the documents per prompt with the same option pieces, so their help and
ranges cannot drift apart. The run builds its config from the options and hands it to the one
runner (:func:`~interp.analysis.run_analysis`); the training is no analysis run: it writes a
model folder, which the run then takes as --model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from interp.analysis.runner import ExecutionOptions
from interp.cli import checks, options
from interp.cli.app import log, run_app, train_app
from interp.cli.options import Backend
from interp.cli.running import run_command

RANKING_HELP = "A ranking family: nl_ranking_lexical or nl_ranking_semantic."


def ranking_task() -> Any:
    return typer.Option("nl_ranking_lexical", help=RANKING_HELP)


def documents() -> Any:
    return typer.Option(10, min=2, max=10, help="Documents per prompt.")


def _check_ranking(out: Path, model: str, task: str, docs: int) -> str:
    checks.output_folder(out)
    family = checks.task(task, kind="ranking")
    folder = checks.model_folder(model)
    checks.prompts(folder, model, [family.name], [docs], option="--docs")
    return folder


@run_app.command(
    "block-relevance", short_help="Rank documents by each layer's and head's attention."
)
@options.execution_options(options.DRY_RUN_CHUNKS_HELP)
@options.task_file_options()
def run_block_relevance_command(
    model: str = options.model(),
    task: str = ranking_task(),
    prompts: int = typer.Option(
        48,
        min=4,
        help="Prompts: the first half picks the best layer and head, the rest measure it.",
    ),
    docs: int = documents(),
    rows: int = typer.Option(2, min=1, max=4, help="Last query rows read ('[' and before)."),
    seed: int = options.seed(),
    out: Path = options.out_folder(),
    backend: Backend = typer.Option("transformer_lens", help="The hooked backend."),
    chunk: int = options.count(16, "Prompts per forward pass (three passes per chunk)."),
    execution: ExecutionOptions = None,
    estimate: options.DryRunOptions = None,
):
    """Rank the documents of each prompt by every layer's and head's attention (block
    relevance, raw and calibrated, and under the block-sparse mask) beside the decoded answer;
    write the metric by layer and head, the best head, relevance bars and a report.

    With --executor ray, the chunks of prompts (three forward passes each) run on the Ray
    workers, each loading the model once by its folder (a BlockRank folder too)."""
    _check_ranking(out, model, task, docs)
    from circuits.block_relevance.analysis import BlockRelevanceAnalysis, BlockRelevanceConfig

    config = BlockRelevanceConfig(
        seed=seed, prompts=prompts, docs=docs, rows=rows, backend=backend, chunk=chunk
    )
    run_command(BlockRelevanceAnalysis(), config, locals())


@train_app.command(
    "blockrank",
    short_help="BlockRank: LoRA fine-tuning that sharpens attention to the gold document.",
)
@options.task_file_options()
def train_blockrank_command(
    out: Path = typer.Option(..., help="Folder to write the adapted model into."),
    model: str = options.model(),
    task: str = ranking_task(),
    layer: int | None = typer.Option(None, min=0, help="Trained layer l* [60% of depth]."),
    cut: int | None = typer.Option(None, min=0, help="First adapted layer [layer - 4]."),
    rank: int = typer.Option(8, min=1, help="LoRA rank."),
    steps: int = options.count(60, "Optimiser steps."),
    batch: int = options.count(4, "Prompts per step."),
    micro_batch: int | None = typer.Option(
        None, min=1, help="Prompts per forward/backward, accumulated into one step [--batch]."
    ),
    lr: float = options.positive(2e-3, "Learning rate."),
    aux_weight: float = typer.Option(1.0, min=0.0, help="Weight of the contrastive loss."),
    docs: int = documents(),
    max_minutes: float | None = typer.Option(None, min=0.1, help="Stop after this long."),
    seed: int = options.seed(),
):
    """BlockRank fine-tuning: LoRA on the attention above a cut, trained with the answer loss
    and a contrastive loss on the middle layer's attention to the gold document, under the
    block-sparse mask; saves a model folder that --model loads."""
    _check_ranking(out, model, task, docs)
    from circuits.block_relevance.train import BlockRankTrainer, train_blockrank

    trainer = BlockRankTrainer(
        layer=layer,
        cut=cut,
        rank=rank,
        lr=lr,
        steps=steps,
        batch=batch,
        micro_batch=micro_batch,
        docs=docs,
        aux_weight=aux_weight,
        seed=seed,
        max_minutes=max_minutes,
    )
    train_blockrank(model, task, out, trainer, log=log)
    print(out)
