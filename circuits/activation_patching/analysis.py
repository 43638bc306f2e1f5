"""Activation patching as a registered analysis (kind ``patch``): its config and its run."""

from __future__ import annotations

import time
from dataclasses import dataclass

from circuits.activation_patching.effects import Effects
from circuits.activation_patching.plan import COMPONENTS, build_plan
from circuits.activation_patching.report import PatchRun, attribution_table
from interp.analysis import Analysis, AnalysisConfig, CostEstimate
from interp.analysis.base import Log, engine_costs
from interp.errors import IclscopeError


@dataclass
class PatchConfig(AnalysisConfig):
    """``component``: what each plan row patches (heads, resid, mlp or edges); ``metric``: read
    at the query's last token; ``ablation``: mean, zero or resample instead of patching clean
    into corrupted; ``prompts``: clean/corrupted pairs; ``per_position``: heads patched at
    each position separately; ``max_batch``: rows per forward pass."""

    component: str = "heads"
    metric: str = "logit_diff"
    ablation: str | None = None
    prompts: int = 8
    shots: int = 4
    max_batch: int | None = None
    per_position: bool = False


class ActivationPatching(Analysis):
    """Patch or ablate every component in batched forward passes and rank them by effect (see
    the activation patching page of the docs)."""

    kind = "patch"
    score = "the metric at the query's last token, on the first token of each label"
    config_type = PatchConfig

    def check(self, model: str, task: str, config: PatchConfig) -> None:
        if config.component not in COMPONENTS:
            raise IclscopeError(
                f"unknown component {config.component!r}", fix=f"use one of {COMPONENTS}"
            )

    def estimate(self, model, task, config: PatchConfig, workers=1, loaded=None):
        from interp.models import load_model

        m = loaded if loaded is not None else load_model(model)
        clean, corrupted, plan = self._plan(m, task, config)
        costs = engine_costs(m, [("patch", plan, clean, corrupted)], config.max_batch, workers)
        return CostEstimate(costs)

    @staticmethod
    def _plan(model, task: str, config: PatchConfig):
        """The prompt pairs and the sweep's plan, with the clean and corrupted runs."""
        from interp.engine.sweeps import with_baselines
        from interp.tasks.suite import build_pair_batches, label_mode

        clean, corrupted = build_pair_batches(
            model.prompt_builder(labels=label_mode(task)),
            task,
            config.prompts,
            config.shots,
            config.seed,
        )
        sweep = build_plan(config.component, model.cfg, clean, config.ablation, config.per_position)
        return clean, corrupted, with_baselines(sweep, range(len(clean)))

    def run(self, model, task: str, config: PatchConfig, executor, *, log: Log = print):
        from interp.engine.attribution import attribute
        from interp.engine.batched import Engine

        clean, corrupted, plan = self._plan(model, task, config)
        start = time.perf_counter()
        engine = Engine(model, max_batch=config.max_batch, executor=executor)
        log(f"plan: {plan!r}")
        log(engine.estimate(plan, clean.tokens.shape[1]))
        table = engine.run(plan, clean, corrupted, metric=config.metric)
        effects = Effects.measure(table, plan, config.metric)
        seconds = time.perf_counter() - start
        for warning in effects.warnings():
            log(f"warning: {warning}")
        attribution = None
        exact = config.component in ("heads", "resid") and config.ablation is None
        if exact and not config.per_position and config.metric != "acc":  # acc: no gradient
            approx = attribute(model, clean, corrupted, config.component, config.metric)
            attribution = attribution_table(approx, effects)
        return PatchRun(
            effects,
            plan,
            seconds,
            model.cfg.name,
            task,
            config.component,
            config.ablation,
            attribution,
        )
