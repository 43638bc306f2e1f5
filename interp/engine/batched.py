"""The batched intervention engine: one forward pass serves many plan rows.

Given an :class:`~interp.engine.plan.InterventionPlan`, the engine

1. caches the source runs once (clean and corrupted prompts, only the hooks the plan touches,
   plus the base run's residual stream where rows can resume);
2. stacks plan rows along the batch axis in chunks sized to a memory budget, rows sorted by the
   earliest layer they edit so each chunk starts as late as it can;
3. resumes each chunk from the cached residual stream at that layer (everything before it is
   the unedited base run, so recomputing it is waste) and, on the module forward (the fast
   path: the model's own layers, driven one by one), at the earliest edited position (the
   prefix's cached keys and values serve the suffix), and stops it at the chunk's furthest
   read-out position (rows of one start position are chunked in order of their read-out);
4. starts a row whose edits all sit after a layer's attention (``hook_z`` .. ``hook_resid_post``)
   from that layer's position-wise tail, computed only where the edits land, and computes the
   last layer only at the read-out position;
5. at each hook applies every row's edits with one kernel call (:mod:`interp.kernels`).

No Python loop over components calls the model: a sweep of N components costs about N / chunk
forward passes of the layers after the earliest edit. The row stacking of step 5 is
:mod:`~interp.engine.stacking`; the layout of step 2 and the job an executor ships are
:mod:`~interp.engine.layout`.
"""

from __future__ import annotations

import itertools
import logging

import pandas as pd
import torch
from torch import Tensor

from interp.engine.dispatch import PlanExecutor, current_executor
from interp.engine.layout import Job, Layout, chunk_rows
from interp.engine.metrics import Metric, build_metric
from interp.engine.plan import InterventionPlan, Knockout
from interp.engine.sources import build_banks
from interp.engine.stacking import stacked_hooks
from interp.errors import IclscopeError
from interp.models import HookedModel
from interp.models.fast_path import drivable_hook_kinds
from interp.models.module_forward import ModuleForward, Recording
from interp.prompts import PromptBatch, check_pair

logger = logging.getLogger("iclscope")


def mlp_width(cfg) -> int:
    """The MLP's hidden width: the config's own (``intermediate_size``), else GPT-2's 4 x."""
    return getattr(cfg, "d_mlp", None) or 4 * cfg.d_model


def row_floats(cfg, n_pos: int) -> int:
    """Floats one plan row holds live at the peak of a forward pass: the residual stream and
    one block output (2 x ``d_model``), the MLP's hidden layer, attention scores and pattern
    (2 x heads x pos^2) and the logits, at every position. The engine sizes chunks by it, and
    the dry run's memory estimate (:mod:`interp.engine.memory`) uses the same rule."""
    return n_pos * (2 * cfg.d_model + mlp_width(cfg) + 2 * cfg.n_heads * n_pos + cfg.d_vocab)


