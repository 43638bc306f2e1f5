"""The shape every analysis has: a config, a ``run`` that returns a result, and a result that
knows its own tables, figures, summary and report.

An analysis is one package under ``circuits/`` that subclasses :class:`Analysis`. Everything a
run shares (the run directory, the manifest, the executor, integer axes, static figures,
interrupts, the closing hints) lives in one place, :func:`interp.analysis.runner.run_analysis`,
so that a new method is a page of science plus a registry line, the way each kvpress press is a
scorer behind one interface. The split mirrors the order a reader follows:
``config → run → Result → (tables, figures, summary, report)``, each testable alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # only for annotations: importing pandas/plotly/torch here would slow the CLI
    import pandas as pd
    import plotly.graph_objects as go

Log = Callable[[str], object]
"""Where an analysis reports its progress: ``print`` in scripts, the CLI's console in commands."""


@dataclass
class AnalysisConfig:
    """The knobs of one analysis. Subclasses add their fields with the published defaults;
    :meth:`params` is what the run's manifest records under ``params``."""

    seed: int = 0

    def params(self) -> dict[str, Any]:
        """The manifest's ``params``: every field but the seed (the manifest keeps that on
        its own)."""
        values = asdict(self)
        values.pop("seed", None)
        return values


@dataclass
class CostEstimate:
    """What a run will cost before it starts: ``costs`` (engine plans'
    :class:`~interp.engine.memory.Costs`, or chunks' :class:`~interp.engine.memory.
    WorkEstimate`: both say their ``lines()`` and ``check(budget, knob)``), the option that
    shrinks it (``knob``) and what the run does besides (``notes``)."""

    costs: Any
    knob: str | dict[str, str] = "--prompts"
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        return [*self.costs.lines(), *self.notes]

    def seconds(self, elapsed: float) -> float | None:
        """The run's wall time: the costs' measured time plus ``elapsed`` (the caller's seconds
        to load the model and make this estimate) twice, less one measurement: a run makes
        its estimate as it starts and lays out its work again to do it, and the second load
        stands for writing the run directory, which took about as long on the organism and
        SmolLM2. None where the costs were not timed."""
        measured = getattr(self.costs, "seconds", None)
        if measured is None:
            return None
        return measured + 2 * elapsed - self.costs.measured_in

    def time_line(self, elapsed: float) -> str | None:
        """``estimated time: ~N s`` (see :meth:`seconds`), or None when nothing was timed."""
        seconds = self.seconds(elapsed)
        if seconds is None:
            return None
        shown = f"{seconds:.1f}" if seconds < 10 else f"{float(f'{seconds:.2g}'):.0f}"
        line = f"estimated time: ~{shown} s"
        if seconds >= 120:
            line += f" (~{seconds / 60:.0f} min)"
        plans = hasattr(self.costs, "steps")
        caveats = (
            [] if plans else ["roughly: each forward pass timed as a full pass over its chunk"]
        )
        if self.notes:
            caveats.append(
                "not counting what runs besides" + (" the engine plans" if plans else "")
            )
        return "; ".join([line, *caveats])

    def with_time(self, loaded) -> CostEstimate:
        """This estimate with its chunks of prompts timed on ``loaded`` (what
        :meth:`Analysis.load` gave: a hooked model, or a tuple led by a Hugging Face model);
        engine plans come timed from :func:`engine_costs` already."""
        if not hasattr(self.costs, "largest") or self.costs.seconds is not None:
            return self
        module = loaded[0] if isinstance(loaded, tuple) else loaded
        module = getattr(module, "hf_model", module)
        if not hasattr(module, "get_input_embeddings"):
            return self
        from interp.analysis.timing import time_work

        return replace(self, costs=time_work(self.costs, module))


def engine_costs(model, steps, max_batch: int | None, workers: int, timed: bool = True):
    """The :class:`~interp.engine.memory.Costs` of engine ``steps`` on a loaded model, timed
    on a few of their chunks unless ``timed`` is False."""
    from interp.engine.batched import Engine
    from interp.engine.memory import estimate_steps

    engine = Engine(model, max_batch=max_batch)
    costs = estimate_steps(engine, steps, workers=workers)
    if not timed:
        return costs
    from interp.analysis.timing import time_steps

    return time_steps(engine, steps, costs)


