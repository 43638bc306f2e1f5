"""The block-relevance computation: every layer and head ranked against the gold document.

Three forward passes per chunk of prompts, each reading every layer's relevance through
``hook_block_relevance``: the prompts as they are, the same prompts with a content-free query
(for the calibrated variant), and the prompts under the block-sparse mask (its effect on the
decoded answer, and relevance under the structure BlockRank trains with). The best layer and
head are picked on the first half of the prompts and measured on the second, so a head that
wins by luck on few prompts does not report its luck.

Two more sets of held-out prompts split the measure by document: ``seen`` prompts built only
from the training documents and ``unseen`` prompts built only from the documents kept out of
training (:mod:`~circuits.block_relevance.documents`; for a BlockRank folder, the split its
training record names). The first two sets draw from the whole pool, as before.

This module is the science alone and runs in a notebook on a loaded model;
:mod:`~circuits.block_relevance.analysis` wraps it as the registered analysis (its config, the
BlockRank folder's trained layer, the dry run's estimate) and
:mod:`~circuits.block_relevance.report` turns its result into a run directory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from circuits.block_relevance.documents import UNSEEN_SHARE, DocumentSplit
from circuits.block_relevance.hook import collect_relevance
from circuits.block_relevance.metrics import positional_heads, ranking_metrics, top_position_share
from circuits.block_relevance.relevance import calibrate
from interp.errors import IclscopeError
from interp.models import HookedModel
from interp.prompts import Template
from interp.tasks.suite import get_family, sample_episodes

VARIANTS = ("raw", "calibrated", "block_sparse")
"""raw: full attention; calibrated: raw minus the content-free query's relevance;
block_sparse: relevance read under BlockRank's structured mask."""
MEAN_HEAD = -1
"""``head`` value of the relevance averaged over heads (r_d, docs/analyses/block-relevance.md)."""
DOCUMENT_SETS = ("seen", "unseen")
"""The held-out prompts split by document: built from training documents, or from unseen ones."""


@dataclass
class RelevanceData:
    """What the forward passes give, for every prompt: relevance ``(batch, layer, head, doc)``
    per variant, the gold document, and the decoded answers."""

    relevance: dict[str, Float[Tensor, "batch layer head doc"]]
    gold: Tensor
    decoded: Tensor
    decoded_sparse: Tensor
    answer_ids: Tensor
    label_ids: list[list[int]]
    texts: list[str]
    docs: list[list[tuple[str, str]]]
    """Per prompt, its documents as (ID, content)."""


