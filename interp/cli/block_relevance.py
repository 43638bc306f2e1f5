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


def unseen_share_option(help: str) -> Any:
    return typer.Option(None, help=help, show_default=False)


def unseen_seed_option() -> Any:
    return typer.Option(
        None,
        help="Seed of the split that picks the unseen documents [0].",
        show_default=False,
    )


def _check_ranking(out: Path, model: str, task: str, docs: int) -> tuple[str, str]:
    """The model's folder and the ranking family's name, once every input is checked."""
    checks.output_folder(out)
    family = checks.task(task, kind="ranking")
    folder = checks.model_folder(model)
    checks.prompts(folder, model, [family.name], [docs], option="--docs")
    return folder, family.name


def _check_training_split(task: str, docs: int, share: float | None, seed: int | None):
    """``train blockrank``'s split as the trainer takes it, ``(unseen_share, split_seed)``
    (share ``None``: train on the whole pool), or one error naming the bad value and the fix."""
    from circuits.block_relevance.documents import UNSEEN_SHARE, check_split, document_pool
    from interp.errors import IclscopeError

    chosen = share is not None or seed is not None
    if chosen and document_pool(task) is None:
        raise IclscopeError(
            f"{task!r} has no document pool to split into training and unseen documents",
            fix="drop --unseen-share and --unseen-seed for this task",
        )
    if share == 0:
        if seed is not None:
            raise IclscopeError(
                "--unseen-seed has nothing to split with --unseen-share 0 (every document trains)",
                fix="drop --unseen-seed, or keep a share of the documents out, e.g. "
                "--unseen-share 0.25",
            )
        return None, 0
    share = UNSEEN_SHARE if share is None else share
    seed = 0 if seed is None else seed
    if document_pool(task) is not None:
        check_split(task, share, seed, docs)
    return share, seed


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
    unseen_share: float | None = unseen_share_option(
        "Share of the document pool held out as unseen documents [0.25], for a model not "
        "trained with BlockRank (a BlockRank folder keeps the split it trained on)."
    ),
    unseen_seed: int | None = unseen_seed_option(),
    execution: ExecutionOptions = None,
    estimate: options.DryRunOptions = None,
):
    """Rank the documents of each prompt by every layer's and head's attention (block
    relevance, raw and calibrated, and under the block-sparse mask) beside the decoded answer;
    write the metric by layer and head, the best head, relevance bars and a report.

    With --executor ray, the chunks of prompts (three forward passes each) run on the Ray
    workers, each loading the model once by its folder (a BlockRank folder too).

    Precision@1 is also measured on prompts built only from seen and only from unseen
    documents: --unseen-share and --unseen-seed choose that split of the pool."""
    folder, family = _check_ranking(out, model, task, docs)
    from circuits.block_relevance.analysis import BlockRelevanceAnalysis, BlockRelevanceConfig

    config = BlockRelevanceConfig(
        seed=seed,
        prompts=prompts,
        docs=docs,
        rows=rows,
        backend=backend,
        chunk=chunk,
        unseen_share=unseen_share,
        split_seed=unseen_seed,
    )
    config.relevance().check(folder, family)
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
    unseen_share: float | None = unseen_share_option(
        "Share of the document pool kept out of training as unseen documents [0.25]; 0 "
        "trains on every document."
    ),
    unseen_seed: int | None = unseen_seed_option(),
):
    """BlockRank fine-tuning: LoRA on the attention above a cut, trained with the answer loss
    and a contrastive loss on the middle layer's attention to the gold document, under the
    block-sparse mask; saves a model folder that --model loads.

    --unseen-share of the documents (split by --unseen-seed) never appear in training, so
    `run block-relevance` on the folder measures precision@1 on documents it never saw."""
    _, family = _check_ranking(out, model, task, docs)
    share, split = _check_training_split(family, docs, unseen_share, unseen_seed)
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
        unseen_share=share,
        split_seed=split,
    )
    train_blockrank(model, task, out, trainer, log=log)
    print(out)
