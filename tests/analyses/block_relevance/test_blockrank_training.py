"""BlockRank training (docs/analyses/block-relevance.md) on the tiny Llama: peft's LoRA adapters
start as the model, get gradients and merge exactly; training changes only the attention
projections above the cut and saves a plain folder that loads as the merged model; and
micro-batches give the whole-batch step."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.block_relevance.adapters import (
    PROJECTIONS,
    adapter_parameters,
    add_lora,
    merge_lora,
)
from circuits.block_relevance.train import BlockRankTrainer, save_folder
from interp.models import load_model
from interp.prompts import PromptBuilder
from interp.tasks.suite import build_family_batch

# ---------------------------------------------------------------------------------------------
# peft's adapters


def _tiny(tiny_dirs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")


def _tokens(tiny_dirs):
    return build_family_batch(load_model(tiny_dirs["llama"]).prompt_builder(), "ranking", 2, 5)


def test_adapters_start_as_the_model_get_gradients_and_merge_exactly(tiny_dirs):
    """B starts at zero (the adapted model is the model), a backward reaches every adapter
    and nothing else, and merge_and_unload leaves a plain model with the adapted logits."""
    from peft.tuners.lora import LoraLayer

    from interp.organism.tokenizer import build_tokenizer

    hf = _tiny(tiny_dirs)
    batch = _tokens(tiny_dirs)
    with torch.no_grad():
        before = hf(batch.tokens, attention_mask=batch.attention_mask).logits
    adapted = add_lora(hf, first_layer=1, rank=2, alpha=4.0)
    with torch.no_grad():
        assert torch.equal(hf(batch.tokens, attention_mask=batch.attention_mask).logits, before)
    params = adapter_parameters(adapted)
    names = [n for n, p in hf.named_parameters() if p.requires_grad]
    assert len(params) == len(names) == 2 * len(PROJECTIONS)  # A and B on q, k, v, o
    assert all(n.startswith("model.layers.1.self_attn.") and ".lora_" in n for n in names)
    trainer = BlockRankTrainer(layer=1, cut=1, batch=2, docs=5)
    builder = PromptBuilder(build_tokenizer(), prepend_bos=True, padding_side="left")
    opt = torch.optim.SGD(params, lr=0.5)
    for step in range(2):  # the first step moves B only (A's gradient is B^T ... = 0)
        trainer.step(hf, opt, trainer.prompts(builder, "ranking", step), 1)
        grads = {n: p.grad for n, p in hf.named_parameters() if p.requires_grad}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
        assert any(g.abs().max() > 0 for n, g in grads.items() if "lora_B" in n)
    assert all(g.abs().max() > 0 for n, g in grads.items() if "lora_A" in n)
    assert all(p.grad is None for p in hf.parameters() if not p.requires_grad)
    with torch.no_grad():
        adapted_logits = hf(batch.tokens, attention_mask=batch.attention_mask).logits
    assert not torch.allclose(adapted_logits, before, atol=1e-4)
    plain = merge_lora(adapted)
    assert plain is hf and not hasattr(hf, "peft_config")
    assert not any(isinstance(m, LoraLayer) for m in hf.modules())
    assert not any("lora_" in n for n, _ in hf.named_parameters())
    with torch.no_grad():
        merged = hf(batch.tokens, attention_mask=batch.attention_mask).logits
    assert torch.allclose(merged, adapted_logits, atol=1e-5)


def test_adapters_are_seeded_and_keep_the_rank_and_alpha(tiny_dirs):
    """The same seed draws the same A (the caller's random stream untouched); another seed
    draws another; rank and alpha are peft's r and lora_alpha (scale alpha / rank)."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(123)
        adapted = add_lora(_tiny(tiny_dirs), first_layer=0, rank=3, alpha=6.0, seed=seed)
        draws.append([p.detach().clone() for p in adapter_parameters(adapted)])
        assert torch.equal(torch.rand(3), expected)
    same, again, other = draws
    assert all(torch.equal(a, b) for a, b in zip(same, again))
    assert not all(torch.equal(a, b) for a, b in zip(same, other))
    layer = adapted.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.r["default"] == 3 and layer.scaling["default"] == pytest.approx(2.0)


def test_lora_freezes_the_layers_below_the_cut(tiny_dirs):
    hf = _tiny(tiny_dirs)
    adapted = add_lora(hf, first_layer=1, rank=2, alpha=4.0)
    assert len(adapter_parameters(adapted)) == 2 * 4  # A and B on q, k, v, o of layer 1
    assert all(not p.requires_grad for n, p in hf.named_parameters() if ".0." in n)
    assert all(".layers.1." in n for n, p in hf.named_parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# BlockRank training


def test_training_changes_only_attention_above_the_cut_and_saves_a_loadable_folder(
    tiny_dirs, tmp_path
):
    """After training the model is plain (merged) and differs from the base only in the
    attention projections of layers >= cut; the saved folder is a plain Hugging Face folder
    whose logits are the merged model's."""
    from interp.organism.tokenizer import build_tokenizer

    hf = _tiny(tiny_dirs)
    original = {n: p.detach().clone() for n, p in hf.named_parameters()}
    tokenizer = build_tokenizer()
    trainer = BlockRankTrainer(layer=1, cut=1, steps=2, batch=2, docs=5, lr=1e-2)
    layer, cut = trainer.train(hf, tokenizer, "ranking", prepend_bos=True)
    assert (layer, cut) == (1, 1) and len(trainer.history) == 2
    assert dict(hf.named_parameters()).keys() == original.keys()  # merged: no adapters left
    changed = {n for n, p in hf.named_parameters() if not torch.equal(p, original[n])}
    projections = {f"model.layers.1.self_attn.{p}.weight" for p in PROJECTIONS}
    assert changed and changed <= projections
    batch = _tokens(tiny_dirs)
    with torch.no_grad():
        adapted = hf(batch.tokens, attention_mask=batch.attention_mask).logits
    record = trainer.record("tiny", "ranking", layer, cut)
    out = save_folder(hf, tokenizer, tmp_path / "trained", tiny_dirs["llama"], record)
    assert json.loads((out / "blockrank.json").read_text())["layer"] == 1
    assert not list(out.glob("adapter_*")), "a plain model folder, no peft adapter files"
    assert (out / "model.safetensors").is_file()
    reloaded = load_model(str(out))
    with torch.no_grad():
        again = reloaded(batch.tokens, batch.attention_mask)
    real = batch.attention_mask.bool()
    assert torch.allclose(again[real], adapted[real], atol=1e-4)


def test_save_folder_merges_a_peft_model(tiny_dirs, tmp_path):
    """Given peft's wrapper itself, the folder holds the merged model."""
    from interp.organism.tokenizer import build_tokenizer

    hf = _tiny(tiny_dirs)
    adapted = add_lora(hf, first_layer=0, rank=2, alpha=4.0)
    with torch.no_grad():
        for p in adapter_parameters(adapted):
            p.normal_(std=0.05)  # a non-zero update, as training would leave
    batch = _tokens(tiny_dirs)
    with torch.no_grad():
        want = hf(batch.tokens, attention_mask=batch.attention_mask).logits
    record = {"steps_done": 1, "base_model": "tiny", "layer": 1}
    out = save_folder(adapted, build_tokenizer(), tmp_path / "f", tiny_dirs["llama"], record)
    assert not list(out.glob("adapter_*"))
    with torch.no_grad():
        got = load_model(str(out))(batch.tokens, batch.attention_mask)
    real = batch.attention_mask.bool()
    assert torch.allclose(got[real], want[real], atol=1e-4)


def test_micro_batches_give_the_whole_batch_step(tiny_dirs):
    """Gradient accumulation over micro-batches of one prompt equals the unsplit step: the
    same gradients, parameters and logged losses after two steps (the first only moves the
    LoRA ``b``, which starts at zero, so the second is where ``a`` gets a gradient)."""
    from transformers import AutoModelForCausalLM

    from interp.organism.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    results = []
    for micro in (None, 1):
        hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")
        trainer = BlockRankTrainer(layer=1, cut=0, batch=4, docs=5, micro_batch=micro)
        params = adapter_parameters(add_lora(hf, 0, trainer.rank, trainer.alpha, seed=0))
        opt = torch.optim.SGD(params, lr=0.5)
        builder = PromptBuilder(tokenizer, prepend_bos=True, padding_side="left")
        logged = []
        for step in range(2):
            batch = trainer.prompts(builder, "ranking", step)
            logged.append(trainer.step(hf, opt, batch, 1))
        results.append(([p.grad.clone() for p in params], [p.detach().clone() for p in params]))
        results[-1] += (logged,)
    (grads, weights, logged), (grads_1, weights_1, logged_1) = results
    assert len(set(batch.attention_mask.sum(-1).tolist())) > 1  # the prompts are padded
    assert max((a - b).abs().max().item() for a, b in zip(grads, grads_1)) < 1e-6
    assert max((a - b).abs().max().item() for a, b in zip(weights, weights_1)) < 1e-6
    assert any(g.abs().max() > 0 for g in grads[::2])  # the ``a`` of every adapter moved
    for (loss, stats), (loss_1, stats_1) in zip(logged, logged_1):
        assert loss == pytest.approx(loss_1, abs=1e-6)
        assert stats == pytest.approx(stats_1, abs=1e-6)


def test_training_is_deterministic_under_its_seed(tiny_dirs):
    """Two trainings with the same seed give the same weights and losses; another seed (other
    prompts, other initial adapters) gives other weights."""
    from interp.organism.tokenizer import build_tokenizer

    def trained(seed: int):
        hf = _tiny(tiny_dirs)
        trainer = BlockRankTrainer(layer=1, cut=0, steps=2, batch=2, docs=5, lr=1e-2, seed=seed)
        trainer.train(hf, build_tokenizer(), "ranking", prepend_bos=True)
        losses = [h["loss"] for h in trainer.history]
        return {n: p.detach().clone() for n, p in hf.named_parameters()}, losses

    (first, losses), (again, losses_again), (other, _) = trained(0), trained(0), trained(1)
    assert losses == losses_again
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not all(torch.equal(first[n], other[n]) for n in first)