@dataclass
class BlockRelevanceResult:
    heads: pd.DataFrame
    """variant, split (select / test), layer, head (-1: mean over heads), p_at_1, mrr, ndcg10."""
    position: pd.DataFrame
    """variant, layer, head, position, share (how often that position is ranked first)."""
    prompts: pd.DataFrame
    """Test prompts at the best head: prompt, position, doc_id, relevance, calibrated, gold,
    decoded (the model's answer), correct."""
    best: dict
    """variant -> [layer, head] picked on the selection prompts."""
    decoded: dict
    """p_at_1_decoded, p_at_1_block_sparse on the test prompts, and on all prompts."""
    bias: dict
    """Positional heads per variant (see ``positional_heads``)."""
    trained_layer: int | None = None
    seconds: float = 0.0
    documents: dict | None = None
    """The document split the ``seen`` and ``unseen`` prompts come from: source (``training
    record``, ``default split``, or ``trained on the whole pool`` for a BlockRank folder that
    kept no document out), what the pool holds (``documents``, or the organism's ``words``),
    seed, unseen share, the number of training and unseen documents,
    and the prompts per set; ``None`` for a family with no known pool."""

    def metric(self, variant: str, layer: int, head: int, split: str = "test") -> pd.Series:
        rows = self.heads.query(
            "variant == @variant and split == @split and layer == @layer and head == @head"
        )
        return rows.iloc[0]

    def summary(self) -> dict:
        layer, head = self.best["raw"]
        best = self.metric("raw", layer, head)
        cal = self.metric("calibrated", *self.best["calibrated"])
        out = {
            "best_layer": int(layer),
            "best_head": int(head),
            "p_at_1_best": float(best.p_at_1),
            "p_at_1_calibrated": float(cal.p_at_1),
            "best_calibrated": [int(v) for v in self.best["calibrated"]],
            "mrr_best": float(best.mrr),
            "ndcg10_best": float(best.ndcg10),
            "p_at_1_decoded": self.decoded["p_at_1_decoded"],
            "p_at_1_block_sparse": self.decoded["p_at_1_block_sparse"],
            "positional_heads": self.bias,
            "seconds": round(self.seconds, 3),
        }
        sparse = self.metric("block_sparse", *self.best["block_sparse"])
        out["p_at_1_block_sparse_relevance"] = float(sparse.p_at_1)
        out["best_block_sparse"] = [int(v) for v in self.best["block_sparse"]]
        if self.trained_layer is not None:
            out["trained_layer"] = self.trained_layer
            for variant in VARIANTS:
                row = self.metric(variant, self.trained_layer, MEAN_HEAD)
                out[f"p_at_1_trained_layer_{variant}"] = float(row.p_at_1)
        out.update(self.document_summary())
        return out

    def document_summary(self) -> dict:
        """Precision@1 on the seen and on the unseen documents' prompts: ``p_at_1_seen`` and
        ``p_at_1_unseen`` are the headline (the head-averaged block-sparse relevance at the
        trained layer of a BlockRank folder, else the best raw head), beside the best head's,
        each variant's at the trained layer and the decoded answer's on both sets. A set that
        was not measured (no pool, or no document kept out of training) reads ``None``."""
        out: dict = {"documents": self.documents}
        measured = set(self.heads.split)
        for side in DOCUMENT_SETS:
            keys = [f"p_at_1_{side}", f"p_at_1_best_{side}", f"p_at_1_decoded_{side}"]
            if self.trained_layer is not None:
                keys += [f"p_at_1_trained_layer_{v}_{side}" for v in VARIANTS]
            out.update(dict.fromkeys(keys))
            if side not in measured:
                continue
            best = self.metric("raw", *self.best["raw"], split=side)
            out[f"p_at_1_best_{side}"] = float(best.p_at_1)
            out[f"p_at_1_decoded_{side}"] = self.decoded.get(f"p_at_1_decoded_{side}")
            out[f"p_at_1_{side}"] = float(best.p_at_1)
            if self.trained_layer is not None:
                for variant in VARIANTS:
                    row = self.metric(variant, self.trained_layer, MEAN_HEAD, split=side)
                    out[f"p_at_1_trained_layer_{variant}_{side}"] = float(row.p_at_1)
                out[f"p_at_1_{side}"] = out[f"p_at_1_trained_layer_block_sparse_{side}"]
        return out


