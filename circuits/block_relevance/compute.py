"""The block-relevance computation: every layer and head ranked against the gold document.

Three forward passes per chunk of prompts, each reading every layer's relevance through
``hook_block_relevance``: the prompts as they are, the same prompts with a content-free query
(for the calibrated variant), and the prompts under the block-sparse mask (its effect on the
decoded answer, and relevance under the structure BlockRank trains with). The best layer and
head are picked on the first half of the prompts and measured on the second, so a head that
wins by luck on few prompts does not report its luck, and every number it reports carries a
95% interval over the prompts it was measured on (:mod:`~circuits.block_relevance.intervals`).

Two more sets of held-out prompts split the measure by document: ``seen`` prompts built only
from the training documents and ``unseen`` prompts built only from the documents kept out of
training (:mod:`~circuits.block_relevance.documents`; for a BlockRank folder, the split its
training record names). The first two sets draw from the whole pool, as before.

This module is the science alone and runs in a notebook on a loaded model: the prompts and
their order; a chunk's forward passes are :mod:`~circuits.block_relevance.chunks`, the tables
built from them :mod:`~circuits.block_relevance.tables`, and the result with its summary
:mod:`~circuits.block_relevance.result`.
:mod:`~circuits.block_relevance.analysis` wraps it as the registered analysis (its config, the
BlockRank folder's trained layer, the dry run's estimate) and
:mod:`~circuits.block_relevance.report` turns its result into a run directory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from circuits.block_relevance.chunks import RelevanceChunks
from circuits.block_relevance.documents import (
    UNSEEN_SHARE,
    DocumentSplit,
    check_split,
    document_pool,
)
from circuits.block_relevance.relevance import calibrate
from circuits.block_relevance.result import (
    DOCUMENT_SETS,
    MEAN_HEAD,
    VARIANTS,
    BlockRelevanceResult,
)
from circuits.block_relevance.tables import (
    RelevanceData,
    decoded_accuracy,
    pick_best,
    position_table,
    prompt_scores,
    prompts_table,
    scores_table,
    with_intervals,
)
from interp.errors import IclscopeError
from interp.models import HookedModel
from interp.tasks.suite import get_family, sample_episodes

__all__ = ["MEAN_HEAD", "VARIANTS", "BlockRelevance", "BlockRelevanceResult"]


@dataclass
class BlockRelevance:
    """Block relevance of every layer and head on one ranking family.

    ``prompts`` [128]: the first half picks the best layer and head, the second half measures
    it. ``docs`` [10] documents per prompt; ``rows`` [2] last query rows read (``[`` and the
    token before it); ``content_free`` the query of the calibration prompts; ``chunk`` prompts
    per forward pass. ``split_prompts`` [``prompts - prompts // 2``] prompts in each of the
    ``seen`` and ``unseen`` sets, their documents split by ``split_seed`` [0] with
    ``unseen_share`` [0.25] of the pool unseen; 0 measures neither set. A BlockRank folder's
    training record fixes the split it trained on, and setting either of the two for it is
    refused (its unseen documents are the ones it never saw).
    """

    prompts: int = 128
    docs: int = 10
    rows: int = 2
    seed: int = 0
    chunk: int = 16
    content_free: str = "N/A"
    split_prompts: int | None = None
    unseen_share: float | None = None
    split_seed: int | None = None

    def per_set(self) -> int:
        """Prompts in each of the ``seen`` and ``unseen`` sets."""
        if self.split_prompts is None:
            return self.prompts - self.prompts // 2
        return self.split_prompts

    def check(self, model: str, family: str) -> None:
        """Refuse a bad split before any model loads (``model``: its folder): a share or seed
        out of range, a side too small for ``docs`` documents, a split chosen for a family with
        no document pool or for a BlockRank folder, whose record fixes its own."""
        self.documents(model, family)

    def documents(self, model: str, family: str) -> tuple[DocumentSplit | None, str]:
        """The document split for ``model`` (a folder) on ``family``, and where it comes from:
        a BlockRank folder's training record when it names one for this family's pool, else the
        default split by ``split_seed``."""
        from circuits.block_relevance.folder import training_split

        chosen = self.unseen_share is not None or self.split_seed is not None
        if chosen and document_pool(family) is None:
            raise IclscopeError(
                f"{family!r} has no document pool to split into seen and unseen documents",
                fix="drop --unseen-share and --unseen-seed for this task",
            )
        if self.per_set() == 0:
            return None, "not measured"
        trained = training_split(model, family)
        if trained is not None:
            if chosen:
                raise IclscopeError(
                    f"{model} was trained with BlockRank: its training record fixes which "
                    "documents are unseen",
                    fix="drop --unseen-share and --unseen-seed; the run measures the documents "
                    "this model never trained on",
                )
            return trained
        share = UNSEEN_SHARE if self.unseen_share is None else self.unseen_share
        seed = 0 if self.split_seed is None else self.split_seed
        return check_split(family, share, seed, self.docs), "default split"

    def run(
        self,
        model: HookedModel,
        family: str,
        log=lambda _: None,
        trained_layer: int | None = None,
        executor=None,
    ) -> BlockRelevanceResult:
        """Every chunk of prompts through ``executor`` (default: the enclosing
        :func:`~interp.execution.using` block's, else here on ``model``); Ray workers
        load the model themselves from ``model.path`` (a registry name's folder, or a BlockRank
        folder with its LoRA merged) on ``model.backend``."""
        fam = get_family(family)
        if fam.kind != "ranking":
            raise IclscopeError(
                f"block relevance needs a ranking family, not {family!r} ({fam.kind})",
                fix="use nl_ranking_lexical or nl_ranking_semantic",
            )
        if self.prompts < 4:
            raise IclscopeError(f"{self.prompts} prompts are too few", fix="use at least 4")
        start = time.perf_counter()
        data = self.collect(model, family, log, executor)
        n, half = self.prompts, self.prompts // 2
        split, source = self.documents(model.path, family)
        parts = {"select": slice(0, half), "test": slice(half, n)}
        documents = None
        if split is not None:
            m = self.per_set()
            parts["seen"] = slice(n, n + m)
            if source != "trained on the whole pool":
                parts["unseen"] = slice(n + m, n + 2 * m)
            documents = {
                "source": source,
                "pool": "words" if family == "ranking" else "documents",
                "seed": split.seed,
                "unseen_share": split.unseen_share,
                "train": len(split.train),
                "unseen": len(split.unseen),
                "prompts": m,
            }
        scores = prompt_scores(data, parts)
        heads = scores_table(scores)
        best = {v: pick_best(heads, v) for v in VARIANTS}
        heads = with_intervals(heads, scores, best, self.seed)
        test, every = parts["test"], slice(0, n)
        answers = data.answer_ids
        decoded = {
            **decoded_accuracy("p_at_1_decoded", data.decoded[test], answers[test]),
            **decoded_accuracy("p_at_1_block_sparse", data.decoded_sparse[test], answers[test]),
            **decoded_accuracy("p_at_1_decoded_all", data.decoded[every], answers[every]),
            **decoded_accuracy(
                "p_at_1_block_sparse_all", data.decoded_sparse[every], answers[every]
            ),
        }
        for side in DOCUMENT_SETS:
            if side in parts:
                part = parts[side]
                key = f"p_at_1_decoded_{side}"
                decoded |= decoded_accuracy(key, data.decoded[part], answers[part])
        position, bias = position_table(data, every)
        prompts = prompts_table(data, best["raw"], half, n)
        return BlockRelevanceResult(
            heads,
            position,
            prompts,
            best,
            decoded,
            bias,
            trained_layer,
            time.perf_counter() - start,
            documents,
        )

    def chunks(self, model: str, backend: str, family: str) -> RelevanceChunks:
        """This analysis's prompts as :class:`RelevanceChunks` of ``chunk`` prompts each, the
        model named by its folder (what a worker loads): the ``prompts`` from the whole pool,
        then the ``seen`` set and the ``unseen`` set (each from its own random stream, apart
        from the training prompts' and the others')."""
        episodes = sample_episodes(family, self.prompts, self.docs, self.seed)
        split, _ = self.documents(model, family)
        if split is not None:
            for side, stream in (("train", "seen"), ("unseen", "unseen")):
                episodes += split.episodes(side, self.per_set(), self.docs, self.seed, stream)
        return RelevanceChunks(
            model,
            backend,
            family,
            episodes,
            self.rows,
            self.chunk,
            self.content_free,
            template=get_family(family).template,
        )

    def collect(self, model: HookedModel, family: str, log, executor=None) -> RelevanceData:
        """Each chunk's three forward passes on ``executor``; the chunks' relevance joined in
        prompt order (the executor returns them in chunk order, so local and Ray agree)."""
        from interp.execution import default_executor

        executor = executor or default_executor()
        work = self.chunks(model.path, model.backend, family)
        n = len(work.episodes)

        def done(index: int, _) -> None:
            at = index * self.chunk
            log(f"prompts {at}-{min(at + self.chunk, n)} of {n}")

        parts = executor.map(work, work.count(), loaded=model, done=done)
        joined = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        batch_all = model.prompt_builder().build(get_family(family).template, work.episodes)
        relevance = {
            "raw": joined["raw"],
            "calibrated": calibrate(joined["raw"], joined["free"]),
            "block_sparse": joined["block_sparse"],
        }
        gold = torch.tensor([a.gold_block for a in batch_all.annotations])
        return RelevanceData(
            relevance,
            gold,
            joined["dec"],
            joined["sp"],
            batch_all.answer_ids,
            batch_all.label_ids,
            batch_all.texts,
            [list(ep.docs) for ep in work.episodes],
        )
