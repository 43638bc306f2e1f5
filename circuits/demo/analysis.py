"""The demo as a registered analysis (kind ``demo``): what a researcher does first with a
model. Score a few families by number of demonstrations (does it learn in context at all?),
look inside one prompt, then run the ICL circuit on the classification family whose
demonstrations help most (:mod:`circuits.demo.choice`)."""

from __future__ import annotations

from dataclasses import dataclass

from circuits.demo.choice import choose_circuit_task
from circuits.demo.look import (
    CIRCUIT_TASK,
    DEMO_FAMILIES,
    SHOTS,
    circuit_candidates,
    demo_suite,
    first_look,
)
from circuits.demo.report import DemoRun, shots_table
from interp.analysis import Analysis, AnalysisConfig
from interp.analysis.base import Log


@dataclass
class DemoConfig(AnalysisConfig):
    """``n`` held-out prompts per evaluation cell at each of ``shots``; ``circuit``: also run
    the ICL circuit, on ``circuit_prompts`` prompts with ``ablation_prompts`` of them for the
    edge knockouts."""

    n: int = 32
    shots: tuple[int, ...] = SHOTS
    circuit: bool = True
    circuit_prompts: int = 128
    ablation_prompts: int = 32


class DemoAnalysis(Analysis):
    """Evaluate, look inside one prompt and (with ``circuit``) run the ICL circuit."""

    kind = "demo"
    score = "accuracy by the first token of each answer"
    config_type = DemoConfig

    def run(self, model, task: str, config: DemoConfig, executor, *, log: Log = print):
        import torch
        from tqdm.auto import tqdm

        from interp.tasks.evaluate import evaluate_model

        torch.manual_seed(config.seed)
        suite = demo_suite(model.tokenizer)
        families = DEMO_FAMILIES[suite]
        log(
            f"evaluating {len(families)} families at {config.shots} shots ({config.n} prompts "
            "per cell) ..."
        )
        with tqdm(total=len(families) * len(config.shots), desc="evaluating", unit="cell") as bar:
            # a bar with the cell being scored and the time left: this step takes minutes

            def step(what: str) -> None:  # called as each cell starts: count the one before
                bar.update(1 if bar.postfix else 0)
                bar.set_postfix_str(what)

            result = evaluate_model(
                model.hf_model,
                model.tokenizer,
                families,
                config.shots,
                config.n,
                seed=10_007 + config.seed,
                prepend_bos=model.prompt_builder().prepend_bos,
                progress=step,
            )
            bar.update()
        by_shots = shots_table(result)
        choice = choose_circuit_task(
            by_shots, circuit_candidates(families, model.tokenizer), CIRCUIT_TASK[suite]
        )
        circuit_task = choice.task
        log(f"the circuit's task: {circuit_task} ({choice.why})")
        log("looking inside one prompt ...")
        text, lens, attention = first_look(model, circuit_task, seed=config.seed)
        circuit = None
        if config.circuit:
            circuit = self._circuit(model, circuit_task, config, log)
        return DemoRun(
            model.cfg.name, by_shots, text, lens, attention, suite, families, choice, circuit
        )

    @staticmethod
    def _circuit(model, task: str, config: DemoConfig, log: Log) -> dict:
        from circuits.icl_circuit import IclCircuit

        log(f"the ICL circuit on {task} ({config.circuit_prompts} prompts) ...")
        circuit = IclCircuit(
            shots=4,
            prompts=config.circuit_prompts,
            seed=config.seed,
            ablation_prompts=min(config.ablation_prompts, config.circuit_prompts),
        )
        found = circuit.run(model, task, log=log)
        return {"result": found, "prompts": config.circuit_prompts, "m": circuit.summarize.m}
