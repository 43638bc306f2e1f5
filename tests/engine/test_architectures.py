"""The module forward on every decoder layout it drives: tiny random models of each, built from
configs whose windows are shorter than the prompts (so sliding masks matter), whose norms are
random (so a norm run in the wrong place shows), with soft-capping, QK-norm, partial rotary and
a parallel residual where the architecture has them."""

from __future__ import annotations

import pytest
import torch
from random_plans import HOOK_KINDS, random_plan

from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan
from interp.models import load_model
from interp.models.decoder_parts import DecoderParts
from interp.models.fast_path import drivable_hook_kinds
from interp.models.module_forward import ModuleForward
from interp.models.tiny import TINY_ARCHITECTURES, build_tiny_model
from interp.organism.tokenizer import build_tokenizer
from interp.tasks.suite import build_pair_batches

TOL = 1e-4


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def tiny(request, tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp(request.param), request.param)
    model = load_model(str(folder))
    # the folder holds the organism's tokenizer, but transformers picks a tokenizer class by
    # model type for some of them (Qwen's), which would split the organism's words
    model.tokenizer = build_tokenizer()
    return request.param, model


def prompts(model, seed: int):
    return build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 3, seed)


def test_an_unedited_module_forward_gives_the_models_own_logits(tiny):
    arch, model = tiny
    clean, _ = prompts(model, 0)
    hf = model.plain_model()
    with torch.no_grad():
        ref = hf(input_ids=clean.tokens).logits
    ours, rec = ModuleForward(hf).record(clean.tokens, [])
    assert (ours - ref).abs().max() <= TOL
    # the recording holds every layer's keys over the whole prompt, for resuming
    assert len(rec.keys) == model.cfg.n_layers
    assert rec.keys[0].shape[2] == clean.tokens.shape[1]


def test_random_plans_on_the_fast_path_equal_a_full_forward(tiny):
    """Patches at random hooks, positions and heads, mixes, and knockouts; the fast path
    resumes rows by layer, position and tail; the reference is the hooked backend's full
    forward for each row."""
    arch, model = tiny
    seed = TINY_ARCHITECTURES.index(arch)
    clean, corrupted = prompts(model, seed)
    names = set(model.hook_names())
    kinds = tuple(k for k in HOOK_KINDS if f"blocks.0.{k}" in names)
    plan = random_plan(model.cfg, clean.tokens.shape[1], seed, kinds=kinds)
    engine = Engine(model, max_batch=16, min_rows=8)
    assert engine.uses_native(plan), f"{arch} should take the module forward"
    fast = engine.run(plan, clean, corrupted, progress=False)
    slow = Engine(model, fast=False).run(plan, clean, corrupted, resume=False, progress=False)
    diff = (torch.tensor(fast.metric.values) - torch.tensor(slow.metric.values)).abs().max()
    assert diff <= TOL
    starts = engine.layout(plan, clean, corrupted).starts
    assert any(pos > 0 for pos, _ in starts), "no row resumed mid-prompt"


def test_the_config_alone_says_which_hooks_the_fast_path_offers(tiny):
    arch, model = tiny
    kinds = drivable_hook_kinds(model.hf_model.config)
    assert kinds == DecoderParts.find(model.plain_model()).hook_kinds()
    # a parallel residual has no mid-point, as in TransformerLens
    assert ("hook_resid_mid" in kinds) == ("blocks.0.hook_resid_mid" in model.hook_names())


def test_an_architecture_it_does_not_know_takes_the_hooked_path(tiny_dirs, caplog, monkeypatch):
    model = load_model(tiny_dirs["llama"])
    clean, corrupted = prompts(model, 0)
    plan = InterventionPlan(random_plan(model.cfg, clean.tokens.shape[1], 0, n_rows=4).rows)
    monkeypatch.setattr(model.hf_model.config, "model_type", "bloom")
    engine = Engine(model)
    with caplog.at_level("INFO", logger="iclscope"):
        engine.run(plan, clean, corrupted, progress=False)
    assert not engine.uses_native(plan)
    assert "no module forward" in caplog.text and "resuming by layer" in caplog.text
