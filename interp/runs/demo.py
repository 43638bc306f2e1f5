"""``run_demo``: the main job on one model, written as one run directory (kind ``demo``).

The analysis lives in :mod:`circuits.demo`. This module keeps the older import path and call
for notebooks and scripts that use them; nothing inside the package imports it.
"""

from __future__ import annotations

from pathlib import Path

from circuits.demo.analysis import DemoAnalysis
from circuits.demo.look import (  # noqa: F401 (re-exported)
    CIRCUIT_TASK,
    DEMO_FAMILIES,
    SHOTS,
    demo_suite,
    first_look,
)
from interp.analysis.runner import run_with_arguments


def run_demo(
    out: Path,
    model: str = "smollm2",
    seed: int = 0,
    n: int = 32,
    circuit: bool = True,
    circuit_prompts: int = 128,
    ablation_prompts: int = 32,
    log=print,
) -> Path:
    """Evaluate, look inside one prompt and (with ``circuit``) run the ICL circuit."""
    return run_with_arguments(DemoAnalysis(), {**locals(), "task": "demo"})
