"""Few-shot templates: how a demonstration is written, and where its roles are.

Kept apart from :mod:`interp.prompts` (which tokenizes, and imports torch) so that reading and
checking a task file, which needs its template, stays quick and never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interp.errors import IclscopeError


@dataclass(frozen=True)
class Template:
    """A few-shot template. ``demo`` holds ``{x}`` and ``{y}``; the query is the demo cut just
    before ``{y}`` (trailing spaces dropped), so the prompt ends on the forerunner token."""

    name: str
    demo: str
    kind: Literal["classification", "function", "ranking", "retrieval", "custom"] = "custom"
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.kind in ("ranking", "retrieval"):
            return
        for slot in ("{x}", "{y}"):
            if self.demo.count(slot) != 1:
                raise IclscopeError(
                    f"template {self.name!r} must contain {slot} exactly once: {self.demo!r}",
                    fix="write the demonstration format with one {x} and one {y}, "
                    "e.g. 'sentence: {x} sentiment: {y}\\n'",
                )
        if self.demo.index("{x}") > self.demo.index("{y}"):
            raise IclscopeError(
                f"template {self.name!r} puts {{y}} before {{x}}: a prompt ends on the query's "
                "label prefix, so the label must come after the input",
                fix="write the input first, e.g. 'review: {x} stars: {y}'",
            )
        between = self.demo[self.demo.index("{x}") + 3 : self.demo.index("{y}")]
        if not between.strip():
            raise IclscopeError(
                f"template {self.name!r} has no label prefix between {{x}} and {{y}}, so its "
                "forerunner token cannot be located",
                fix="put a prefix such as ' sentiment:' between {x} and {y}",
            )


CIRCUIT_TEMPLATE = Template("circuit", "sentence: {x} sentiment: {y}\n", "classification")
FUNCTION_TEMPLATE = Template("function", "Q: {x}\nA: {y}\n\n", "function")
RANKING_TEMPLATE = Template("ranking", "ID: {i} | CONTENT: {x} | END ID: {i}\n", "ranking")
KV_TEMPLATE = Template("kv", "{k}: {v}\n", "retrieval")
