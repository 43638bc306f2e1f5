"""Helpers the executor test modules share (imported by name: the test folders are no
packages, and pytest puts each test file's folder on sys.path)."""

from __future__ import annotations

import json

from interp.engine.sweeps import head_sweep, resid_sweep, with_baselines
from interp.tasks.suite import build_pair_batches

QUIET = lambda *a: None  # noqa: E731


def sweep(model, kind: str):
    clean, corrupted = build_pair_batches(model.prompt_builder(), "sentiment_semantic", 2, 2, 0)
    if kind == "heads":
        plan = head_sweep(model.cfg, range(2))
    else:
        plan = resid_sweep(model.cfg, range(2), clean.tokens.shape[1])
    return with_baselines(plan, range(2)), clean, corrupted


def manifest(path):
    return json.loads((path / "manifest.json").read_text())
