"""Models: the registry of named models, the GGUF cache, and the hooked backends.

* :mod:`interp.models.registry`: the names ``iclscope models`` lists (real models first);
* :mod:`interp.models.gguf_cache`: GGUF files from PyPI packages, converted once to a folder;
* :mod:`interp.models.files`: the checks of a model folder's files, before anything loads them;
* :mod:`interp.models.interface`: :class:`HookedModel`, :class:`ModelConfig`, the hook names;
* :mod:`interp.models.evict`: eviction flags as key masks, for both backends;
* :mod:`interp.models.transformer_lens_backend`: the TransformerLens backend;
* :mod:`interp.models.nnsight_backend`: the same hook names over nnsight;
* :mod:`interp.models.loader`: ``resolve_spec`` and ``load_model``, which pick a backend;
* :mod:`interp.models.native`: the engine's resumable fast forward;
* :mod:`interp.models.tiny`: tiny random models for tests;
* :mod:`interp.models.hooked`: the old names, re-exported.

Imports go one way: interface < backends < loader, and the registry never imports a backend.
"""

from interp.models.interface import (
    Backend,
    Cache,
    FwdHooks,
    HookedModel,
    HookFn,
    HookRef,
    ModelConfig,
)
from interp.models.loader import load_model, resolve_spec
from interp.models.registry import MODELS, ORGANISM_DIR, REAL_MODELS, ModelEntry, get_entry
from interp.models.transformer_lens_backend import TransformerLensModel

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
