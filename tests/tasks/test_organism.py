"""The organism: training runs and learns, the shipped weights are the trained ones."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from interp.models import ORGANISM_DIR
from interp.organism.evaluate import evaluate_organism
from interp.organism.train import TrainConfig, train


def test_training_smoke_loss_falls(tmp_path):
    cfg = TrainConfig(
        seed=1,
        minutes=5,
        max_steps=60,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_mlp=64,
        tokens_per_batch=1500,
        warmup=10,
        log_every=10,
        final_eval_n=20,
        threads=1,
    )
    record = train(tmp_path, cfg, log=lambda *a: None)
    losses = [p["loss"] for p in record["loss_curve"]]
    assert record["steps"] == 60 and len(losses) == 6
    assert losses[-1] < losses[0] - 0.5
    saved = json.loads((tmp_path / "training_record.json").read_text())
    assert saved["config"]["seed"] == 1 and saved["wall_seconds"] > 0
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.num_key_value_heads == 2


def test_training_is_reproducible(tmp_path):
    cfg = TrainConfig(
        seed=3,
        max_steps=8,
        d_model=32,
        n_layers=1,
        n_heads=4,
        n_kv_heads=2,
        d_mlp=64,
        tokens_per_batch=800,
        log_every=4,
        final_eval_n=4,
        threads=1,
    )
    a = train(tmp_path / "a", cfg, log=lambda *a: None)["loss_curve"]
    b = train(tmp_path / "b", cfg, log=lambda *a: None)["loss_curve"]
    assert [p["loss"] for p in a] == [p["loss"] for p in b]


@pytest.fixture(scope="module")
def shipped_eval():
    model = AutoModelForCausalLM.from_pretrained(ORGANISM_DIR).eval()
    return evaluate_organism(model, AutoTokenizer.from_pretrained(ORGANISM_DIR), n=100)


def test_shipped_organism_has_a_training_record():
    record = json.loads((ORGANISM_DIR / "training_record.json").read_text())
    assert record["steps"] > 1000 and record["loss_curve"] and "seed" in record["config"]
    assert (ORGANISM_DIR / "model.safetensors").stat().st_size < 25 * 2**20


def test_shipped_organism_is_the_trained_one(shipped_eval):
    """What the shipped weights measurably do (an untrained model does none of it): name a
    class from its words, and map classes to arbitrary labels from the demonstrations, at 8
    shots far above the 0-shot guess (the foundation issue's ICL-gain target is 0.40)."""
    arbitrary = shipped_eval["classification_arbitrary"]
    assert set(arbitrary) == {"0", "1", "2", "4", "8"}
    assert shipped_eval["classification_semantic"]["0"] >= 0.95
    assert arbitrary["8"] >= 0.75 and arbitrary["8"] >= arbitrary["0"] + 0.4
    functions = shipped_eval["function_tasks"]
    assert max(functions[k] for k in ("1", "2", "4", "8")) >= functions["0"] + 0.05
    assert shipped_eval["kv_retrieval_tokens"] >= 256
