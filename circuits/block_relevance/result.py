"""What one block-relevance run found: :class:`BlockRelevanceResult`, its tables and the
headline numbers of its summary, each measured number beside its 95% interval ``<key>_ci``
(:mod:`~circuits.block_relevance.intervals`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from circuits.block_relevance.intervals import METRICS, row_ci

VARIANTS = ("raw", "calibrated", "block_sparse")
"""raw: full attention; calibrated: raw minus the content-free query's relevance;
block_sparse: relevance read under BlockRank's structured mask."""
MEAN_HEAD = -1
"""``head`` value of the relevance averaged over heads (r_d, docs/analyses/block-relevance.md)."""
DOCUMENT_SETS = ("seen", "unseen")
"""The held-out prompts split by document: built from training documents, or from unseen ones."""


@dataclass
class BlockRelevanceResult:
    heads: pd.DataFrame
    """variant, split (select / test / seen / unseen), layer, head (-1: mean over heads),
    p_at_1, mrr, ndcg10, and each metric's 95% interval ``<metric>_low``/``_high`` on the
    head-averaged rows and the picked heads' rows (NaN on the others and on ``select``)."""
    position: pd.DataFrame
    """variant, layer, head, position, share (how often that position is ranked first)."""
    prompts: pd.DataFrame
    """Test prompts at the best head: prompt, position, doc_id, relevance, calibrated, gold,
    decoded (the model's answer), correct."""
    best: dict
    """variant -> [layer, head] picked on the selection prompts."""
    decoded: dict
    """p_at_1_decoded, p_at_1_block_sparse on the test prompts (each with ``_ci``), on all
    prompts (``_all``) and on the seen and unseen sets."""
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
        """The headline numbers, each measured one with its 95% interval ``<key>_ci``
        (precision@1: Wilson; MRR, nDCG@10: seeded bootstrap over the held-out prompts).
        ``<metric>_by_layer_<variant>``: the head-averaged relevance's metric at every layer
        on the held-out prompts, with ``_ci`` one interval per layer. Layers and heads are
        picks, not measurements, and have no interval."""
        layer, head = self.best["raw"]
        best = self.metric("raw", layer, head)
        cal = self.metric("calibrated", *self.best["calibrated"])
        out = {"best_layer": int(layer), "best_head": int(head)}
        out |= measured("p_at_1_best", best, "p_at_1")
        out |= measured("p_at_1_calibrated", cal, "p_at_1")
        out["best_calibrated"] = [int(v) for v in self.best["calibrated"]]
        out |= measured("mrr_best", best, "mrr") | measured("ndcg10_best", best, "ndcg10")
        for key in ("p_at_1_decoded", "p_at_1_block_sparse"):
            out[key] = self.decoded[key]
            out[f"{key}_ci"] = self.decoded.get(f"{key}_ci")
        out["positional_heads"] = self.bias
        out["seconds"] = round(self.seconds, 3)
        sparse = self.metric("block_sparse", *self.best["block_sparse"])
        out |= measured("p_at_1_block_sparse_relevance", sparse, "p_at_1")
        out["best_block_sparse"] = [int(v) for v in self.best["block_sparse"]]
        if self.trained_layer is not None:
            out["trained_layer"] = self.trained_layer
            for variant in VARIANTS:
                row = self.metric(variant, self.trained_layer, MEAN_HEAD)
                for metric in METRICS:
                    out |= measured(f"{metric}_trained_layer_{variant}", row, metric)
        out |= self.by_layer()
        out.update(self.document_summary())
        return out

    def by_layer(self) -> dict:
        """Per variant and metric, the head-averaged value at every layer on the held-out
        prompts, and its interval per layer."""
        out: dict = {}
        heads = self.heads
        mean = heads[(heads.split == "test") & (heads["head"] == MEAN_HEAD)].sort_values("layer")
        for variant in VARIANTS:
            rows = mean[mean.variant == variant]
            for metric in METRICS:
                key = f"{metric}_by_layer_{variant}"
                out[key] = [float(v) for v in rows[metric]]
                out[f"{key}_ci"] = [row_ci(row, metric) for _, row in rows.iterrows()]
        return out

    def document_summary(self) -> dict:
        """Precision@1 on the seen and on the unseen documents' prompts: ``p_at_1_seen`` and
        ``p_at_1_unseen`` are the headline (the head-averaged block-sparse relevance at the
        trained layer of a BlockRank folder, else the best raw head), beside the best head's,
        each variant's at the trained layer and the decoded answer's on both sets, each with
        its interval ``_ci``. A set that was not measured (no pool, or no document kept out of
        training) reads ``None``."""
        out: dict = {"documents": self.documents}
        measured_sets = set(self.heads.split)
        for side in DOCUMENT_SETS:
            keys = [f"p_at_1_{side}", f"p_at_1_best_{side}", f"p_at_1_decoded_{side}"]
            if self.trained_layer is not None:
                keys += [f"p_at_1_trained_layer_{v}_{side}" for v in VARIANTS]
            out.update(dict.fromkeys(key for k in keys for key in (k, f"{k}_ci")))
            if side not in measured_sets:
                continue
            best = self.metric("raw", *self.best["raw"], split=side)
            out |= measured(f"p_at_1_best_{side}", best, "p_at_1")
            out[f"p_at_1_decoded_{side}"] = self.decoded.get(f"p_at_1_decoded_{side}")
            out[f"p_at_1_decoded_{side}_ci"] = self.decoded.get(f"p_at_1_decoded_{side}_ci")
            headline = f"p_at_1_best_{side}"
            if self.trained_layer is not None:
                for variant in VARIANTS:
                    row = self.metric(variant, self.trained_layer, MEAN_HEAD, split=side)
                    out |= measured(f"p_at_1_trained_layer_{variant}_{side}", row, "p_at_1")
                headline = f"p_at_1_trained_layer_block_sparse_{side}"
            out[f"p_at_1_{side}"] = out[headline]
            out[f"p_at_1_{side}_ci"] = out[f"{headline}_ci"]
        return out


def measured(key: str, row: pd.Series, metric: str) -> dict:
    """``{key: value, key_ci: [low, high]}`` for ``metric`` of one heads-table row."""
    return {key: float(row[metric]), f"{key}_ci": row_ci(row, metric)}