@dataclass
class BlockRelevance:
    """Block relevance of every layer and head on one ranking family.

    ``prompts`` [128]: the first half picks the best layer and head, the second half measures
    it. ``docs`` [10] documents per prompt; ``rows`` [2] last query rows read (``[`` and the
    token before it); ``content_free`` the query of the calibration prompts; ``chunk`` prompts
    per forward pass. ``split_prompts`` [``prompts - prompts // 2``] prompts in each of the
    ``seen`` and ``unseen`` sets, their documents split by ``split_seed`` with
    ``unseen_share`` of the pool unseen (a BlockRank folder's training record overrides both
    with the split it trained on); 0 measures neither set.
    """

    prompts: int = 128
    docs: int = 10
    rows: int = 2
    seed: int = 0
    chunk: int = 16
    content_free: str = "N/A"
    split_prompts: int | None = None
    unseen_share: float = UNSEEN_SHARE
    split_seed: int = 0

    def per_set(self) -> int:
        """Prompts in each of the ``seen`` and ``unseen`` sets."""
        if self.split_prompts is None:
            return self.prompts - self.prompts // 2
        return self.split_prompts

    def documents(self, model: str, family: str) -> tuple[DocumentSplit | None, str]:
        """The document split for ``model`` (a folder) on ``family``, and where it comes from:
        a BlockRank folder's training record when it names one for this family's pool, else the
        default split by ``split_seed``."""
        from circuits.block_relevance.train import training_split

        if self.per_set() == 0:
            return None, "not measured"
        trained = training_split(model, family)
        if trained is not None:
            return trained
        return DocumentSplit.of(family, self.split_seed, self.unseen_share), "default split"

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
        heads = heads_table(data, parts)
        best = {v: pick_best(heads, v) for v in VARIANTS}
        test, every = parts["test"], slice(0, n)
        decoded = {
            "p_at_1_decoded": _acc(data.decoded[test], data.answer_ids[test]),
            "p_at_1_block_sparse": _acc(data.decoded_sparse[test], data.answer_ids[test]),
            "p_at_1_decoded_all": _acc(data.decoded[every], data.answer_ids[every]),
            "p_at_1_block_sparse_all": _acc(data.decoded_sparse[every], data.answer_ids[every]),
        }
        for side in DOCUMENT_SETS:
            if side in parts:
                part = parts[side]
                decoded[f"p_at_1_decoded_{side}"] = _acc(data.decoded[part], data.answer_ids[part])
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


FORWARDS_PER_CHUNK = 3
"""Each chunk's passes: as it is, with a content-free query, under the block-sparse mask."""


def prompt_floats(cfg, n_pos: int) -> int:
    """Floats one prompt of a chunk holds at the peak of its forward passes (they run one after
    another): one forward's live activations (:func:`~interp.engine.batched.row_floats`: the
    residual stream, the MLP, one layer's scores and pattern at heads x pos^2, the logits at
    every position) plus the block-sparse mask (pos^2). The relevance kept per layer is a few
    floats per document, left out."""
    from interp.engine.batched import row_floats

    return row_floats(cfg, n_pos) + n_pos * n_pos


