"""Function vectors, task vectors and soft injection of task embeddings into attention heads.

Three published ways to turn what k-shot prompts leave at their last token into something a
0-shot prompt can be given (see the docs' task vectors page, ``docs/analyses/task-vectors.md``):

* **function vectors** (Todd et al., ICLR 2024): rank heads by their average indirect effect
  on shuffled-label prompts (:mod:`.aie`), sum the top heads' mean outputs through the output
  projection and add the sum to the residual stream of one layer (:mod:`.function_vector`);
* **task vectors** (Hendel et al., 2023): replace the last-token residual of a 0-shot prompt
  at layer L with the mean k-shot one (:mod:`.task_vector`);
* **soft injection** (Park & Rhee, 2025): learn a weight per head that mixes its output
  towards the task embedding (:mod:`.soft_injection`, at ``hook_task_inject``).

All three start from :func:`.embeddings.task_embedding`. :class:`TaskVectors` runs them on one
or more function tasks and scores every method on the same held-out items, 0-shot, against
0-shot and k-shot ICL. Every sweep over heads or layers is one plan or one stacked batch.
The result keeps every per-prompt number (each held-out item's hit, each head's indirect
effect on each AIE prompt) so that :mod:`.intervals` can put an interval on each headline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from circuits.task_vectors.aie import (
    AverageIndirectEffect,
    aie_loop,
    indirect_effects,
    prompt_effects,
    top_heads,
)
from circuits.task_vectors.data import TaskSplit, task_pairs, wilson
from circuits.task_vectors.embeddings import TaskEmbedding, task_embedding
from circuits.task_vectors.function_vector import FunctionVector, add_sweep, function_vector
from circuits.task_vectors.result import (
    AlphaFit,
    TaskBatches,
    TaskVectorsResult,
    _stability_rows,
    _sweep_rows,
    accuracy,
    fit_label,
)
from circuits.task_vectors.soft_injection import (
    INJECT,
    SoftInjection,
    inject_hooks,
    injection_logits,
    injection_loss,
    mean_jaccard,
    soft_inject,
    stable_heads,
)
from circuits.task_vectors.task_vector import TaskVector, best_layer
from interp.engine.batched import Engine
from interp.models import HookedModel
from interp.prompts import PromptBatch

__all__ = [
    "INJECT",
    "METHODS",
    "AverageIndirectEffect",
    "FunctionVector",
    "SoftInjection",
    "TaskEmbedding",
    "TaskSplit",
    "TaskVector",
    "TaskVectors",
    "TaskVectorsResult",
    "accuracy",
    "add_sweep",
    "aie_loop",
    "best_layer",
    "function_vector",
    "inject_hooks",
    "injection_logits",
    "injection_loss",
    "mean_jaccard",
    "soft_inject",
    "stable_heads",
    "task_embedding",
    "task_pairs",
    "top_heads",
    "wilson",
]

METHODS = ("zero_shot", "icl", "fv", "tv", "soft_injection", "soft_injection_shared")
"""Rows of the accuracy table, every one scored on the same held-out 0-shot items (``icl``:
the same queries after k demonstrations)."""


@dataclass
class TaskVectors:
    """The three methods on function tasks, scored on held-out 0-shot items.

    ``stability_lrs`` / ``stability_seeds`` add soft-injection fits used only to judge which
    heads' alpha is stable (see :meth:`fits` for which and what they cost); ``init_std`` > 0
    starts theta away from the paper's 0, drawn with each fit's seed."""

    shots: int = 8
    test_items: int = 40
    te_prompts: int = 50
    trials: int = 25
    top_k: int = 10
    steps: int = 400
    lr: float = 0.2
    batch: int = 16
    shared: bool = True
    seed: int = 0
    max_batch: int | None = None
    stability_lrs: tuple[float, ...] = ()
    stability_seeds: tuple[int, ...] = ()
    init_std: float = 0.0

    def fits(self) -> list[tuple[float, int]]:
        """The (lr, seed) of every soft-injection fit per alpha, the main ``(lr, seed)`` first.

        Not the full grid: the main fit, then each of ``stability_lrs`` at the main seed, then
        each of ``stability_seeds`` at the main lr (duplicates dropped). Each fit costs
        ``steps`` training steps and one held-out evaluation plan per task, for every task's
        alpha and for the shared one: ``len(fits())`` times the soft-injection time of a run
        without them. Only the main fit's alpha is scored as ``soft_injection``; the others
        serve to judge which heads are stable (``TaskVectorsResult.stability``)."""
        grid = [
            (self.lr, self.seed),
            *((float(lr), self.seed) for lr in self.stability_lrs),
            *((self.lr, int(s)) for s in self.stability_seeds),
        ]
        return list(dict.fromkeys(grid))

    def fit_alpha(
        self,
        model: HookedModel,
        train: dict[str, tuple[Tensor, PromptBatch]],
        test: dict[str, tuple[Tensor, PromptBatch]],
        engine: Engine,
        log: Callable[[str], object] = print,
    ) -> list[AlphaFit]:
        """Every fit of :meth:`fits` for one alpha (one task's, or one shared by the tasks of
        ``train``), each scored on the held-out 0-shot prompts of ``test`` through
        ``engine``; the main fit first."""
        out = []
        grid = self.fits()
        for k, (lr, seed) in enumerate(grid):
            if len(grid) > 1:
                log(f"  fit {k + 1}/{len(grid)}: {fit_label(lr, seed)}")
            t0 = time.monotonic()
            si = SoftInjection(self.steps, lr, self.batch, seed, self.init_std)
            alpha = si.fit(model, train, log)
            hits = {t: si.evaluate(model, alpha, te, b, engine) for t, (te, b) in test.items()}
            out.append(AlphaFit(lr, seed, alpha, si.losses, hits, time.monotonic() - t0))
        return out

    def batches(self, builder, task: str, prompt_seed: int | None = None) -> TaskBatches:
        """One task's prompts: held-out 0-shot and k-shot, 0-shot dev (the train items, or a
        task file's valid split),
        the task embedding's k-shot prompts and the AIE's shuffled-label ones. ``prompt_seed``
        draws them (the split included) instead of ``seed``; soft injection's fits keep
        ``seed``."""
        seed = self.seed if prompt_seed is None else prompt_seed
        split = TaskSplit.make(task, self.test_items, seed)
        return TaskBatches(
            split,
            test0=split.build(builder, split.test, 0, f"test:{seed}"),
            testk=split.build(builder, split.test, self.shots, f"icl:{seed}"),
            dev0=split.build(builder, split.dev or split.train, 0, f"dev:{seed}"),
            te=split.build(
                builder, split.sample_train(self.te_prompts, f"te:{seed}"), self.shots, f"te:{seed}"
            ),
            shuffled=split.build(
                builder,
                split.sample_train(self.trials, f"aie:{seed}"),
                self.shots,
                f"aie:{seed}",
                shuffle_labels=True,
            ),
        )

    def engine_steps(
        self, model: HookedModel, tasks: list[str], prompt_seed: int | None = None
    ) -> list:
        """The engine runs of :meth:`run`, per task, with zero tensors where :meth:`run` puts
        measured ones (the dry run's estimate reads shapes only): the AIE, the FV and TV layer
        sweeps and the soft-injection evaluations (every fit of :meth:`fits`, per task and
        shared). Everything else runs here (the caches of
        the embeddings, the ICL accuracies, soft injection's training)."""
        cfg, builder = model.cfg, model.prompt_builder(labels="first")
        te = torch.zeros(cfg.n_layers, cfg.n_heads, cfg.d_head)
        resid = torch.zeros(cfg.n_layers, cfg.d_model)
        layers = list(range(cfg.n_layers))
        steps = []
        for task in tasks:
            b = self.batches(builder, task, prompt_seed)
            fv, tv = FunctionVector(self.top_k), TaskVector()
            states = torch.zeros(len(b.dev0), cfg.n_layers, cfg.d_model)
            alpha = torch.zeros(cfg.n_layers, cfg.n_heads)
            evals = [f"soft injection ({fit_label(*f)})" for f in self.fits()[1:]]
            if self.shared and len(tasks) > 1:
                evals += [f"shared soft injection ({fit_label(*f)})" for f in self.fits()]
            si_plan = SoftInjection.plan(alpha, te, b.test0)
            steps += [
                (f"{task} AIE", AverageIndirectEffect().plan(te, b.shuffled), b.shuffled, None),
                (f"{task} FV dev", fv.plan(resid[0], states, b.dev0, layers), b.dev0, None),
                (f"{task} TV dev", tv.plan(resid, b.dev0, layers), b.dev0, None),
                (f"{task} TV test", tv.plan(resid, b.test0, layers), b.test0, None),
                (f"{task} soft injection", si_plan, b.test0, None),
                *((f"{task} {e}", si_plan, b.test0, None) for e in evals),
            ]
        return steps

    def run(
        self,
        model: HookedModel,
        tasks: list[str],
        log: Callable[[str], object] = print,
        prompt_seed: int | None = None,
    ) -> TaskVectorsResult:
        """Every method on ``tasks``; ``prompt_seed`` draws the prompts (see :meth:`batches`)."""
        builder = model.prompt_builder(labels="first")
        engine = Engine(model, max_batch=self.max_batch)
        seconds: dict[str, float] = {"aie": 0.0, "fv": 0.0, "tv": 0.0, "soft_injection": 0.0}
        rows, aies, sweeps, losses, data = [], [], [], [], {}
        hit_rows: list[pd.DataFrame] = []
        by_prompt: list[pd.DataFrame] = []
        stability: list[dict] = []
        fits_by: dict[str, list[AlphaFit]] = {}
        if len(self.fits()) > 1:
            seconds["alpha_stability"] = 0.0

        def score(task, method, hits: Tensor, layer=None):
            lo, hi = wilson(float(hits.sum()), len(hits))
            per = hits.float().numpy()
            hit_rows.append(pd.DataFrame({"task": task, "method": method, "hit": per}))
            rows.append(
                {
                    "task": task,
                    "method": method,
                    "acc": float(hits.float().mean()),
                    "lo": lo,
                    "hi": hi,
                    "n": len(hits),
                    "layer": layer,
                }
            )

        for i, task in enumerate(tasks):
            log(f"[{i + 1}/{len(tasks)}] {task}: embeddings, 0-shot and {self.shots}-shot")
            b = self.batches(builder, task, prompt_seed)
            split, test0, testk, dev0 = b.split, b.test0, b.testk, b.dev0
            te = task_embedding(model, b.te)
            score(task, "zero_shot", accuracy(model, test0))
            score(task, "icl", accuracy(model, testk))
            log(
                f"  AIE of {model.cfg.n_layers * model.cfg.n_heads} heads x {self.trials} "
                "shuffled-label prompts, one plan"
            )
            t0 = time.monotonic()
            table = AverageIndirectEffect(self.max_batch).run_table(
                model, te.heads, b.shuffled, engine
            )
            aies.append(indirect_effects(table).assign(task=task))
            by_prompt.append(prompt_effects(table).assign(task=task))
            seconds["aie"] += time.monotonic() - t0
            data[task] = (split, test0, dev0, te)

        mean_aie = pd.concat(aies).groupby(["layer", "head"], as_index=False)[["aie"]].mean()
        heads = top_heads(mean_aie, self.top_k)
        log(f"top heads by mean AIE: {', '.join(f'L{l}H{h}' for l, h in heads)}")
        alphas: dict[str, Tensor] = {}
        for task, (_, test0, dev0, te) in data.items():
            log(f"{task}: function vector, task vector, soft injection")
            t0 = time.monotonic()
            fvec = FunctionVector(self.top_k, self.max_batch)
            fv = fvec.build(model, te.heads, heads)
            dev = fvec.sweep(model, dev0, fv, engine=engine)
            layer, _ = best_layer(dev)
            test = fvec.sweep(model, test0, fv, [layer], engine=engine)
            score(task, "fv", torch.tensor(test[test.layer == layer].correct.to_numpy()), layer)
            sweeps += _sweep_rows(task, "fv", "dev", dev)
            seconds["fv"] += time.monotonic() - t0
            t0 = time.monotonic()
            tv = TaskVector(self.max_batch)
            dev = tv.sweep(model, dev0, te.resid, engine=engine)
            layer, _ = best_layer(dev)
            test = tv.sweep(model, test0, te.resid, engine=engine)
            score(task, "tv", torch.tensor(test[test.layer == layer].correct.to_numpy()), layer)
            sweeps += _sweep_rows(task, "tv", "dev", dev) + _sweep_rows(task, "tv", "test", test)
            seconds["tv"] += time.monotonic() - t0
            fits = self.fit_alpha(
                model, {task: (te.heads, dev0)}, {task: (te.heads, test0)}, engine, log
            )
            fits_by[task] = fits
            score(task, "soft_injection", fits[0].hits[task])
        if self.shared and len(tasks) > 1:
            log(f"soft injection, one alpha shared by {len(tasks)} tasks")
            train = {t: (d[3].heads, d[2]) for t, d in data.items()}
            test = {t: (d[3].heads, d[1]) for t, d in data.items()}
            fits_by["shared"] = self.fit_alpha(model, train, test, engine, log)
            for task, hits in fits_by["shared"][0].hits.items():
                score(task, "soft_injection_shared", hits)
        for name, fits in fits_by.items():
            alphas[name] = fits[0].alpha
            losses += [{"task": name, "step": s, "loss": v} for s, v in enumerate(fits[0].losses)]
            stability += _stability_rows(name, fits)
            seconds["soft_injection"] += fits[0].seconds
            if len(fits) > 1:
                seconds["alpha_stability"] += sum(f.seconds for f in fits[1:])
        aie_table = pd.concat([*aies, mean_aie.assign(task="mean")], ignore_index=True)
        return TaskVectorsResult(
            pd.DataFrame(rows),
            aie_table,
            pd.DataFrame(sweeps),
            alphas,
            pd.DataFrame(losses),
            heads,
            seconds,
            pd.DataFrame(stability),
            {name: {f.label: f.alpha for f in fits} for name, fits in fits_by.items()},
            pd.concat(by_prompt, ignore_index=True),
            _numbered(hit_rows),
        )


def _numbered(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-prompt hits ``(task, method, prompt, hit)``, prompts numbered within each part."""
    return pd.concat([p.assign(prompt=range(len(p))) for p in parts], ignore_index=True)[
        ["task", "method", "prompt", "hit"]
    ]
