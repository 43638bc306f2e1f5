"""Block relevance's unit of work: one chunk of prompts and its three forward passes, as
:class:`~interp.execution.Work` that a local loop or a Ray worker runs alike, and what one
prompt of a chunk costs in memory (the dry run's estimate)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from circuits.block_relevance.hook import collect_relevance
from interp.models import HookedModel
from interp.prompts import Template
from interp.tasks.suite import get_family

FORWARDS_PER_CHUNK = 3
"""Each chunk's passes: as it is, with a content-free query, under the block-sparse mask."""


def prompt_floats(cfg, n_pos: int) -> int:
    """Floats one prompt of a chunk holds at the peak of its forward passes (they run one after
    another): one forward's live activations (:func:`~interp.engine.batched.row_floats`: the
    residual stream, the MLP, one layer's scores and pattern at heads x pos^2, the logits at
    every position) plus the block-sparse mask (pos^2). The relevance kept per layer is a few
    floats per document, left out."""
    from interp.engine.batched import row_floats

    return row_floats(cfg, n_pos) + n_pos * n_pos


@dataclass
class RelevanceChunks:
    """:class:`BlockRelevance`'s chunks as :class:`~interp.execution.Work`: chunk
    ``index`` is ``chunk`` prompts' three forward passes (:data:`FORWARDS_PER_CHUNK`), each
    chunk built and padded on its own, so a worker's batch is the local loop's. It carries the
    sampled episodes, never the model: a worker loads that by ``model`` (a folder path)."""

    model: str
    backend: str
    family: str
    episodes: list
    rows: int = 2
    chunk: int = 16
    content_free: str = "N/A"
    template: Template | None = None
    """The family's template, carried so that a worker in another process (where a task file
    read by this one is not registered) builds the same prompts."""

    @property
    def key(self):
        return ("hooked", self.model, self.backend)

    def load(self) -> HookedModel:
        from interp.models import load_model

        return load_model(self.model, backend=self.backend)

    def count(self) -> int:
        return -(-len(self.episodes) // self.chunk)

    def batches(self, builder, index: int) -> tuple:
        """Chunk ``index``'s prompts and the same with the content-free query."""
        template = self.template or get_family(self.family).template
        episodes = self.episodes[index * self.chunk : (index + 1) * self.chunk]
        free = [replace(ep, query=self.content_free) for ep in episodes]
        return builder.build(template, episodes), builder.build(template, free)

    @torch.no_grad()
    def __call__(self, model: HookedModel, index: int) -> dict[str, Tensor]:
        batch, cf = self.batches(model.prompt_builder(), index)
        rel, logits = collect_relevance(model, batch, self.rows)
        rel_sp, logits_sp = collect_relevance(model, batch, self.rows, block_sparse=True)
        return {
            "raw": rel,
            "free": collect_relevance(model, cf, self.rows)[0],
            "block_sparse": rel_sp,
            "dec": logits.argmax(-1),
            "sp": logits_sp.argmax(-1),
        }
