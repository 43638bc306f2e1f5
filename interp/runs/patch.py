"""``run_patch``: a patching or ablation sweep written as a run directory (kind ``patch``).

The analysis lives in :mod:`circuits.activation_patching`. This module keeps the older import
path and call for notebooks and scripts that use them; nothing inside the package imports it.
"""

from __future__ import annotations

from pathlib import Path

from circuits.activation_patching import (  # noqa: F401 (re-exported)
    COMPONENTS,
    EDGES,
    MEASURES,
    ActivationPatching,
    Effects,
    PatchConfig,
    build_plan,
    edge_sweep,
    split_baselines,
)
from circuits.activation_patching.plan import position_groups  # noqa: F401
from circuits.activation_patching.report import (  # noqa: F401
    FIGURES,
    TOP,
    describe,
    summary,
)
from interp.analysis.runner import run_with_arguments


def run_patch(
    out: Path,
    model: str,
    task: str,
    component: str,
    metric: str,
    ablation: str | None = None,
    prompts: int = 8,
    shots: int = 4,
    seed: int = 0,
    max_batch: int | None = None,
    per_position: bool = False,
    log=print,
    executor=None,
) -> Path:
    """Run the sweep and write a run directory under ``out``; return its path. ``executor``:
    where the plan's chunks run (local by default); the manifest records it."""
    return run_with_arguments(ActivationPatching(), locals())
