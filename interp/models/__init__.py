"""Models: the registry of named models, the GGUF cache, and the hooked backends.

* :mod:`interp.models.registry`: the names ``iclscope models`` lists (real models first);
* :mod:`interp.models.gguf_cache`: GGUF files from PyPI packages, converted once to a folder;
* :mod:`interp.models.hooked`: :class:`HookedModel` and the TransformerLens backend;
* :mod:`interp.models.nnsight_backend`: the same hook names over nnsight;
* :mod:`interp.models.native`: the engine's resumable fast forward;
* :mod:`interp.models.tiny`: tiny random models for tests.
"""

from interp.models.hooked import (
    Backend,
    Cache,
    FwdHooks,
    HookedModel,
    HookFn,
    HookRef,
    ModelConfig,
    TransformerLensModel,
    load_model,
    resolve_spec,
)
from interp.models.registry import MODELS, ORGANISM_DIR, REAL_MODELS, ModelEntry, get_entry

__all__ = [
    "Backend",
    "Cache",
    "FwdHooks",
    "HookFn",
    "HookRef",
    "HookedModel",
    "MODELS",
    "ModelConfig",
    "ModelEntry",
    "ORGANISM_DIR",
    "REAL_MODELS",
    "TransformerLensModel",
    "get_entry",
    "load_model",
    "resolve_spec",
]
