"""``run_eviction``: accuracy against KV-cache eviction rate as a run directory (kind
``eviction``); ``train_gate_folder``: the attention gate trained and saved with its record.

The analysis lives in :mod:`circuits.eviction` (:mod:`~circuits.eviction.analysis` for its
config, run and estimate, :mod:`~circuits.eviction.report` for its tables, figures and
report). This module keeps the older import path and call for notebooks and scripts that use
them; nothing inside the package imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from circuits.eviction import METHODS
from circuits.eviction.analysis import (  # noqa: F401 (re-exported)
    EvictionAnalysis,
    EvictionConfig,
    eviction_estimate,
)
from circuits.eviction.gate_folder import train_gate_folder  # noqa: F401
from circuits.eviction.prompts import (  # noqa: F401
    KINDS,
    KV_KEYS,
    eviction_builder,
    eviction_settings,
    load_eager,
    sample_digit_kv,
)
from circuits.eviction.report import (  # noqa: F401
    eviction_figures,
    eviction_report,
    eviction_summary,
)
from interp.analysis.runner import run_with_arguments


def run_eviction(
    out: str | Path,
    model: str = "smollm2",
    task: str = "nl_capital",
    shots: int = 16,
    prompts: int = 32,
    rates: Sequence[float] = (0.25, 0.5, 0.75),
    methods: Sequence[str] = tuple(METHODS),
    lengths: Sequence[int] = (512, 1024),
    gate: str | Path | None = None,
    train: bool = True,
    objective: str = "distill",
    gate_prompts: int = 48,
    seed: int = 0,
    log: Callable[[str], object] = print,
    gate_epochs: int = 40,
    kv_keys: str = "words",
    chunk: int = 8,
    executor=None,
) -> Path:
    """Every method at every rate, plus the gate (loaded from ``gate``, or trained here and
    saved under the run's ``gate/``); write the run under ``out`` and return its path."""
    gate = str(gate) if gate else None  # the manifest records the folder as text
    return run_with_arguments(EvictionAnalysis(), locals())
