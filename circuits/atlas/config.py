"""What an atlas runs: each part's analysis, task and config, at modest sizes.

The atlas's config holds the config of every analysis it composes, so one dataclass says the
whole run, its manifest records all of it, and a part's run is reused exactly when its own
config (what its manifest records) is the one asked for. Every part shares the atlas's seed,
so the classification and function prompts are the same draws wherever two parts use the same
family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from circuits.block_relevance.analysis import BlockRelevanceConfig
from circuits.eviction.analysis import EvictionConfig
from circuits.icl_circuit.analysis import CircuitConfig
from circuits.task_vectors.analysis import TaskVectorsConfig
from interp.analysis import AnalysisConfig
from interp.errors import IclscopeError

PARTS = ("circuit", "task-vectors", "eviction", "block-relevance")
"""The analyses an atlas composes, by registered kind, in the order they run."""

DEFAULT_TASKS = {
    "natural": ("nl_kind_arbitrary", "nl_capital", "nl_antonym", "nl_country_continent"),
    "organism": ("sentiment_arbitrary", "fn_copy_first", "fn_class_last", "fn_index_first"),
}
"""Per suite: a classification family where demonstrations matter (the circuit), function
families (task vectors; the first also for eviction)."""

RANKING = {"natural": "nl_ranking_lexical", "organism": "ranking"}


def _circuit() -> CircuitConfig:
    return CircuitConfig(prompts=256, ablation_prompts=64)


def _task_vectors() -> TaskVectorsConfig:
    return TaskVectorsConfig()  # the published sizes: three tasks keep it to minutes


def _eviction() -> EvictionConfig:
    return EvictionConfig(
        prompts=32,
        rates=(0.5,),
        methods=("snapkv",),
        lengths=(512,),
        gate_prompts=32,
        gate_epochs=30,
    )


def _block_relevance() -> BlockRelevanceConfig:
    return BlockRelevanceConfig(prompts=48)


@dataclass
class AtlasConfig(AnalysisConfig):
    """``parts``: the analyses to compose (kinds of :data:`PARTS`); ``tasks``: the families to
    use (the first classification family for the circuit, the function families for task
    vectors and the first of them for eviction, the first ranking family for block relevance;
    each missing kind falls back to the suite's default); ``top``: the size of every role set
    that takes the top heads by score; then each part's own config."""

    parts: tuple[str, ...] = PARTS
    tasks: tuple[str, ...] | None = None
    top: int = 10
    circuit: CircuitConfig = field(default_factory=_circuit)
    task_vectors: TaskVectorsConfig = field(default_factory=_task_vectors)
    eviction: EvictionConfig = field(default_factory=_eviction)
    block_relevance: BlockRelevanceConfig = field(default_factory=_block_relevance)

    def check(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise IclscopeError(
                f"unknown atlas parts: {', '.join(unknown) or '(none given)'}",
                fix=f"choose among {', '.join(PARTS)}",
            )
        if self.top < 1:
            raise IclscopeError(
                f"--top {self.top} leaves every role empty", fix="use --top 1 or more"
            )

    def part_config(self, kind: str) -> AnalysisConfig:
        """The config of part ``kind``, with the atlas's seed."""
        config = {
            "circuit": self.circuit,
            "task-vectors": self.task_vectors,
            "eviction": self.eviction,
            "block-relevance": self.block_relevance,
        }[kind]
        return replace(config, seed=self.seed)


@dataclass(frozen=True)
class Part:
    """One analysis the atlas runs or reuses: its kind, task and config."""

    kind: str
    task: str
    config: AnalysisConfig


def atlas_parts(config: AtlasConfig, suite: str) -> list[Part]:
    """Each part of ``config`` with its task, from ``config.tasks`` or the suite's defaults."""
    from interp.tasks.suite import get_family

    config.check()
    given = [get_family(t) for t in config.tasks or ()]
    defaults = [get_family(t) for t in (*DEFAULT_TASKS[suite], RANKING[suite])]

    def of(kind: str) -> list[str]:
        named = [f.name for f in given if f.kind == kind]
        return named or [f.name for f in defaults if f.kind == kind]

    functions = of("function")
    tasks = {
        "circuit": of("classification")[0],
        "task-vectors": ",".join(functions),
        "eviction": functions[0],
        "block-relevance": of("ranking")[0],
    }
    parts = []
    for kind in PARTS:
        if kind not in config.parts:
            continue
        part_config = config.part_config(kind)
        if kind == "task-vectors":  # the families travel in the config, as the CLI puts them
            part_config = replace(part_config, tasks=list(functions))
        parts.append(Part(kind, tasks[kind], part_config))
    return parts


def tiny_config(config: AtlasConfig) -> AtlasConfig:
    """``config`` with every part at a handful of prompts and steps: the whole atlas in a
    minute or two on the organism, for smoke tests and trying the command out; its numbers
    say little."""
    return replace(
        config,
        circuit=CircuitConfig(prompts=16, ablation_prompts=8),
        task_vectors=TaskVectorsConfig(
            shots=4, test_items=6, te_prompts=6, trials=2, steps=3, batch=4, circuit_prompts=8
        ),
        eviction=EvictionConfig(
            shots=8,
            prompts=4,
            rates=(0.5,),
            methods=("snapkv",),
            lengths=(256,),
            gate_prompts=4,
            gate_epochs=2,
        ),
        block_relevance=BlockRelevanceConfig(prompts=8),
    )
