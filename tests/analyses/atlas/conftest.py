"""A tiny model with planted roles: the organism with two key-value groups turned into exact
previous-token heads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

PLANTED_GROUPS = ((1, 1), (2, 2))
"""(layer, key-value group) made previous-token heads; each group holds two query heads."""
PLANTED = {(1, 2), (1, 3), (2, 4), (2, 5)}


def plant_previous_token_heads(out: Path) -> Path:
    """Copy the organism with attention biases, its planted groups' queries and keys constant
    (zero weights, a bias): their attention then depends on relative position alone, and the
    rotary phases put it all (to within 1e-3) on the token before. Such a head is a forerunner
    head by construction (the label attends to the token before it, its forerunner) and keeps
    all its attention under SnapKV (its one key is the latest)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from interp.models import resolve_spec

    src = Path(resolve_spec("organism")[0])
    config = LlamaConfig.from_pretrained(src)
    config.attention_bias = True
    model = LlamaForCausalLM(config)
    missing, _ = model.load_state_dict(
        AutoModelForCausalLM.from_pretrained(src).state_dict(), strict=False
    )
    assert all(k.endswith("bias") for k in missing), missing
    d = config.head_dim
    per_group = config.num_attention_heads // config.num_key_value_heads
    freq = config.rope_parameters["rope_theta"] ** (-torch.arange(0, d, 2).float() / d)
    # weights on the four fastest rotary pairs: their cosines agree only at distance 1
    amps = torch.tensor([1, 1, 0.5, 1] + [0] * (d // 2 - 4)).sqrt()
    key = torch.cat([amps, torch.zeros(d // 2)])
    query = 160.0 * torch.cat([amps * torch.cos(freq), -amps * torch.sin(freq)])
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
                getattr(layer.self_attn, proj).bias.zero_()
        for layer, group in PLANTED_GROUPS:
            att = model.model.layers[layer].self_attn
            ks = slice(group * d, (group + 1) * d)
            att.k_proj.weight[ks] = 0
            att.k_proj.bias[ks] = key
            for head in range(group * per_group, (group + 1) * per_group):
                qs = slice(head * d, (head + 1) * d)
                att.q_proj.weight[qs] = 0
                att.q_proj.bias[qs] = query
    model.save_pretrained(out)
    for f in src.glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def planted_model(tmp_path_factory) -> str:
    return str(plant_previous_token_heads(tmp_path_factory.mktemp("planted_atlas") / "model"))


@pytest.fixture(scope="session")
def planted_heads() -> set[tuple[int, int]]:
    return set(PLANTED)
