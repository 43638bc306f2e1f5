"""Activation patching: patch or ablate every head, layer, position or attention edge, in
batched forward passes, and rank the components by their effect on the answer.

* :mod:`~circuits.activation_patching.plan`: the sweep as one intervention plan;
* :mod:`~circuits.activation_patching.effects`: the table read against the clean and corrupted
  baselines (denoising and noising, the normalised effect, the ranking);
* :mod:`~circuits.activation_patching.report`: tables, heatmaps, summary and report;
* :mod:`~circuits.activation_patching.analysis`: the config and the registered analysis.
"""

from circuits.activation_patching.analysis import ActivationPatching, PatchConfig
from circuits.activation_patching.effects import MEASURES, Effects, split_baselines
from circuits.activation_patching.plan import COMPONENTS, EDGES, build_plan, edge_sweep

__all__ = [
    "COMPONENTS",
    "EDGES",
    "MEASURES",
    "ActivationPatching",
    "Effects",
    "PatchConfig",
    "build_plan",
    "edge_sweep",
    "split_baselines",
]
