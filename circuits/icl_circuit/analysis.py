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
    forward passes each); ``max_batch``: rows per forward pass of the ablation engine."""

    shots: int = 4
    prompts: int = 512
    ablation_prompts: int | None = None
    max_batch: int | None = None

    def circuit(self) -> IclCircuit:
        """The :class:`IclCircuit` this config describes (the run and its dry run share it)."""
        return IclCircuit(
            shots=self.shots,
            prompts=self.prompts,
            seed=self.seed,
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
        circuit = config.circuit()
        costs = engine_costs(m, circuit.engine_steps(m, task), config.max_batch, workers)
        besides = (
            f"besides: {2 * config.prompts} prompts cached (correct and wrong labels) in "
            f"{2 * -(-config.prompts // circuit.chunk)} forward passes, in this process"
        )
        return CostEstimate(costs, "--ablation-prompts", (besides,))

    def run(self, model, task: str, config: CircuitConfig, executor, *, log: Log = print):
        circuit = config.circuit()
        result = circuit.run(model, task, log=log)
        return CircuitRun(
            result, model.cfg.name, task, config.shots, config.prompts, circuit.summarize.m
        )
