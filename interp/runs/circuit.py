"""``run_circuit``: the ICL circuit written as a run directory (kind ``circuit``).

The analysis lives in :mod:`circuits.icl_circuit` (:mod:`~circuits.icl_circuit.analysis` for
its config and run, :mod:`~circuits.icl_circuit.report` for its tables, figures and report).
This module keeps the older import path and call for notebooks and scripts that use them;
nothing inside the package imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from circuits.icl_circuit import IclCircuit
from circuits.icl_circuit.analysis import CircuitConfig, IclCircuitAnalysis
from circuits.icl_circuit.report import (  # noqa: F401 (re-exported)
    CIRCUIT_TABLES,
    band,
    circuit_figures,
    circuit_report,
    circuit_tables,
    write_circuit,
)
from interp.analysis.base import config_from
from interp.analysis.runner import run_with_arguments


def run_circuit(
    out: str | Path,
    model: str = "organism",
    task: str = "sentiment_arbitrary",
    shots: int = 4,
    prompts: int = 512,
    seed: int = 0,
    log: Callable[[str], object] = print,
    ablation_prompts: int | None = None,
    executor=None,
    max_batch: int | None = None,
) -> Path:
    """Run the ICL circuit and write a run directory under ``out``; return its path."""
    return run_with_arguments(IclCircuitAnalysis(), locals())


def make_circuit(
    shots: int, prompts: int, seed: int, ablation_prompts: int | None, max_batch: int | None
) -> IclCircuit:
    """The analysis ``run circuit`` runs (and its ``--dry-run`` estimates)."""
    return config_from(CircuitConfig, locals()).circuit()
