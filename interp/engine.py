"""The batched intervention engine: one forward pass serves many plan rows.

Given an :class:`~interp.plan.InterventionPlan`, the engine

1. caches the source runs once (clean and corrupted prompts, only the hooks the plan touches,
   plus the base run's residual stream where rows can resume);
2. stacks plan rows along the batch axis in chunks sized to a memory budget, rows sorted by the
   earliest layer they edit so each chunk starts as late as it can;
3. resumes each chunk from the cached residual stream at that layer (everything before it is
   the unedited base run, so recomputing it is waste);
4. at each hook applies every row's edits with one kernel call (:mod:`kernels`).

No Python loop over components calls the model: a sweep of N components costs about N / chunk
forward passes of the layers after the earliest edit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

import kernels
from interp.errors import IclscopeError
from interp.metrics import Metric, build_metric
from interp.models import HookedModel
from interp.plan import InterventionPlan, Knockout, Patch, PlanRow
from interp.prompts import PromptBatch, check_pair


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
                raise IclscopeError("a patch reads the corrupted run but none was given",
                                    fix="pass corrupted prompts to Engine.run")  # fmt: skip
            base = edit.source_prompt if edit.source_prompt is not None else prompt
            return self.corrupted + base
        if edit.source == "resample":
            return self.clean + int(edit.source_prompt)
        if edit.source == "tensor":
            return self.tensors[edit.tensor]
        return self.mean if edit.source == "mean" else self.zero


class Engine:
    """Runs intervention plans on a :class:`HookedModel`.

    ``max_batch`` caps rows per forward pass; otherwise chunks are sized so the live
    activations of one chunk fit in ``memory_gb``.
    """

    def __init__(self, model: HookedModel, max_batch: int | None = None, memory_gb: float = 1.0):
        self.model = model
        self.max_batch = max_batch
        self.memory_gb = memory_gb

    # -- sizing -----------------------------------------------------------------------------
    def rows_per_chunk(self, n_pos: int) -> int:
        """Rows per forward pass: ``max_batch``, or what fits the memory budget."""
        if self.max_batch:
            return self.max_batch
        c = self.model.cfg
        floats_per_row = n_pos * (6 * c.d_model + 2 * c.n_heads * n_pos + c.d_vocab)
        return int(max(1, min(1024, self.memory_gb * 2**30 / (4 * floats_per_row))))

    def estimate(self, plan: InterventionPlan, n_pos: int) -> str:
        per = self.rows_per_chunk(n_pos)
        chunks = -(-len(plan) // per)
        return f"{len(plan)} rows in {chunks} forward passes of up to {per} rows"

    # -- sources ----------------------------------------------------------------------------
    def _banks(
        self,
        plan: InterventionPlan,
        clean: PromptBatch,
        corrupted: PromptBatch | None,
        resume: bool,
    ) -> tuple[dict[str, SourceBank], dict[str, Tensor], Tensor]:
        """Source banks per hook, the base run's residual stream for resuming, clean logits."""
        hooks = plan.hooks()
        for hook in hooks:
            self.model.check_hook(hook)
        base = corrupted if plan.base == "corrupted" else clean
        if base is None:
            raise IclscopeError(
                "the plan runs on corrupted prompts but none were given",
                fix="pass corrupted=... or build the plan with base='clean'",
            )
        starts = ({r.first_layer for r in plan.rows} - {0}) if resume else set()
        resume_hooks = [f"blocks.{layer}.hook_resid_pre" for layer in sorted(starts)]
        clean_logits, clean_cache = self.model.run_with_cache(
            clean.tokens, hooks + (resume_hooks if base is clean else []), clean.attention_mask
        )
        corrupt_cache: dict[str, Tensor] = {}
        if corrupted is not None:
            _, corrupt_cache = self.model.run_with_cache(
                corrupted.tokens, hooks + (resume_hooks if base is corrupted else []),
                corrupted.attention_mask,
            )  # fmt: skip
        base_cache = clean_cache if base is clean else corrupt_cache
        ref = list(plan.reference_prompts or range(len(clean)))
        banks = {}
        for hook in hooks:
            act = clean_cache[hook]
            parts = [act]
            corrupted_at = -1
            if hook in corrupt_cache:
                corrupted_at = act.shape[0]
                parts.append(corrupt_cache[hook])
            mean_at = sum(p.shape[0] for p in parts)
            parts += [act[ref].mean(0, keepdim=True), torch.zeros_like(act[:1])]
            named = {}
            for name in sorted(self._tensors_at(plan, hook)):
                named[name] = mean_at + 2 + len(named)
                given = plan.tensors[name].to(act.dtype)
                parts.append(given.expand(1, act.shape[1], *given.shape).clone())
            banks[hook] = SourceBank(torch.cat(parts), 0, corrupted_at, mean_at, mean_at + 1,
                                     named)  # fmt: skip
        resid = {h: base_cache[h] for h in resume_hooks}
        return banks, resid, clean_logits

    @staticmethod
    def _tensors_at(plan: InterventionPlan, hook: str) -> set[str]:
        """Names of the plan tensors that patches at ``hook`` read."""
        edits = (e for r in plan.rows for e in r.edits)
        return {e.tensor for e in edits if isinstance(e, Patch) and e.hook == hook and e.tensor}

    # -- one chunk --------------------------------------------------------------------------
    def _hooks_for(self, rows: list[PlanRow], banks: dict[str, SourceBank], n_pos: int):
        """One hook function per touched hook point, each a single kernel call for all rows."""
        patches: dict[str, list] = defaultdict(list)
        edges: dict[int, list] = defaultdict(list)
        for i, row in enumerate(rows):
            for e in row.edits:
                if isinstance(e, Knockout):
                    self.model.check_layer(e.layer)
                    for h in e.heads or (-1,):
                        edges[e.layer] += [(i, h, q, k) for q in e.queries for k in e.keys]
                    continue
                src = banks[e.hook].index(e, row.prompt)
                positions = range(n_pos) if e.positions is None else e.positions
                for h in e.heads or (-1,):
                    patches[e.hook] += [(i, p, h, src, p, e.alpha) for p in positions]
        hooks = []
        for hook_name, coo in patches.items():
            cols = list(zip(*coo))
            idx = [torch.tensor(c, dtype=torch.long) for c in cols[:5]]
            alpha = torch.tensor(cols[5], dtype=torch.float32)
            bank = banks[hook_name].values

            def apply(act, hook, idx=idx, alpha=alpha, bank=bank):
                return kernels.patch_or_mix(act, bank.to(act.device), *idx, alpha)

            hooks.append((hook_name, apply))
        for layer, coo in edges.items():
            cols = [torch.tensor(c, dtype=torch.long) for c in zip(*coo)]

            def knock(scores, hook, cols=cols):
                return kernels.mask_edges(scores, *cols)

            hooks.append((f"blocks.{layer}.attn.hook_attn_scores", knock))
        return hooks

    # -- the run ----------------------------------------------------------------------------
    @torch.no_grad()
    def run(
        self,
        plan: InterventionPlan,
        clean: PromptBatch,
        corrupted: PromptBatch | None = None,
        metric: str | Metric = "logit_diff",
        resume: bool = True,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Run every plan row; one result row per plan row (its labels and the metric)."""
        if corrupted is not None:
            check_pair(clean, corrupted)
        resume = resume and self.model.supports_resume
        banks, resid, clean_logits = self._banks(plan, clean, corrupted, resume)
        s_q = clean.s_q
        if isinstance(metric, str):
            metric = build_metric(
                metric, clean, corrupted, clean_logits[torch.arange(len(clean)), s_q]
            )
        base = corrupted if plan.base == "corrupted" else clean
        n_pos = base.tokens.shape[1]
        order = sorted(range(len(plan)), key=lambda i: plan.rows[i].first_layer if resume else 0)
        per = self.rows_per_chunk(n_pos)
        values = torch.empty(len(plan))
        bar = tqdm(total=len(plan), desc="patching", unit="row", disable=not progress)
        for start in range(0, len(order), per):
            chunk = order[start : start + per]
            rows = [plan.rows[i] for i in chunk]
            prompt = torch.tensor([r.prompt for r in rows])
            layer = min(r.first_layer for r in rows) if resume else 0
            hooks = self._hooks_for(rows, banks, n_pos)
            mask = base.attention_mask[prompt]
            if layer > 0:
                logits = self.model.run_from_layer(
                    resid[f"blocks.{layer}.hook_resid_pre"][prompt], layer, hooks, mask
                )
            else:
                logits = self.model.run_with_hooks(base.tokens[prompt], hooks, mask)
            values[chunk] = (
                metric(logits[torch.arange(len(rows)), s_q[prompt]], prompt).float().cpu()
            )
            bar.update(len(rows))
        bar.close()
        table = pd.DataFrame([dict(r.labels) | {"prompt": r.prompt} for r in plan.rows])
        table["metric"] = values.numpy()
        return table
