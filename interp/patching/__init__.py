"""The old name of :mod:`interp.engine` (the intervention plan and the batched engine that runs
it), kept so that existing notebooks and scripts import as before: ``interp.patching.plan`` is
``interp.engine.plan``, ``interp.patching.engine`` is ``interp.engine.batched``, and
``interp.patching.executor`` re-exports :mod:`interp.execution`. Nothing inside the package
imports this name; "patching" now names only the analysis, :mod:`circuits.activation_patching`.
"""

from __future__ import annotations

import importlib
import sys

from interp.engine import InterventionPlan, Knockout, Patch, PlanRow

_MOVED = {
    "plan": "interp.engine.plan",
    "engine": "interp.engine.batched",
    "sources": "interp.engine.sources",
    "sweeps": "interp.engine.sweeps",
    "metrics": "interp.engine.metrics",
    "attribution": "interp.engine.attribution",
    "memory": "interp.engine.memory",
    "dispatch": "interp.engine.dispatch",
    "layout": "interp.engine.layout",
    "stacking": "interp.engine.stacking",
}
for _old, _new in _MOVED.items():
    sys.modules[f"{__name__}.{_old}"] = importlib.import_module(_new)

__all__ = ["InterventionPlan", "Knockout", "Patch", "PlanRow"]
