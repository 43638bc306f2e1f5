"""Patching: the intervention plan, the engine that runs it in batches, and what feeds them.

* :mod:`~interp.patching.plan`: the plan types every analysis hands to the engine;
* :mod:`~interp.patching.engine`: stacks a plan's rows into batched forwards;
* :mod:`~interp.patching.sources`: the banks of replacement activations a plan names;
* :mod:`~interp.patching.sweeps`: plans over every head, layer or position;
* :mod:`~interp.patching.metrics`: what a row's logits are scored by;
* :mod:`~interp.patching.attribution`: the gradient approximation to a sweep.
"""

from interp.patching.plan import InterventionPlan, Knockout, Patch, PlanRow

__all__ = ["InterventionPlan", "Knockout", "Patch", "PlanRow"]
