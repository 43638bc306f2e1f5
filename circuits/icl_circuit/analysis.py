"""The ICL circuit as a registered analysis (kind ``circuit``): its config and its run."""

from __future__ import annotations

from dataclasses import dataclass

from circuits.icl_circuit import EdgeAblation, IclCircuit
from circuits.icl_circuit.report import CircuitRun
from interp.analysis import Analysis, AnalysisConfig, CostEstimate
from interp.analysis.base import Log, engine_costs


@dataclass
class CircuitConfig(AnalysisConfig):
    """``shots`` demonstrations per prompt; ``prompts`` for the probes and the ablation table;
    ``ablation_prompts``: the first N of them for the edge knockouts (all when None: up to 77
    forward passes each); ``max_batch``: rows per forward pass of the ablation engine;
    ``seeds``: run the whole circuit once per seed, each on its own draw of prompts (``None``:
    once, with ``seed``)."""

    shots: int = 4
    prompts: int = 512
    ablation_prompts: int | None = None
    max_batch: int | None = None
    seeds: tuple[int, ...] | None = None

    def seed_list(self) -> list[int]:
        """The seeds the run samples prompts with, the first giving its tables and figures."""
        return list(self.seeds) if self.seeds else [self.seed]

    def circuit(self, seed: int | None = None) -> IclCircuit:
        """The :class:`IclCircuit` this config describes for one ``seed`` [the first] (the run
        and its dry run share it)."""
        return IclCircuit(
            shots=self.shots,
            prompts=self.prompts,
            seed=self.seed_list()[0] if seed is None else seed,
            ablation_prompts=self.ablation_prompts,
            ablation=EdgeAblation(max_batch=self.max_batch),
        )


class IclCircuitAnalysis(Analysis):
    """Summarize, semantics merge, retrieve and copy, and the attention-edge knockouts, on a
    classification family (see the ICL circuit page of the docs)."""

    kind = "circuit"
    score = "label accuracy among the prompt's labels, by the first token of each label"
    config_type = CircuitConfig

    def check(self, model: str, task: str, config: CircuitConfig) -> None:
        from interp.tasks.suite import require_kind

        require_kind(
            task,
            "classification",
            "the ICL circuit",
            fix="use --task sentiment_semantic or --task sentiment_arbitrary",
        )

    def estimate(self, model, task, config: CircuitConfig, workers=1, loaded=None):
        from interp.models import load_model

        m = loaded if loaded is not None else load_model(model)
        seeds = config.seed_list()
        steps = []
        for seed in seeds:  # each seed's ablation table is a plan of its own prompts
            for name, *rest in config.circuit(seed).engine_steps(m, task):
                steps.append((name + (f" (seed {seed})" if len(seeds) > 1 else ""), *rest))
        costs = engine_costs(m, steps, config.max_batch, workers)
        n, chunk = len(seeds) * config.prompts, config.circuit().chunk
        besides = (
            f"besides: {2 * n} prompts cached (correct and wrong labels) in "
            f"{2 * len(seeds) * -(-config.prompts // chunk)} forward passes, in this process"
        )
        return CostEstimate(costs, "--ablation-prompts", (besides,))

    def run(self, model, task: str, config: CircuitConfig, executor, *, log: Log = print):
        seeds, results = config.seed_list(), []
        for i, seed in enumerate(seeds):
            if len(seeds) > 1:
                log(f"seed {seed} ({i + 1} of {len(seeds)}): sampling its own prompts")
            results.append(config.circuit(seed).run(model, task, log=log))
        m = config.circuit().summarize.m
        return CircuitRun(
            results[0],
            model.cfg.name,
            task,
            config.shots,
            config.prompts,
            m,
            seeds=seeds,
            others=results[1:],
        )
