"""iclscope's shared machinery: hooked models, annotated prompts, run directories.

The common entry points are importable from here (``interp.load_model``, ``interp.load_run``);
they load lazily so that ``import interp`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_model": "interp.models",
    "HookedModel": "interp.models",
    "ModelConfig": "interp.models",
    "PromptBuilder": "interp.prompts",
    "PromptBatch": "interp.prompts",
    "Template": "interp.prompts",
    "check_pair": "interp.prompts",
    "load_run": "interp.runs",
    "list_runs": "interp.runs",
    "RunWriter": "interp.runs",
    "IclscopeError": "interp.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")
