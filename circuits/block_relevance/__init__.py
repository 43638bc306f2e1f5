"""Block-relevance signals for in-context ranking (BlockRank; docs/analyses/block-relevance.md).

Gupta et al., "Scalable In-context Ranking with Generative Models" (2025), restated in
``docs/analyses/block-relevance.md``. A ranking prompt is an instruction block with the query, M
blocks ``ID: i | CONTENT: ... | END ID: i`` and a final block ending in ``Final Answer: [``.
The paper's claims are that (1) the attention from the last query tokens to the documents, at
a middle layer, ranks the documents without decoding, and (2) that signal becomes strong when
the model is fine-tuned with an auxiliary contrastive loss on it, under a block-sparse mask.

* :mod:`~circuits.block_relevance.relevance`: relevance per document from pre-softmax scores
  (pure functions, tested on hand-made scores), and its calibrated variant;
* :mod:`~circuits.block_relevance.metrics`: precision@1, MRR, nDCG@10, position bias;
* :mod:`~circuits.block_relevance.mask`: the block-sparse mask, as score hooks and as an
  explicit 4-D mask;
* :mod:`~circuits.block_relevance.hook`: the hook ``blocks.{l}.attn.hook_block_relevance``, on
  both backends (:func:`relevance_source`);
* :mod:`~circuits.block_relevance.compute`: :class:`BlockRelevance`, every layer and head on
  one ranking family, run in chunks of prompts (:mod:`~circuits.block_relevance.chunks`), its
  tables built in :mod:`~circuits.block_relevance.tables` and its result and summary in
  :mod:`~circuits.block_relevance.result`;
* :mod:`~circuits.block_relevance.intervals`: the 95% intervals over prompts of precision@1,
  MRR and nDCG@10 (``<key>_ci`` in the summary);
* :mod:`~circuits.block_relevance.analysis`: the registered analysis (kind ``block-relevance``:
  its config, the run, the dry run's estimate), and :mod:`~circuits.block_relevance.report` its
  figures and report;
* :mod:`~circuits.block_relevance.train`: :class:`BlockRankTrainer`, the fine-tuning, with
  peft's LoRA adapters (:mod:`~circuits.block_relevance.adapters`), saved as a BlockRank
  folder (:mod:`~circuits.block_relevance.folder`);
* :mod:`~circuits.block_relevance.documents`: the seeded split of a family's document pool into
  training and unseen documents (precision@1 on seen and on unseen documents).
"""

from circuits.block_relevance.compute import (
    MEAN_HEAD,
    VARIANTS,
    BlockRelevance,
    BlockRelevanceResult,
)
from circuits.block_relevance.hook import (
    RELEVANCE_HOOK,
    collect_relevance,
    relevance_hooks,
    relevance_name,
    relevance_source,
    run_with_relevance,
)
from circuits.block_relevance.mask import allowed_keys, block_sparse_hooks, block_sparse_mask
from circuits.block_relevance.metrics import (
    gold_rank,
    mrr,
    ndcg_at,
    positional_heads,
    precision_at_1,
    ranking_metrics,
    top_position_share,
)
from circuits.block_relevance.relevance import (
    calibrate,
    doc_of_token,
    document_relevance,
    gather_rows,
    head_mean,
    query_rows,
)

__all__ = [
    "BlockRelevance",
    "BlockRelevanceResult",
    "MEAN_HEAD",
    "RELEVANCE_HOOK",
    "VARIANTS",
    "allowed_keys",
    "block_sparse_hooks",
    "block_sparse_mask",
    "calibrate",
    "collect_relevance",
    "doc_of_token",
    "document_relevance",
    "gather_rows",
    "gold_rank",
    "head_mean",
    "mrr",
    "ndcg_at",
    "positional_heads",
    "precision_at_1",
    "query_rows",
    "ranking_metrics",
    "relevance_hooks",
    "relevance_source",
    "relevance_name",
    "run_with_relevance",
    "top_position_share",
]
