"""BlockRank's LoRA adapters, by peft: on the attention projections q, k, v and o of the layers
from a cut up, every original weight frozen, and merged back into the weights before the model
is saved, so the saved folder is a plain Hugging Face model.

``rank`` and ``alpha`` mean what they mean in peft (and in the LoRA paper): the update is
``(alpha / rank) * B @ A``, ``B`` starting at zero so training starts from the unchanged model,
``A`` drawn (Kaiming-uniform) from a generator seeded by ``seed`` alone.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
"""The attention projections that get an adapter (Llama-family names)."""


def lora_config(n_layers: int, first_layer: int, rank: int, alpha: float):
    """peft's :class:`~peft.LoraConfig` for the attention projections of layers
    ``first_layer..n_layers - 1`` (no dropout, no bias)."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        bias="none",
        target_modules=list(PROJECTIONS),
        layers_to_transform=list(range(first_layer, n_layers)),
        layers_pattern="layers",
    )


def add_lora(model, first_layer: int, rank: int, alpha: float, seed: int = 0):
    """Freeze ``model`` and put LoRA adapters on the attention projections of layers
    ``first_layer..``; return peft's wrapper (:class:`~peft.PeftModel`). The adapters live
    inside ``model`` itself, so ``model``'s own forward runs through them."""
    from peft import get_peft_model

    config = lora_config(model.config.num_hidden_layers, first_layer, rank, alpha)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)  # seeded A, the caller's random stream untouched
        # peft asks transformers a deprecated question; the answer is right, the warning noise
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        return get_peft_model(model, config)


def adapter_parameters(adapted) -> list[nn.Parameter]:
    """The trainable parameters of ``adapted`` (the adapters' A and B, nothing else)."""
    return [p for p in adapted.parameters() if p.requires_grad]


def merge_lora(adapted):
    """Fold the adapters into the weights and take them out (peft's ``merge_and_unload``);
    return the plain model, the same object the adapters were put on."""
    return adapted.merge_and_unload()
