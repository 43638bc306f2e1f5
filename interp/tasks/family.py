"""What a task family is: data plus a template, sampled into episodes."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from interp.organism.language import Episode
from interp.templates import Template

Kind = Literal["classification", "function", "ranking", "retrieval"]


@dataclass(frozen=True)
class TaskFamily:
    """A named family of prompts: ``sample(rng, k)`` draws one episode with k demonstrations
    (k is the number of documents for ranking and of key-value pairs for retrieval)."""

    name: str
    kind: Kind
    template: Template
    labels: tuple[str, ...]
    sample: Callable[[random.Random, int], Episode]
    description: str
    default_k: int = 4
    source: str = "organism"
    """``organism`` (the synthetic language), ``natural`` (English, for real models) or
    ``file`` (a researcher's own data, see :mod:`interp.tasks.files`)."""
    origin: Any = None
    """For a ``file`` family, its :class:`~interp.tasks.files.load.TaskOrigin`: path, size,
    SHA-256, columns, split and data-quality counts, as a run's manifest records them."""
    items: Mapping[str, tuple[str, ...]] | None = None
    """For a ``file`` classification family, its query inputs by class (corrupted patching
    prompts draw another class's input from these)."""

    def on_split(self, split: str) -> TaskFamily:
        """The same family drawing its queries from ``split`` (``valid`` to choose layers or
        heads, ``test`` to score). Built-in families have one pool and return themselves."""
        with_split = getattr(self.sample, "with_query_split", None)
        return self if with_split is None else replace(self, sample=with_split(split))
