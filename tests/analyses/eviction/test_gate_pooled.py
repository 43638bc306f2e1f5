"""The gate's pooled budget: the top keys of a row over every layer and head together."""

from __future__ import annotations

import pytest
import torch

from circuits.eviction.gate import GateStack


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.7])
def test_pooled_budget_keeps_the_rows_top_keys_over_all_heads(rate, monkeypatch):
    torch.manual_seed(0)
    layers, batch, heads, pos = 3, 2, 4, 10
    gate = GateStack(layers, 8, heads)
    g = torch.rand(layers, batch, heads, pos)
    monkeypatch.setattr(gate, "probs", lambda hidden, real=None: g)
    context = torch.zeros(batch, pos, dtype=torch.bool)
    context[0, 1:8] = True
    context[1, 0:6] = True
    flags = gate.keep_pooled(None, context, rate)
    for b in range(batch):
        inside = context[b]
        kept = flags[:, b][..., inside]
        n = kept.numel()
        assert int(kept.sum()) == round((1 - rate) * n)  # the exact rate, pooled
        # every kept key scores above every evicted one, across layers and heads alike
        scores = g[:, b][..., inside]
        assert scores[kept.bool()].min() > scores[~kept.bool()].max()
        assert bool(flags[:, b][..., ~inside].eq(1).all())  # outside the context: kept
    # unlike a per-head budget, heads keep different shares
    shares = flags[:, 0][..., context[0]].mean(-1)
    assert shares.max() > shares.min()
