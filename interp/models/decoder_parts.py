"""Where the parts of a Hugging Face decoder sit, so a forward pass can be driven layer by layer
with the model's own modules.

The module forward (:mod:`interp.models.module_forward`) never re-derives an architecture's
math: each decoder layer runs as Hugging Face wrote it, with its own norms, rotary or learned
positions, QK-norm, sandwich norms and soft-capping. What it must know is where the hook points
sit among those modules, and that differs by layout, not by architecture:

* **pre-norm** (Llama, Mistral, Qwen 2 and 3, Phi-3, GPT-2, sequential GPT-NeoX):
  ``hook_attn_out`` is the attention module's output, ``hook_resid_mid`` the input of the norm
  before the MLP, ``hook_mlp_out`` the MLP's output;
* **sandwich** (Gemma 2 and 3): the attention and MLP outputs pass through a norm of their own
  before joining the residual, and the hooks read after it (as TransformerLens does);
* **post-norm** (OLMo 2): no norm before the MLP, so ``hook_resid_mid`` is the MLP's input;
* **parallel** (GPT-NeoX with a parallel residual): attention and MLP both read
  ``hook_resid_pre``, so there is no ``hook_resid_mid``.

Architectures outside :data:`MODULE_FORWARD_ARCHITECTURES` are not driven this way: some add
position information the layers cannot see from their inputs (ALiBi's attention biases, a
multiplier the causal-LM head applies), and a fast path that is silently wrong is worse than a
slow one.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from torch import nn

from interp.models.fast_path import EVERY_HOOK, MODULE_FORWARD_ARCHITECTURES

_ATTENTION = ("self_attn", "attn", "attention")
_FINAL_NORM = ("norm", "ln_f", "final_layer_norm", "final_norm")


class NotDrivable(Exception):
    """The model's layout is not one the module forward knows; the reason is the message."""


@dataclass(frozen=True)
class LayerParts:
    """The modules of one decoder layer that carry hook points."""

    attention: nn.Module
    attn_out: nn.Module
    """Its output is ``hook_attn_out`` (the attention module, or its post-norm)."""
    mlp_in: nn.Module | None
    """Its input is ``hook_resid_mid`` (``None`` for a parallel residual)."""
    mlp_out: nn.Module
    """Its output is ``hook_mlp_out``."""


@dataclass(frozen=True)
class DecoderParts:
    """A decoder's layers, final norm, unembedding and position embedding, found on the model."""

    base: nn.Module
    layers: nn.ModuleList
    final_norm: nn.Module
    unembed: nn.Module
    rotary: nn.Module | None
    rotary_by_type: bool
    """Whether the rotary module takes the layer's type (Gemma 3: local and global bases)."""
    layer_types: tuple[str, ...] | None
    per_layer: tuple[LayerParts, ...]
    logit_softcap: float | None
    """Gemma 2's final soft-capping of the logits, applied by the causal-LM head."""
    cache_kwarg: str
    """What a layer calls its cache argument (``cache``; GPT-NeoX's ``layer_past``)."""

    @property
    def has_resid_mid(self) -> bool:
        return all(p.mlp_in is not None for p in self.per_layer)

    def hook_kinds(self) -> set[str]:
        kinds = set(EVERY_HOOK)
        return kinds if self.has_resid_mid else kinds - {"hook_resid_mid"}

    @classmethod
    def find(cls, hf) -> DecoderParts:
        """The parts of ``hf``, a ``*ForCausalLM``; :class:`NotDrivable` says why not."""
        config = hf.config
        model_type = getattr(config, "model_type", None)
        if model_type not in MODULE_FORWARD_ARCHITECTURES:
            raise NotDrivable(f"{model_type!r} is not among the module forward's architectures")
        base = hf.base_model
        n_layers = config.num_hidden_layers
        layers = next(
            (m for m in base.children() if isinstance(m, nn.ModuleList) and len(m) == n_layers),
            None,
        )
        norm = next((getattr(base, n) for n in _FINAL_NORM if hasattr(base, n)), None)
        if layers is None or norm is None:
            raise NotDrivable("no list of decoder layers or no final norm on the base model")
        parallel = bool(getattr(config, "use_parallel_residual", False))
        rotary = getattr(base, "rotary_emb", None)
        by_type = rotary is not None and "layer_type" in _parameters(rotary)
        types = getattr(config, "layer_types", None)
        return cls(
            base=base,
            layers=layers,
            final_norm=norm,
            unembed=hf.get_output_embeddings(),
            rotary=rotary,
            rotary_by_type=by_type,
            layer_types=tuple(types) if types else None,
            per_layer=tuple(_layer_parts(layer, parallel) for layer in layers),
            logit_softcap=getattr(config, "final_logit_softcapping", None),
            cache_kwarg=_cache_kwarg(layers[0]),
        )


def _parameters(module: nn.Module):
    return inspect.signature(module.forward).parameters


def _cache_kwarg(layer: nn.Module) -> str:
    params = _parameters(layer)
    found = next((n for n in ("cache", "past_key_values", "layer_past") if n in params), None)
    if found is None:
        raise NotDrivable(f"a decoder layer that takes no cache: {type(layer).__name__}")
    return found


def _layer_parts(layer: nn.Module, parallel: bool) -> LayerParts:
    attention = next((getattr(layer, n) for n in _ATTENTION if hasattr(layer, n)), None)
    mlp = getattr(layer, "mlp", None)
    if attention is None or mlp is None or not hasattr(attention, "layer_idx"):
        raise NotDrivable(f"a decoder layer without the attention and MLP modules: {layer}")
    if hasattr(layer, "post_feedforward_layernorm"):  # sandwich or post-norm
        return LayerParts(
            attention=attention,
            attn_out=layer.post_attention_layernorm,
            mlp_in=getattr(layer, "pre_feedforward_layernorm", mlp),
            mlp_out=layer.post_feedforward_layernorm,
        )
    mlp_in = getattr(layer, "post_attention_layernorm", None) or getattr(layer, "ln_2", None)
    return LayerParts(
        attention=attention,
        attn_out=attention,
        mlp_in=None if parallel else mlp_in,
        mlp_out=mlp,
    )
