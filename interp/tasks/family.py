"""What a task family is: data plus a template, sampled into episodes."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from interp.organism.language import Episode
from interp.prompts import Template

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
    """``organism`` (the synthetic language) or ``natural`` (English, for real models)."""
