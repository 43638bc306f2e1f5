"""The intervention engine: the plan every analysis describes, the batched engine that runs
it, and what feeds them. (Patching, ablation, knockouts, soft injection and eviction masks are
all rows of one plan; "patching" as a word names the analysis, :mod:`circuits.activation_patching`,
and :class:`~interp.engine.plan.Patch` the edit that writes one run's activation into another.)

* :mod:`~interp.engine.plan`: the plan types every analysis hands to the engine;
* :mod:`~interp.engine.batched`: stacks a plan's rows into batched forwards;
* :mod:`~interp.engine.sources`: the banks of replacement activations a plan names;
* :mod:`~interp.engine.sweeps`: plans over every head, layer or position;
* :mod:`~interp.engine.metrics`: what a row's logits are scored by;
* :mod:`~interp.engine.attribution`: the gradient approximation to a sweep.
"""

from interp.engine.plan import InterventionPlan, Knockout, Patch, PlanRow

__all__ = ["Engine", "InterventionPlan", "Knockout", "Patch", "PlanRow"]


def __getattr__(name: str):
    if name == "Engine":  # the engine imports torch: only when asked for
        from interp.engine.batched import Engine

        return Engine
    raise AttributeError(f"module 'interp.engine' has no attribute {name!r}")
