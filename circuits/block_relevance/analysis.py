"""Block relevance as a registered analysis (kind ``block-relevance``): its config and its run.

The science is :class:`~circuits.block_relevance.compute.BlockRelevance`; this module says
what one run of it is. The config carries the backend, because both backends read the same
relevance (``hook_block_relevance``: the scores on TransformerLens, the pattern on nnsight) and
a run names the one it used. The model may be a folder ``iclscope train blockrank`` wrote:
its training record names the layer it was trained at, and the summary then reports the
head-averaged relevance there. The chunks of prompts run through ``executor.map`` (no engine
plan), so the dry run's estimate is built here from the same chunks the run makes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from circuits.block_relevance.compute import BlockRelevance
from circuits.block_relevance.folder import RECORD as BLOCKRANK_RECORD
from circuits.block_relevance.report import BlockRelevanceRun
from interp.analysis import Analysis, AnalysisConfig, CostEstimate
from interp.analysis.base import Log


@dataclass
class BlockRelevanceConfig(AnalysisConfig):
    """``prompts``: the first half picks the best layer and head, the rest measure it;
    ``docs`` documents per prompt; ``rows`` last query rows read (``[`` and the token before);
    ``backend`` the hooked backend the model loads on; ``chunk`` prompts per forward pass
    (three passes per chunk); ``unseen_share`` [0.25] and ``split_seed`` [0] the split of the
    document pool into seen and unseen documents for a model not trained with BlockRank
    (``None``: the default; a BlockRank folder's training record fixes its own split)."""

    prompts: int = 48
    docs: int = 10
    rows: int = 2
    backend: str = "transformer_lens"
    chunk: int = 16
    unseen_share: float | None = None
    split_seed: int | None = None

    def relevance(self) -> BlockRelevance:
        """The :class:`BlockRelevance` this config describes (the run and its dry run share
        it)."""
        return BlockRelevance(
            prompts=self.prompts,
            docs=self.docs,
            rows=self.rows,
            seed=self.seed,
            chunk=self.chunk,
            unseen_share=self.unseen_share,
            split_seed=self.split_seed,
        )

    def estimate(self, model: str, task: str, workers: int = 1):
        """What a run of this config costs per worker (see :func:`block_relevance_estimate`)."""
        return block_relevance_estimate(
            model, task, self.prompts, self.docs, self.seed, self.chunk, workers, self.relevance()
        )


def trained_layer(model_path: str) -> int | None:
    """The layer a BlockRank fine-tuned folder was trained at, else ``None``."""
    record = Path(model_path) / BLOCKRANK_RECORD
    if not record.is_file():
        return None
    return int(json.loads(record.read_text())["layer"])


class BlockRelevanceAnalysis(Analysis):
    """Rank the documents of each prompt by every layer's and head's attention (raw,
    calibrated, and under the block-sparse mask) beside the decoded answer, on a ranking
    family (see the block relevance page of the docs)."""

    kind = "block-relevance"
    score = "the decoded document ID (one token) and each head's ranking of the documents"
    config_type = BlockRelevanceConfig

    def check(self, model: str, task: str, config: BlockRelevanceConfig) -> None:
        from interp.models import resolve_spec
        from interp.tasks.suite import require_kind

        require_kind(
            task,
            "ranking",
            "block relevance",
            fix="use --task nl_ranking_lexical or --task nl_ranking_semantic",
        )
        config.relevance().check(resolve_spec(model)[0], task)

    def estimate(self, model, task, config: BlockRelevanceConfig, workers=1, loaded=None):
        return CostEstimate(config.estimate(model, task, workers), "")

    def load(self, model: str, config: BlockRelevanceConfig):
        """The model on the config's backend (a BlockRank folder loads like any other)."""
        from interp.models import load_model

        return load_model(model, backend=config.backend)

    def run(
        self, model, task: str, config: BlockRelevanceConfig, executor, *, log: Log = print
    ) -> BlockRelevanceRun:
        """Every chunk of prompts on ``executor`` (Ray workers load the model themselves from
        its folder, a BlockRank folder too)."""
        result = config.relevance().run(
            model, task, log=log, trained_layer=trained_layer(model.path), executor=executor
        )
        return BlockRelevanceRun(result, model.cfg.name, task, config.prompts)


def block_relevance_estimate(
    model: str,
    task: str,
    prompts: int,
    docs: int,
    seed: int,
    chunk: int = 16,
    workers: int = 1,
    relevance: BlockRelevance | None = None,
):
    """What a block-relevance run will cost per worker (:class:`~interp.engine.memory.
    WorkEstimate`), from the tokenizer, the config and the prompts alone: the chunks are the
    analysis's own (:class:`~circuits.block_relevance.chunks.RelevanceChunks`), built as the
    model's prompt builder builds them, each three forward passes. ``relevance``: the
    analysis whose chunks are estimated (its document split too), else one from the numbers."""
    from transformers import AutoConfig, AutoTokenizer

    from circuits.block_relevance.chunks import FORWARDS_PER_CHUNK, prompt_floats
    from interp.engine.memory import estimate_work, weights_gb
    from interp.models import ModelConfig, resolve_spec
    from interp.models.gguf_cache import prepend_bos
    from interp.prompts import PromptBuilder

    folder, _ = resolve_spec(model)
    cfg = ModelConfig.from_hf(model, AutoConfig.from_pretrained(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # the builder HookedModel.prompt_builder() makes, without loading the model
    builder = PromptBuilder(tokenizer, n_ctx=cfg.n_ctx, prepend_bos=prepend_bos(folder))
    analysis = relevance or BlockRelevance(prompts=prompts, docs=docs, seed=seed, chunk=chunk)
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
