"""Where patched values come from: one stacked bank of sources per hook.

A patch reads its replacement from the clean run, the corrupted run, a mean, zero or a given
tensor. Stacking all of them for a hook into one tensor lets a single kernel call serve every
row of a chunk, each row naming its source by an index into the bank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from interp.engine.plan import InterventionPlan, Patch
from interp.errors import IclscopeError


@dataclass
class SourceBank:
    """All replacement values for one hook, stacked so one kernel call can read any of them:
    rows ``[clean prompts | corrupted prompts | mean | zero | named tensors]``."""

    values: Tensor  # (n_sources, pos, [head,] d)
    clean: int
    corrupted: int
    mean: int
    zero: int
    tensors: dict[str, int]

    def index(self, edit: Patch, prompt: int) -> int:
        if edit.source == "clean":
            return self.clean + (edit.source_prompt if edit.source_prompt is not None else prompt)
        if edit.source == "corrupted":
            if self.corrupted < 0:
                raise IclscopeError(
                    "a patch reads the corrupted run but none was given",
                    fix="pass corrupted prompts to Engine.run",
                )
            base = edit.source_prompt if edit.source_prompt is not None else prompt
            return self.corrupted + base
        if edit.source == "resample":
            return self.clean + int(edit.source_prompt)
        if edit.source == "tensor":
            return self.tensors[edit.tensor]
        return self.mean if edit.source == "mean" else self.zero


def build_banks(
    plan: InterventionPlan,
    clean_cache: dict[str, Tensor],
    corrupt_cache: dict[str, Tensor] | None,
    mask: Int[Tensor, "batch pos"],
) -> dict[str, SourceBank]:
    """Stack every source a hook's patches may read into one bank per hook. The mean is
    taken per position over the reference prompts that reach it (padding is not data)."""
    ref = list(plan.reference_prompts or range(mask.shape[0]))
    banks = {}
    for hook in plan.hooks():
        act = clean_cache[hook]
        parts = [act]
        corrupted_at = -1
        if corrupt_cache is not None:
            corrupted_at = act.shape[0]
            parts.append(corrupt_cache[hook])
        mean_at = sum(p.shape[0] for p in parts)
        real = mask[ref].to(act.dtype).view(len(ref), -1, *[1] * (act.dim() - 2))
        mean = (act[ref] * real).sum(0, keepdim=True) / real.sum(0, keepdim=True).clamp(min=1)
        parts += [mean, torch.zeros_like(act[:1])]
        named = {}
        for name in sorted(_tensors_at(plan, hook)):
            named[name] = mean_at + 2 + len(named)
            given = plan.tensors[name].to(act.dtype)
            parts.append(given.expand(1, act.shape[1], *given.shape).clone())
        banks[hook] = SourceBank(torch.cat(parts), 0, corrupted_at, mean_at, mean_at + 1, named)
    return banks


def _tensors_at(plan: InterventionPlan, hook: str) -> set[str]:
    """Names of the plan tensors that patches at ``hook`` read."""
    edits = (e for r in plan.rows for e in r.edits)
    return {e.tensor for e in edits if isinstance(e, Patch) and e.hook == hook and e.tensor}
