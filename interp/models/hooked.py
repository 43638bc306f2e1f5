"""The old home of the hooked models, kept so that existing imports keep working.

The code now lives in layers: :mod:`interp.models.interface` (``HookedModel``, ``ModelConfig``,
``HookRef``, the hook-name helpers) < :mod:`interp.models.transformer_lens_backend` and
:mod:`interp.models.nnsight_backend` < :mod:`interp.models.loader` (``resolve_spec``,
``load_model``). Import from those; nothing in the project imports this module.
"""

from interp.models.evict import apply_flags, call_flag_hooks, evict_names, split_evict_hooks
from interp.models.interface import (
    TASK_INJECT,
    Backend,
    Cache,
    EvictFrom,
    FwdHooks,
    HookedModel,
    HookFn,
    HookRef,
    ModelConfig,
    _CacheComplete,
    _is_z,
    _matches,
    alias_task_inject,
)
from interp.models.loader import load_model, resolve_spec
from interp.models.transformer_lens_backend import TransformerLensModel

__all__ = [
    "TASK_INJECT",
    "Backend",
    "Cache",
    "EvictFrom",
    "FwdHooks",
    "HookFn",
    "HookRef",
    "HookedModel",
    "ModelConfig",
    "TransformerLensModel",
    "_CacheComplete",
    "_is_z",
    "_matches",
    "alias_task_inject",
    "apply_flags",
    "call_flag_hooks",
    "evict_names",
    "load_model",
    "resolve_spec",
    "split_evict_hooks",
]
