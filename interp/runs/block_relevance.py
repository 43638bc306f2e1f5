"""``run_block_relevance``: block relevance (docs/analyses/block-relevance.md) written as a run dir
(kind ``block-relevance``).

The analysis lives in :mod:`circuits.block_relevance` (:mod:`~circuits.block_relevance.compute`
for the science, :mod:`~circuits.block_relevance.analysis` for its config, run and estimate,
:mod:`~circuits.block_relevance.report` for its figures and report). This module keeps the
older import path and call for notebooks and scripts that use them; nothing inside the package
imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from circuits.block_relevance import (  # noqa: F401 (re-exported)
    MEAN_HEAD,
    BlockRelevance,
    BlockRelevanceResult,
)
from circuits.block_relevance.analysis import (  # noqa: F401 (re-exported)
    BLOCKRANK_RECORD,
    BlockRelevanceAnalysis,
    BlockRelevanceConfig,
    block_relevance_estimate,
    trained_layer,
)
from circuits.block_relevance.report import (  # noqa: F401 (re-exported)
    TABLES,
    block_relevance_figures,
    block_relevance_report,
)
from interp.analysis.runner import run_with_arguments


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
    """Run block relevance and write a run directory under ``out``; return its path. The
    chunks of ``chunk`` prompts run on ``executor`` (default: the enclosing ``using`` block's,
    else here), and the manifest records it."""
    return run_with_arguments(BlockRelevanceAnalysis(), locals())