class Engine:
    """Runs intervention plans on a :class:`HookedModel`.

    ``max_batch`` caps rows per forward pass; otherwise chunks are sized so the live
    activations of one chunk fit in ``memory_gb``. ``fast`` uses the module forward where it
    applies; ``min_rows`` is the smallest chunk worth a forward pass of its own when rows start
    at different positions. ``executor`` runs the chunks: here, one after another
    (:class:`~interp.execution.LocalExecutor`, the default), or on the workers of a Ray
    cluster (:class:`~interp.execution.RayExecutor`), or those of an enclosing
    :func:`~interp.execution.using` block; the table is the same. The engine knows executors
    only through :class:`~interp.engine.dispatch.PlanExecutor`: they call
    :meth:`run_chunk`, never the other way round.
    """

    def __init__(
        self,
        model: HookedModel,
        max_batch: int | None = None,
        memory_gb: float = 1.0,
        fast: bool = True,
        min_rows: int = 256,
        executor: PlanExecutor | None = None,
    ):
        self.model = model
        self.executor = executor if executor is not None else current_executor()
        self.max_batch = max_batch
        self.memory_gb = memory_gb
        self.fast = fast
        self.min_rows = min_rows
        self._native_runner: ModuleForward | None = None
        self._told_fallback = False

    # -- sizing -----------------------------------------------------------------------------
    def rows_per_chunk(self, n_pos: int) -> int:
        """Rows per forward pass: ``max_batch``, or what fits the memory budget."""
        if self.max_batch:
            return self.max_batch
        floats = row_floats(self.model.cfg, n_pos)
        return int(max(1, min(1024, self.memory_gb * 2**30 / (4 * floats))))

    def estimate(self, plan: InterventionPlan, n_pos: int) -> str:
        per = self.rows_per_chunk(n_pos)
        chunks = -(-len(plan) // per)
        return f"{len(plan)} rows in {chunks} forward passes of up to {per} rows"

    # -- sources ----------------------------------------------------------------------------
    def uses_native(self, plan: InterventionPlan) -> bool:
        """Whether the plan runs on the fast path (the architecture and every hook allow it)."""
        hooks = plan.hooks() + [
            f"blocks.{e.layer}.attn.hook_attn_scores"
            for r in plan.rows
            for e in r.edits
            if isinstance(e, Knockout)
        ]
        kinds = drivable_hook_kinds(self.model.hf_model.config)
        if not self.fast or kinds is None:
            return False
        return {h.split(".", 2)[2] for h in hooks if h.startswith("blocks.")} <= kinds

    def _native(self, plan: InterventionPlan) -> ModuleForward | None:
        """The fast path, where the architecture and every hook of the plan allow it."""
        if not self.uses_native(plan):
            if self.fast and not self._told_fallback:
                # an architecture the module forward does not know, or a hook it does not
                # offer: the hooked backend runs it exactly, only slower
                logger.info(
                    "engine: no module forward for this plan on %r models; running it "
                    "through the %s backend (%s)",
                    self.model.cfg.architecture,
                    self.model.backend,
                    "resuming by layer" if self.model.supports_resume else "full forwards",
                )
                self._told_fallback = True
            return None
        return self._native_model()

    def _native_model(self) -> ModuleForward:
        if self._native_runner is None:
            self._native_runner = ModuleForward(self.model.plain_model())
        return self._native_runner

    def _caches(self, plan, clean, corrupted, native, resume_hooks):
        """Clean logits at the read-out position and the cached source runs (with every
        layer's keys and values on the fast path)."""
        hooks = plan.hooks()
        if native is not None:
            names = sorted({*hooks, *resume_hooks})
            at_sq, clean_rec = native.record(clean.tokens, names, read_at=clean.s_q)
            corrupt_at, corrupt_rec = None, None
            if corrupted is not None:  # its logits are read at one position, not all
                corrupt_at, corrupt_rec = native.record(corrupted.tokens, names, read_at=clean.s_q)
            return at_sq, clean_rec, corrupt_at, corrupt_rec
        rows = torch.arange(len(clean))
        clean_logits, clean_cache = self.model.run_with_cache(
            clean.tokens, hooks + resume_hooks, clean.attention_mask
        )
        corrupt_at, corrupt_rec = None, None
        if corrupted is not None:
            corrupt_logits, corrupt_cache = self.model.run_with_cache(
                corrupted.tokens, hooks + resume_hooks, corrupted.attention_mask
            )
            corrupt_at = corrupt_logits[rows, clean.s_q]
            corrupt_rec = Recording(cache=corrupt_cache)
        return clean_logits[rows, clean.s_q], Recording(cache=clean_cache), corrupt_at, corrupt_rec

    # -- one chunk --------------------------------------------------------------------------
    def _tail_at(self, native, rows, prompt, layer, at: list[int], rec, banks, n_pos) -> Tensor:
        """``layer``'s output at one position per row (``at``) for rows whose edits all sit in
        that layer's tail: the tail needs only the base run's state and ``z`` there."""
        idx = torch.tensor(at)
        x = rec.resid_pre[layer][prompt, idx][:, None]
        z = rec.cache[f"blocks.{layer}.attn.hook_z"][prompt, idx][:, None]
        hooks = stacked_hooks(self.model, rows, banks, n_pos, shift=at, width=1)
        return native.tail(layer, x, z, hooks)[:, 0]

    def _tail_states(self, native, rows, prompt, layer, span, base, rec, banks, n_pos) -> Tensor:
        """The suffix ``span`` (positions ``pos..end``) after ``layer`` for rows whose edits all
        sit in that layer's tail. ``base`` is the base run's suffix there; it is recomputed only
        where the edits land (one position per row when each row edits one position, else the
        whole suffix); an edit at or after ``end`` cannot reach any read-out and is left out."""
        pos, end = span
        points = [r.point for r in rows]
        if all(p is not None for p in points):
            inside = [i for i, p in enumerate(points) if p < end]
            if inside:
                at = torch.tensor(inside)
                base[at, torch.tensor([points[i] for i in inside]) - pos] = self._tail_at(
                    native,
                    [rows[i] for i in inside],
                    prompt[at],
                    layer,
                    [points[i] for i in inside],
                    rec,
                    banks,
                    n_pos,
                )
            return base
        x = rec.resid_pre[layer][prompt, pos:end]
        z = rec.cache[f"blocks.{layer}.attn.hook_z"][prompt, pos:end]
        hooks = stacked_hooks(self.model, rows, banks, n_pos, shift=pos, width=end - pos)
        return native.tail(layer, x, z, hooks)

    def _joins(self, native, chunk, rows, prompt, span, start, tails, rec, banks, n_pos):
        """``(layer, states)`` for each run of rows (sorted by start layer) joining the resumed
        pass: the base run's suffix ``span`` (``pos..end``), with tail rows' edited layer
        already applied."""
        pos, end = span
        joins, k = [], 0
        for layer, run in itertools.groupby(range(len(chunk)), key=lambda i: start(chunk[i])[1]):
            idx = list(run)
            states = rec.resid_pre[layer][prompt[idx], pos:end]
            tail = [i for i in idx if chunk[i] in tails]
            if tail:
                at = torch.tensor([i - k for i in tail])
                states[at] = self._tail_states(
                    native,
                    [rows[i] for i in tail],
                    prompt[tail],
                    layer - 1,
                    span,
                    states[at],
                    rec,
                    banks,
                    n_pos,
                )
            joins.append((layer, states))
            k += len(idx)
        return joins

    # -- the run ----------------------------------------------------------------------------
    def layout(
        self, plan: InterventionPlan, clean: PromptBatch, base: PromptBatch, resume: bool = True
    ) -> Layout:
        """Where each row starts and how rows group into forward passes, before any forward."""
        native = self.uses_native(plan)
        resume = resume and (native or self.model.supports_resume)
        s_q, n_pos = clean.s_q, base.tokens.shape[1]
        n_layers = self.model.cfg.n_layers
        # rows whose edits all sit after one layer's attention start from that layer's tail
        tails = {}
        if native and resume:
            tails = {i: r.tail_layer for i, r in enumerate(plan.rows) if r.tail_layer is not None}
        layers = ({r.first_layer for r in plan.rows} - {0}) if resume else set()
        layers |= {layer + 1 for layer in tails.values()} - {n_layers}
        resume_hooks = [f"blocks.{layer}.hook_resid_pre" for layer in sorted(layers)]
        resume_hooks += [f"blocks.{layer}.attn.hook_z" for layer in sorted(set(tails.values()))]

        def begin(i: int) -> tuple[int, int]:
            row = plan.rows[i]
            if not resume:
                return 0, 0
            # positions only resume on the fast path, and never past the read-out position
            pos = min(row.first_position, int(s_q[row.prompt])) if native else 0
            return pos, (tails[i] + 1 if i in tails else row.first_layer)

        starts = [begin(i) for i in range(len(plan))]
        start = starts.__getitem__  # sorting asks many times
        per = self.rows_per_chunk(n_pos)
        # the last layer's tail at the read-out alone: edits elsewhere cannot reach it
        last = [i for i, layer in tails.items() if layer == n_layers - 1]
        chunks = [("last", last[lo : lo + per]) for lo in range(0, len(last), per)]
        # rows with no edits are the base run itself, which the source runs already read out
        bare = [i for i, r in enumerate(plan.rows) if not r.edits] if resume else []
        chunks += [("bare", bare)] if bare else []
        # rows of one start position in order of their read-out, so a chunk's rows end alike
        # (a pass on the fast path stops at its furthest read-out)
        read_out = s_q.tolist()
        order = sorted(
            set(range(len(plan))) - set(last) - set(bare),
            key=lambda j: (start(j)[0], read_out[plan.rows[j].prompt], start(j)[1]),
        )
        # a pass joins rows in order of their start layer
        chunks += [
            ("pass", sorted(c, key=lambda j: start(j)[1]))
            for c in chunk_rows(order, start, per, self.min_rows)
        ]
        return Layout(native, resume, tails, starts, chunks, resume_hooks)

    @torch.no_grad()
    def prepare(
        self,
        plan: InterventionPlan,
        clean: PromptBatch,
        corrupted: PromptBatch | None = None,
        metric: str | Metric = "logit_diff",
        resume: bool = True,
    ) -> Job:
        """Check the plan, cache its source runs and lay out its chunks: a :class:`Job` that
        :meth:`run_chunk` runs chunk by chunk, here or on another machine's engine."""
        if corrupted is not None:
            check_pair(clean, corrupted)
        base = corrupted if plan.base == "corrupted" else clean
        if base is None:
            raise IclscopeError(
                "the plan runs on corrupted prompts but none were given",
                fix="pass corrupted=... or build the plan with base='clean'",
            )
        for hook in plan.hooks():
            self.model.check_hook(hook)
        for row in plan.rows:
            row.check_overlaps()
        native = self._native(plan)
        lay = self.layout(plan, clean, base, resume)
        clean_at_sq, clean_rec, corrupt_at_sq, corrupt_rec = self._caches(
            plan, clean, corrupted, native, lay.resume_hooks
        )
        base_rec = clean_rec if base is clean else corrupt_rec
        banks = build_banks(
            plan,
            clean_rec.cache,
            corrupt_rec.cache if corrupt_rec else None,
            clean.attention_mask,
        )
        if isinstance(metric, str):
            metric = build_metric(metric, clean, corrupted, clean_at_sq)
        return Job(
            plan,
            lay,
            banks,
            base_rec,
            base.tokens,
            base.attention_mask,
            metric,
            clean.s_q,
            base.tokens.shape[1],
            clean_at_sq if base is clean else corrupt_at_sq,
        )

    @torch.no_grad()
    def run_chunk(self, job: Job, index: int) -> Tensor:
        """The metric of each row of chunk ``index`` of ``job`` (in the chunk's order): one
        forward pass. Any engine on the same model gives the same values."""
        kind, chunk = job.layout.chunks[index]
        native = self._native_model() if job.layout.native else None
        rows = [job.plan.rows[j] for j in chunk]
        prompt = torch.tensor([r.prompt for r in rows])
        if kind == "bare":  # no edits: the base run's own read-out
            return job.metric(job.base_at_sq[prompt], prompt).float().cpu()
        s_q, n_pos, banks, base_rec = job.s_q, job.n_pos, job.banks, job.base_rec
        start, tails = job.layout.starts.__getitem__, job.layout.tails
        if kind == "last":  # the last layer's tail, at the read-out position alone
            read = s_q[prompt].tolist()
            layer = self.model.cfg.n_layers - 1
            h = self._tail_at(native, rows, prompt, layer, read, base_rec, banks, n_pos)
            return job.metric(native.logits(h), prompt).float().cpu()
        # a chunk starts at its earliest row's position
        pos = min(start(j)[0] for j in chunk)
        # tail rows enter the resumed pass already edited, so the pass leaves them alone
        mixed = [None if j in tails else r for j, r in zip(chunk, rows)]
        if native is not None:
            # and ends at its furthest read-out: later positions reach no row's logits
            end = int(s_q[prompt].max()) + 1
            hooks = stacked_hooks(self.model, mixed, banks, n_pos, shift=pos, width=end - pos)
            joins = self._joins(
                native, chunk, rows, prompt, (pos, end), start, tails, base_rec, banks, n_pos
            )
            at_sq = native.resume(joins, pos, prompt, base_rec, hooks, s_q[prompt] - pos)
        else:
            hooks = stacked_hooks(self.model, mixed, banks, n_pos, shift=pos)
            layer = min(start(j)[1] for j in chunk)
            mask = job.base_mask[prompt]
            if layer > 0:
                resid = base_rec.cache[f"blocks.{layer}.hook_resid_pre"][prompt]
                logits = self.model.run_from_layer(resid, layer, list(hooks.items()), mask)
            else:
                logits = self.model.run_with_hooks(
                    job.base_tokens[prompt], list(hooks.items()), mask
                )
            at_sq = logits[torch.arange(len(rows)), s_q[prompt]]
        return job.metric(at_sq, prompt).float().cpu()

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
        job = self.prepare(plan, clean, corrupted, metric, resume)
        values = self.executor.run(self, job, progress=progress)
        table = pd.DataFrame([dict(r.labels) | {"prompt": r.prompt} for r in plan.rows])
        table["metric"] = values.numpy()
        return table