@dataclass
class RelevanceChunks:
    """:class:`BlockRelevance`'s chunks as :class:`~interp.execution.Work`: chunk
    ``index`` is ``chunk`` prompts' three forward passes (:data:`FORWARDS_PER_CHUNK`), each
    chunk built and padded on its own, so a worker's batch is the local loop's. It carries the
    sampled episodes, never the model: a worker loads that by ``model`` (a folder path)."""

    model: str
    backend: str
    family: str
    episodes: list
    rows: int = 2
    chunk: int = 16
    content_free: str = "N/A"
    template: Template | None = None
    """The family's template, carried so that a worker in another process (where a task file
    read by this one is not registered) builds the same prompts."""

    @property
    def key(self):
        return ("hooked", self.model, self.backend)

    def load(self) -> HookedModel:
        from interp.models import load_model

        return load_model(self.model, backend=self.backend)

    def count(self) -> int:
        return -(-len(self.episodes) // self.chunk)

    def batches(self, builder, index: int) -> tuple:
        """Chunk ``index``'s prompts and the same with the content-free query."""
        template = self.template or get_family(self.family).template
        episodes = self.episodes[index * self.chunk : (index + 1) * self.chunk]
        free = [replace(ep, query=self.content_free) for ep in episodes]
        return builder.build(template, episodes), builder.build(template, free)

    @torch.no_grad()
    def __call__(self, model: HookedModel, index: int) -> dict[str, Tensor]:
        batch, cf = self.batches(model.prompt_builder(), index)
        rel, logits = collect_relevance(model, batch, self.rows)
        rel_sp, logits_sp = collect_relevance(model, batch, self.rows, block_sparse=True)
        return {
            "raw": rel,
            "free": collect_relevance(model, cf, self.rows)[0],
            "block_sparse": rel_sp,
            "dec": logits.argmax(-1),
            "sp": logits_sp.argmax(-1),
        }


def _acc(decoded: Tensor, answers: Tensor) -> float:
    return float((decoded == answers).float().mean()) if len(answers) else float("nan")


def with_head_mean(rel: Float[Tensor, "batch layer head doc"]) -> Tensor:
    """Heads ``0..H-1`` then their mean as one more head (index ``-1`` in the tables)."""
    return torch.cat([rel, rel.mean(2, keepdim=True)], 2)


def heads_table(data: RelevanceData, parts: dict[str, slice]) -> pd.DataFrame:
    """Every variant, prompt set (``parts``: split name -> its prompts), layer and head's
    precision@1, MRR and nDCG@10."""
    rows = []
    for variant, rel in data.relevance.items():
        rel = with_head_mean(rel)
        n_heads = rel.shape[2] - 1
        for split, part in parts.items():
            m = ranking_metrics(rel[part], data.gold[part])
            for layer in range(rel.shape[1]):
                for h in range(rel.shape[2]):
                    rows.append(
                        {
                            "variant": variant,
                            "split": split,
                            "layer": layer,
                            "head": MEAN_HEAD if h == n_heads else h,
                            **{k: float(v[layer, h]) for k, v in m.items()},
                        }
                    )
    return pd.DataFrame(rows)


def pick_best(heads: pd.DataFrame, variant: str) -> list[int]:
    """The single head with the highest precision@1 on the selection prompts (ties: MRR,
    then nDCG@10, then the earliest layer and head)."""
    sel = heads.query("variant == @variant and split == 'select' and head >= 0")
    top = sel.sort_values(
        ["p_at_1", "mrr", "ndcg10", "layer", "head"], ascending=[False, False, False, True, True]
    ).iloc[0]
    return [int(top.layer), int(top["head"])]


def position_table(data: RelevanceData, part: slice) -> tuple[pd.DataFrame, dict]:
    """How often each position is ranked first, on the prompts ``part``."""
    rows, bias = [], {}
    for variant, rel in data.relevance.items():
        share = top_position_share(rel[part])  # (layer, head, doc)
        bias[variant] = positional_heads(share)
        for layer in range(share.shape[0]):
            for head in range(share.shape[1]):
                for pos in range(share.shape[2]):
                    rows.append(
                        {
                            "variant": variant,
                            "layer": layer,
                            "head": head,
                            "position": pos,
                            "share": float(share[layer, head, pos]),
                        }
                    )
    return pd.DataFrame(rows), bias


def decoded_id(data: RelevanceData, b: int) -> str:
    """The document ID prompt ``b`` decoded to, or ``other`` (a token that is no ID)."""
    for (doc_id, _), token in zip(data.docs[b], data.label_ids[b]):
        if token == int(data.decoded[b]):
            return doc_id
    return "other"


def prompts_table(data: RelevanceData, best: list[int], half: int, n: int) -> pd.DataFrame:
    """Every held-out prompt's (``half..n``) documents with their relevance at the best
    head."""
    layer, head = best
    raw = data.relevance["raw"][:, layer, head]
    cal = data.relevance["calibrated"][:, layer, head]
    rows = []
    for b in range(half, n):
        decoded = decoded_id(data, b)
        correct = bool(data.decoded[b] == data.answer_ids[b])
        for d, (doc_id, content) in enumerate(data.docs[b]):
            rows.append(
                {
                    "prompt": b,
                    "position": d,
                    "doc_id": doc_id,
                    "content": content,
                    "relevance": float(raw[b, d]),
                    "calibrated": float(cal[b, d]),
                    "gold": d == int(data.gold[b]),
                    "decoded": decoded,
                    "correct": correct,
                }
            )
    return pd.DataFrame(rows)
