"""Which path the engine takes on a model, from its config alone (no torch, no weights): the
module forward where it knows the decoder's layout, else the hooked backend."""

from __future__ import annotations

MODULE_FORWARD_ARCHITECTURES = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "gpt2",
    "gpt_neox",
    "phi3",
    "olmo",
    "olmo2",
)
"""Model types whose decoder layers the module forward drives (each checked against a full
forward on random plans in the test suite)."""

EVERY_HOOK = (
    "hook_resid_pre",
    "attn.hook_attn_scores",
    "attn.hook_z",
    "attn.hook_task_inject",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
)
"""The hook kinds the module forward offers, per layer, in the order a layer visits them."""


def drivable_hook_kinds(config) -> set[str] | None:
    """The hook kinds the module forward offers on a model of this config, from the config
    alone (no weights loaded); ``None`` where it does not drive the architecture."""
    if getattr(config, "model_type", None) not in MODULE_FORWARD_ARCHITECTURES:
        return None
    if getattr(config, "use_parallel_residual", False):
        return set(EVERY_HOOK) - {"hook_resid_mid"}
    return set(EVERY_HOOK)


def engine_path(config) -> str:
    """How the engine runs plans on a model of this config, in a few words."""
    if drivable_hook_kinds(config) is None:
        return "hooked (resumes by layer)"
    return "fast (resumes by layer and position)"
