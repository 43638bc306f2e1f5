"""Hooked models: both backends give the same numbers, and bad specs fail clearly."""

from __future__ import annotations

import pytest
import torch

from interp.errors import IclscopeError
from interp.models import ORGANISM_DIR, load_model
from interp.tasks.suite import build_family_batch

TOL = 1e-5
SPECS = ["gpt2", "llama", "organism"]


@pytest.fixture(scope="module")
def pairs(tiny_dirs):
    """(transformer_lens, nnsight) models per spec, loaded once."""
    out = {}
    for spec in SPECS:
        where = "organism" if spec == "organism" else tiny_dirs[spec]
        out[spec] = (load_model(where, "transformer_lens"), load_model(where, "nnsight"))
    return out


def _batch(model, family="sentiment_arbitrary", n=3, k=3, seed=0):
    return build_family_batch(model.prompt_builder(), family, n, k, seed)


@pytest.mark.parametrize("spec", SPECS)
def test_logits_and_head_outputs_match_across_backends(pairs, spec):
    tl, nn = pairs[spec]
    assert tl.cfg == nn.cfg
    for family in ("sentiment_arbitrary", "fn_copy_last"):
        batch = _batch(tl, family)
        names = lambda n: n.endswith(("attn.hook_z", "hook_resid_pre", "hook_resid_post"))
        logits_tl, cache_tl = tl.run_with_cache(batch.tokens, names, batch.attention_mask)
        logits_nn, cache_nn = nn.run_with_cache(batch.tokens, names, batch.attention_mask)
        assert (logits_tl - logits_nn).abs().max() <= TOL
        assert sorted(cache_tl) == sorted(cache_nn)
        assert len(cache_tl) == 3 * tl.cfg.n_layers
        for name, act in cache_tl.items():
            assert act.shape == cache_nn[name].shape
            assert (act - cache_nn[name]).abs().max() <= TOL, name
        z = cache_tl["blocks.0.attn.hook_z"]
        assert z.shape[2:] == (tl.cfg.n_heads, tl.cfg.d_head)


@pytest.mark.parametrize("spec", SPECS)
def test_a_head_edit_matches_across_backends(pairs, spec):
    tl, nn = pairs[spec]
    batch = _batch(tl, seed=1)
    layer = tl.cfg.n_layers - 1
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(batch.tokens.shape[0], batch.tokens.shape[1], tl.cfg.d_head, generator=gen)

    def replace_head(z, hook):
        z = z.clone()
        z[:, :, 1] = noise
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", replace_head)]
    edited_tl = tl.run_with_hooks(batch.tokens, hooks, batch.attention_mask)
    edited_nn = nn.run_with_hooks(batch.tokens, hooks, batch.attention_mask)
    clean = tl(batch.tokens, batch.attention_mask)
    assert (edited_tl - clean).abs().max() > 1e-3  # the edit did something
    assert (edited_tl - edited_nn).abs().max() <= TOL


@pytest.mark.parametrize("spec", ["gpt2", "llama"])
def test_cache_without_logits_stops_early_and_caches_the_same(pairs, spec):
    for model in pairs[spec]:
        batch = _batch(model)
        last = model.cfg.n_layers - 1
        names = ["blocks.0.hook_resid_pre", f"blocks.{last}.attn.hook_pattern"]
        names.append(f"blocks.{last}.hook_resid_post")
        calls, stage = [], ["full"]  # the stage of every unembedding call
        handle = model.hf_model.lm_head.register_forward_hook(
            lambda *_, calls=calls, stage=stage: calls.append(stage[0])
        )
        try:
            logits, full = model.run_with_cache(batch.tokens, names, batch.attention_mask)
            stage[0] = "early"
            none, part = model.run_with_cache(batch.tokens, names, batch.attention_mask, False)
            stage[0] = "again"
            again, _ = model.run_with_cache(batch.tokens, names, batch.attention_mask)
        finally:
            handle.remove()
        # the unembedding never ran in the early-stopped forward, and still runs afterwards
        assert none is None and "early" not in calls and "again" in calls, model.backend
        assert (again - logits).abs().max() == 0  # the early stop left no hook behind
        assert sorted(part) == sorted(full) == sorted(names)
        for name in names:
            assert torch.equal(part[name], full[name]), name


def test_patterns_match_and_gqa_shapes(pairs):
    tl, nn = pairs["llama"]
    assert tl.cfg.n_kv_heads < tl.cfg.n_heads  # grouped-query attention really exercised
    batch = _batch(tl)
    names = ["blocks.1.attn.hook_pattern", "blocks.1.attn.hook_k", "blocks.1.hook_mlp_out"]
    _, a = tl.run_with_cache(batch.tokens, names, batch.attention_mask)
    _, b = nn.run_with_cache(batch.tokens, names, batch.attention_mask)
    for n in names:
        assert (a[n] - b[n]).abs().max() <= TOL, n
    assert a["blocks.1.attn.hook_k"].shape[2] == tl.cfg.n_kv_heads
    rows = a["blocks.1.attn.hook_pattern"].sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)


def test_logit_lens_of_last_layer_is_the_logits(pairs):
    tl, _ = pairs["llama"]
    batch = _batch(tl)
    last = f"blocks.{tl.cfg.n_layers - 1}.hook_resid_post"
    logits, cache = tl.run_with_cache(batch.tokens, [last], batch.attention_mask)
    assert (tl.logit_lens(cache[last]) - logits).abs().max() <= TOL


def test_organism_is_embedded_llama_with_gqa():
    assert (ORGANISM_DIR / "model.safetensors").exists()
    m = load_model("organism")
    assert m.cfg.architecture == "llama" and m.cfg.n_kv_heads < m.cfg.n_heads
    assert m.cfg.n_ctx >= 512


def test_unknown_model_path():
    with pytest.raises(IclscopeError, match="unknown model path") as err:
        load_model("./no/such/model")
    assert "local Hugging Face folder" in err.value.fix


def test_folder_without_config(tmp_path):
    with pytest.raises(IclscopeError, match="no config.json"):
        load_model(str(tmp_path))


def test_hub_name_offline_names_the_variable():
    with pytest.raises(IclscopeError, match="HF_HUB_OFFLINE"):
        load_model("some-org/some-model")


def test_layer_and_head_out_of_range(pairs):
    tl, nn = pairs["llama"]
    for m in (tl, nn):
        with pytest.raises(IclscopeError, match="layer 7 is out of range"):
            m.check_layer(7)
        with pytest.raises(IclscopeError, match="head 8 is out of range"):
            m.check_head(0, 8)
        batch = _batch(m, n=1)
        with pytest.raises(IclscopeError, match="out of range"):
            m.run_with_hooks(batch.tokens, [("blocks.9.attn.hook_z", lambda z, hook: z)])
