"""Old import paths keep working and give the very objects of the new homes."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("interp.patching", "InterventionPlan", "interp.engine.plan"),
    ("interp.patching.plan", "PlanRow", "interp.engine.plan"),
    ("interp.patching.engine", "Engine", "interp.engine.batched"),
    ("interp.patching.sweeps", "head_sweep", "interp.engine.sweeps"),
    ("interp.patching.metrics", "normalized_effect", "interp.engine.metrics"),
    ("interp.patching.memory", "estimate_steps", "interp.engine.memory"),
    ("interp.patching.executor", "RayExecutor", "interp.execution"),
    ("interp.patching.executor", "recorded", "interp.execution"),
    ("interp.models.hooked", "HookedModel", "interp.models.interface"),
    ("interp.models.hooked", "load_model", "interp.models.loader"),
    ("interp.runs.store", "atomic_write_text", "interp.io"),
    ("interp.runs.patch", "Effects", "circuits.activation_patching.effects"),
    ("interp.runs.patch", "build_plan", "circuits.activation_patching.plan"),
    ("interp.runs.circuit", "circuit_report", "circuits.icl_circuit.report"),
    ("interp.runs.demo", "first_look", "circuits.demo.look"),
    ("interp.runs.eviction", "eviction_settings", "circuits.eviction.prompts"),
    ("interp.runs.eviction", "train_gate_folder", "circuits.eviction.gate_folder"),
    ("interp.runs.task_vectors", "overlap", "circuits.task_vectors.overlap"),
    ("app.eviction_page", "eviction_view", "circuits.eviction.page"),
    ("app.task_vectors_page", "task_vectors_view", "circuits.task_vectors.page"),
    ("app.block_relevance_page", "block_relevance_view", "circuits.block_relevance.page"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED, ids=lambda v: str(v))
def test_old_path_is_the_new_object(old, name, new):
    assert getattr(importlib.import_module(old), name) is getattr(
        importlib.import_module(new), name
    )


def test_top_level_names():
    import interp

    assert interp.load_model is importlib.import_module("interp.models.loader").load_model
    assert interp.load_run is importlib.import_module("interp.runs.store").load_run


@pytest.mark.parametrize(
    "call",
    [
        "run_patch",
        "run_circuit",
        "run_demo",
        "run_eviction",
        "run_task_vectors",
        "run_block_relevance",
    ],
)
def test_old_run_calls_exist(call):
    kind = call.removeprefix("run_")
    assert callable(getattr(importlib.import_module(f"interp.runs.{kind}"), call))
