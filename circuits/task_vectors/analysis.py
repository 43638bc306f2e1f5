"""Task vectors as a registered analysis: its config and its run.

The config holds every knob of ``iclscope run task-vectors``: those of :class:`TaskVectors`,
how many prompts measure the ICL circuit's retrieval heads for the overlap, and the function
families the run covers (``--task`` resolved, so the manifest lists them). The run is
:meth:`TaskVectors.run` followed by that overlap; the run directory is
:class:`~circuits.task_vectors.report.TaskVectorsRun`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

from circuits.task_vectors import TaskVectors
from circuits.task_vectors.data import resolve_tasks
from circuits.task_vectors.overlap import circuit_heads, overlap
from circuits.task_vectors.report import TaskVectorsRun
from interp.analysis import Analysis, AnalysisConfig, CostEstimate
from interp.analysis.base import Log, engine_costs


@dataclass
class TaskVectorsConfig(AnalysisConfig):
    """The knobs of :class:`TaskVectors` (see there), plus three of the run's own.

    ``circuit_prompts``: classification prompts that find the ICL circuit's step-3 heads to
    compare with the top AIE heads (0 skips the comparison). ``tasks``: the function families
    to run, as :func:`~circuits.task_vectors.data.tasks_for` resolves the task argument; None
    resolves it with the loaded model's tokenizer (the result then adds them to the manifest).
    ``seeds``: draw the prompts (test items, demonstrations, embedding and AIE prompts) once
    per seed and run every method on each draw (empty: once, with ``seed``); soft injection's
    fits keep ``seed``."""

    shots: int = 8
    test_items: int = 40
    te_prompts: int = 50
    trials: int = 25
    top_k: int = 10
    steps: int = 400
    lr: float = 0.2
    batch: int = 16
    shared: bool = True
    max_batch: int | None = None
    stability_lrs: tuple[float, ...] = ()
    stability_seeds: tuple[int, ...] = ()
    init_std: float = 0.0
    circuit_prompts: int = 64
    tasks: list[str] | None = None
    seeds: tuple[int, ...] = ()

    def prompt_seeds(self) -> list[int]:
        """The seeds that draw the prompts, one run each: ``seeds``, or the run's seed alone."""
        return list(self.seeds) or [self.seed]

    def task_vectors(self) -> TaskVectors:
        """The :class:`TaskVectors` this config describes (the run and its dry run share it)."""
        knobs = {f.name: getattr(self, f.name) for f in fields(TaskVectors)}
        knobs["stability_lrs"] = tuple(self.stability_lrs)
        knobs["stability_seeds"] = tuple(self.stability_seeds)
        return TaskVectors(**knobs)

    def params(self) -> dict:
        values = super().params()
        values["stability_lrs"] = list(self.stability_lrs)
        values["stability_seeds"] = list(self.stability_seeds)
        values["seeds"] = list(self.seeds)
        return values


class TaskVectorsAnalysis(Analysis):
    """Function vectors, task vectors and soft injection on function tasks, scored 0-shot on
    held-out items against 0-shot and k-shot ICL, and the top AIE heads against the ICL
    circuit's retrieval heads.

    Its engine plans (the AIE, the FV and TV layer sweeps, the soft-injection evaluation) run
    on the executor; soft injection's training (gradient descent), the caches and the circuit's
    heads stay in this process. The run directory's kind keeps its published spelling,
    ``task-vectors`` (the explorer's page and existing runs folders know it by that name)."""

    kind = "task-vectors"
    score = "0-shot accuracy by the first token of each answer (argmax over the vocabulary)"
    config_type = TaskVectorsConfig

    def check(self, model: str, task: str, config: TaskVectorsConfig) -> None:
        # a family that is not a function task is refused before a run directory exists
        if config.tasks is not None:
            resolve_tasks(",".join(config.tasks))
        elif task != "all":
            resolve_tasks(task)

    def estimate(self, model, task, config: TaskVectorsConfig, workers=1, loaded=None):
        from circuits.task_vectors.data import tasks_for
        from interp.models import load_model

        m = loaded if loaded is not None else load_model(model)
        tasks = config.tasks or tasks_for(model, task)
        analysis = config.task_vectors()
        seeds = config.prompt_seeds()
        steps = []
        for s in seeds:  # every seed's prompts are drawn again: its own plans, same shapes
            named = analysis.engine_steps(m, tasks, s)
            steps += [(f"seed {s}: {n}", *rest) for n, *rest in named] if len(seeds) > 1 else named
        costs = engine_costs(m, steps, config.max_batch, workers)
        besides = (
            f"besides, in this process: {len(tasks)} tasks' embeddings and ICL accuracies (up "
            f"to {config.te_prompts + 2 * config.test_items} prompts each), soft injection's "
            f"{config.steps} training steps per task and fit ({len(analysis.fits())} fits per "
            "alpha)" + (f", all of it once per seed ({len(seeds)} seeds)" if len(seeds) > 1 else "")
        )
        return CostEstimate(costs, memory_knobs(tasks), (besides,))

    def run(
        self, model, task: str, config: TaskVectorsConfig, executor, *, log: Log = print
    ) -> TaskVectorsRun:
        t0 = time.monotonic()
        tasks = config.tasks if config.tasks is not None else resolve_tasks(task, model.tokenizer)
        analysis = config.task_vectors()
        seeds = config.prompt_seeds()
        by_seed = {}
        for k, s in enumerate(seeds):
            if len(seeds) > 1:
                log(f"prompt seed {s} ({k + 1}/{len(seeds)})")
            by_seed[s] = analysis.run(model, tasks, log=log, prompt_seed=s)
        result = by_seed[seeds[0]]
        circuit = None
        if config.circuit_prompts:
            log(f"ICL circuit step-3 heads on {config.circuit_prompts} prompts")
            circuit = overlap(
                result.top_heads,
                circuit_heads(model, config.circuit_prompts, config.top_k, config.seed),
                model.cfg.n_layers * model.cfg.n_heads,
            )
        seconds = round(time.monotonic() - t0, 1)
        return TaskVectorsRun(result, circuit, seconds, model.cfg.name, analysis, tasks, by_seed)


def memory_knobs(tasks: list[str]) -> dict[str, str]:
    """What shrinks each task-vector plan's cached sources: the AIE's prompts are --trials,
    the test sweeps' --test-items; the dev sweeps read every train item of the task, which no
    option caps (more --test-items leave fewer, but that is not a knob to turn for memory)."""
    knobs = {"": "--test-items"}
    for task in tasks:
        knobs[f"{task} AIE"] = "--trials"
        for dev in ("FV dev", "TV dev"):
            knobs[f"{task} {dev}"] = (
                "tasks (its dev sweeps cache every train item: drop this task from --task, or "
                "run on a machine with more memory)"
            )
    return knobs