class Result(ABC):
    """What an analysis hands back: everything a run directory holds, computed on demand.

    A result object wraps the analysis's own dataclass of tidy tables; these four methods are
    how the runner, notebooks and the explorer read it without knowing the method.
    """

    @abstractmethod
    def tables(self) -> dict[str, pd.DataFrame]:
        """Tidy tables by name, one row per layer/head/position/condition."""

    def figures(self) -> dict[str, go.Figure]:
        """Plotly figures by name (the runner gives every one integer axes)."""
        return {}

    def figure_sections(self) -> dict[str, str]:
        """Where the report discusses each figure: figure name -> the start of that section's
        heading (``"Step 1"``). The report shows the figure at the end of that section; a
        figure left out goes under a last ``Figures`` heading."""
        return {}

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """The headline numbers, written as ``summary.json``."""

    @abstractmethod
    def report(self, summary: dict[str, Any]) -> str:
        """The markdown report, every sentence written from the numbers in ``summary``."""

    def params(self) -> dict[str, Any]:
        """Params the run learns only from the loaded model (which suite its tokenizer
        builds ...), added to the manifest's ``params``."""
        return {}

    def artifacts(self) -> dict[str, str]:
        """Extra text files for the run directory by file name (a plan, a gate's record)."""
        return {}

    def write_files(self, run_dir) -> None:
        """Write anything that is neither a table, a figure nor text (tensors, a trained
        gate's folder) into ``run_dir`` (a :class:`~pathlib.Path`), atomically
        (:mod:`interp.io`). Most results have none."""
        return None


class Analysis(ABC):
    """One method: its config type, how it loads a model, how it checks and runs.

    Subclasses set :attr:`kind` (the run directory's kind, and the registry key),
    :attr:`config_type`, and implement :meth:`run`.
    """

    kind: ClassVar[str]
    config_type: ClassVar[type[AnalysisConfig]] = AnalysisConfig
    score: ClassVar[str] = "the first token of each answer"
    """How answers are scored, as the manifest and the report state it (an answer of several
    tokens is read by its first token unless the analysis says otherwise)."""
    run_dir: Path | None = None
    """The run directory being written, set by the runner before :meth:`run`: where an analysis
    saves what it makes as it goes (a gate trained inside the run, kept if the run stops)."""

    def check(self, model: str, task: str, config: AnalysisConfig) -> None:
        """Refuse what cannot run (a task of the wrong kind ...) before a run directory exists;
        raise :class:`~interp.errors.IclscopeError` naming the problem and its fix."""
        return None

    def load(self, model: str, config: AnalysisConfig):
        """The model this analysis runs on: a :class:`~interp.models.HookedModel` by default
        (an analysis whose config picks a backend, or that needs eager attention, loads its
        own way)."""
        from interp.models import load_model

        return load_model(model)

    def estimate(
        self, model: str, task: str, config: AnalysisConfig, workers: int = 1, loaded=None
    ) -> CostEstimate | None:
        """What a run will cost (forward passes, memory per worker), printed by ``--dry-run``
        and logged when a run starts; ``loaded``: the model :meth:`load` gave, where the
        caller has it. None where the analysis cannot say."""
        return None

    @abstractmethod
    def run(
        self, model, task: str, config: AnalysisConfig, executor, *, log: Log = print
    ) -> Result:
        """Compute the analysis on a loaded ``model``. Engines made inside ``run`` already use
        ``executor`` (the runner makes it current); work that is no engine plan (eviction's
        prefills, block relevance's chunks) goes through ``executor.map``."""


def config_from(config_type: type[AnalysisConfig], values: dict[str, Any]) -> AnalysisConfig:
    """A config from a dict of option values, keeping only the names the config has: the CLI
    builds configs this way, so one options dict can feed a config and the run's wrapper."""
    if not is_dataclass(config_type):
        raise TypeError(f"{config_type!r} is not a dataclass")
    names = {f.name for f in fields(config_type)}
    return config_type(**{k: v for k, v in values.items() if k in names})
