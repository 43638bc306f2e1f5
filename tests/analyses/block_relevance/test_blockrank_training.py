"""BlockRank training (docs/analyses/block-relevance.md) on the tiny Llama: LoRA adapters that
start as the model and merge exactly, training that touches only the adapters above the cut
and saves a loadable folder, and micro-batches that give the whole-batch step."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.block_relevance.train import (
    BlockRankTrainer,
    LoRALinear,
    add_lora,
    merge_lora,
    save_folder,
)
from interp.models import load_model
from interp.prompts import PromptBuilder
from interp.tasks.suite import build_family_batch

# ---------------------------------------------------------------------------------------------
# BlockRank training


def test_lora_starts_as_the_model_and_merges_exactly():
    base = torch.nn.Linear(6, 5)
    lora = LoRALinear(base, rank=2, alpha=4.0, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 6)
    before = base(x).detach()
    assert torch.allclose(lora(x), before)
    with torch.no_grad():
        lora.b.normal_()
    adapted = lora(x).detach()
    assert not torch.allclose(adapted, before)
    assert torch.allclose(lora.merged()(x), adapted, atol=1e-5)


def test_training_touches_only_adapters_above_the_cut_and_saves_a_loadable_folder(
    tiny_dirs, tmp_path
):
    from transformers import AutoModelForCausalLM

    from interp.organism.tokenizer import build_tokenizer

    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager")
    original = {n: p.detach().clone() for n, p in hf.named_parameters()}
    tokenizer = build_tokenizer()
    trainer = BlockRankTrainer(layer=1, cut=1, steps=2, batch=2, docs=5, lr=1e-2)
    layer, cut = trainer.train(hf, tokenizer, "ranking", prepend_bos=True)
    assert (layer, cut) == (1, 1) and len(trainer.history) == 2
    trained = [n for n, p in hf.named_parameters() if p.grad is not None]
    assert trained and all(
        n.startswith("model.layers.1.") and n.endswith((".a", ".b")) for n in trained
    )
    assert all(torch.equal(p, original[n]) for n, p in hf.named_parameters() if n in original)
    batch = build_family_batch(load_model(tiny_dirs["llama"]).prompt_builder(), "ranking", 2, 5)
    with torch.no_grad():
        adapted = hf(batch.tokens, attention_mask=batch.attention_mask).logits
    record = trainer.record("tiny", "ranking", layer, cut)
    out = save_folder(hf, tokenizer, tmp_path / "trained", tiny_dirs["llama"], record)
    assert json.loads((out / "blockrank.json").read_text())["layer"] == 1
    reloaded = load_model(str(out))
    with torch.no_grad():
        again = reloaded(batch.tokens, batch.attention_mask)
    real = batch.attention_mask.bool()
    assert torch.allclose(again[real], adapted[real], atol=1e-4)


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
        params = add_lora(hf, 0, trainer.rank, trainer.alpha, seed=0)
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


def test_lora_freezes_the_layers_below_the_cut(tiny_dirs):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    params = add_lora(hf, first_layer=1, rank=2, alpha=4.0)
    assert len(params) == 2 * 4  # a and b on q, k, v, o of layer 1
    assert all(not p.requires_grad for n, p in hf.named_parameters() if ".0." in n)
    merge_lora(hf)
    assert not any(isinstance(m, LoRALinear) for m in hf.modules())
