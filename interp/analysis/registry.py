"""Every analysis by kind: where its code lives, its explorer page, one line about it.

Entries name their code as ``"module:attribute"`` strings and nothing is imported until asked
for, so the command line's ``--help`` and the explorer's runs list stay free of torch. Adding a
method is one package under ``circuits/`` plus one :func:`register` line in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from interp.errors import IclscopeError


@dataclass(frozen=True)
class AnalysisEntry:
    """One registered analysis.

    ``analysis``: the :class:`~interp.analysis.base.Analysis` subclass, as ``"module:Class"``.
    ``page``: the function that draws one of its runs in the explorer (``page(run, name)``,
    with a :class:`~interp.runs.store.Run`), as ``"module:function"``, or None for the generic
    view. ``command``: the command line that runs it.
    """

    kind: str
    title: str
    about: str
    analysis: str
    page: str | None = None
    command: str | None = None

    def load(self) -> Any:
        """The analysis class (imports its package)."""
        return _resolve(self.analysis)

    def page_function(self) -> Any | None:
        return _resolve(self.page) if self.page else None


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, AnalysisEntry] = {}


def register(entry: AnalysisEntry) -> AnalysisEntry:
    """Add (or replace) the analysis of ``entry.kind``."""
    _REGISTRY[entry.kind] = entry
    return entry


def entry(kind: str) -> AnalysisEntry:
    """The entry of ``kind``, or one error that lists the kinds there are."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise IclscopeError(
            f"no analysis of kind {kind!r}", fix=f"use one of {', '.join(sorted(_REGISTRY))}"
        ) from None


def known_entry(kind: str) -> AnalysisEntry | None:
    """The entry of ``kind``, or None for a kind no registered analysis writes (a run made by
    another version, or by a user's own script)."""
    return _REGISTRY.get(kind)


def entries() -> list[AnalysisEntry]:
    """Every registered analysis, in registration order."""
    return list(_REGISTRY.values())


def get(kind: str) -> Any:
    """A new instance of the analysis of ``kind``."""
    return entry(kind).load()()


BUILTIN = (
    AnalysisEntry(
        kind="patch",
        title="Activation patching",
        about="Patch or ablate every head, layer or edge in batched forwards; heatmaps of the "
        "effect on the answer.",
        analysis="circuits.activation_patching.analysis:ActivationPatching",
        command="iclscope run patch",
    ),
    AnalysisEntry(
        kind="circuit",
        title="ICL circuit",
        about="Summarize, semantics merge, retrieve and copy, and the attention-edge "
        "knockouts of the in-context learning circuit.",
        analysis="circuits.icl_circuit.analysis:IclCircuitAnalysis",
        command="iclscope run circuit",
    ),
    AnalysisEntry(
        kind="task-vectors",
        title="Task vectors",
        about="Function vectors, task vectors and soft injection: heads that carry the task "
        "and vectors that replace the demonstrations.",
        analysis="circuits.task_vectors.analysis:TaskVectorsAnalysis",
        page="circuits.task_vectors.page:task_vectors_view",
        command="iclscope run task-vectors",
    ),
    AnalysisEntry(
        kind="eviction",
        title="Eviction",
        about="Accuracy against KV-cache eviction rate for training-free methods and the "
        "attention gate.",
        analysis="circuits.eviction.analysis:EvictionAnalysis",
        page="circuits.eviction.page:eviction_view",
        command="iclscope run eviction",
    ),
    AnalysisEntry(
        kind="block-relevance",
        title="Block relevance",
        about="Which heads' query-to-document attention reveals the relevant document.",
        analysis="circuits.block_relevance.analysis:BlockRelevanceAnalysis",
        page="circuits.block_relevance.page:block_relevance_view",
        command="iclscope run block-relevance",
    ),
    AnalysisEntry(
        kind="atlas",
        title="Atlas",
        about="Every analysis on one model, head by head: role scores side by side, role sets "
        "and the heads they share beyond chance.",
        analysis="circuits.atlas.analysis:AtlasAnalysis",
        page="circuits.atlas.page:atlas_view",
        command="iclscope atlas",
    ),
    AnalysisEntry(
        kind="demo",
        title="Demo",
        about="Shots evaluation, one prompt looked inside, and the ICL circuit, in one report.",
        analysis="circuits.demo.analysis:DemoAnalysis",
        command="iclscope demo",
    ),
)
for _entry in BUILTIN:
    register(_entry)
