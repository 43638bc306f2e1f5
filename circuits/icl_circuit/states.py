"""Everything the three steps read, gathered from one forward pass per batch of prompts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from circuits.icl_circuit.scores import attention_at
from interp.models import HookedModel
from interp.organism.language import Episode
from interp.prompts import PromptBatch, PromptBuilder
from interp.tasks.family import TaskFamily

# ---------------------------------------------------------------------------------------------
# Prompts and the states the steps read


@dataclass
class CircuitData:
    """A batch of classification prompts with the labels the steps score against.

    Classes are the *latent* classes of the inputs: with arbitrary label words (a new word per
    class in every prompt) a label token only means something inside its prompt, while the
    class of an input is what the summarize step can encode before any demonstration is read.
    """

    batch: PromptBatch
    episodes: list[Episode]
    query_class: list[str]
    demo_class: list[list[str]]

    @classmethod
    def build(cls, builder: PromptBuilder, family: TaskFamily, episodes: list[Episode]):
        demo_class = []
        for ep in episodes:
            inverse = {label: c for c, label in ep.meta["label_map"].items()}
            demo_class.append([inverse[y] for _, y in ep.demos])
        batch = builder.build(family.template, episodes)
        return cls(batch, episodes, [ep.meta["class"] for ep in episodes], demo_class)

    @property
    def gold(self) -> Int[Tensor, " batch"]:
        return self.batch.answer_ids

    @property
    def demo_labels(self) -> Int[Tensor, "batch k"]:
        """The label token written after each demonstration, read from the tokens themselves."""
        return self.batch.tokens.gather(1, self.batch.y)


def wrong_labels(ep: Episode) -> Episode:
    """The same episode with every demonstration's label swapped for another class's label
    (a cyclic shift of the label map), so token positions and the query stay identical."""
    names = ep.meta["label_map"]
    classes = list(names)
    shifted = {c: names[classes[(j + 1) % len(classes)]] for j, c in enumerate(classes)}
    inverse = {label: c for c, label in names.items()}
    demos = [(x, shifted[inverse[y]]) for x, y in ep.demos]
    return Episode(demos, ep.query, ep.answer, ep.labels, ep.docs, dict(ep.meta))


@dataclass
class CircuitStates:
    """Everything the three steps read, gathered from one cached pass per batch of prompts.

    The prompts are run with the query's gold label appended (``y_q = s_q + 1``): attention is
    causal, so every state at or before ``s_q`` is the plain prompt's, and the same pass gives
    step 2 the label token's attention to its forerunner.
    """

    h_sq: Float[Tensor, "batch depth d_model"]
    h_xq: Float[Tensor, "batch depth d_model"]
    """At the last token of the query input ``x_q``."""
    h_s: Float[Tensor, "batch k depth d_model"]
    h_y: Float[Tensor, "batch k depth d_model"]
    a_yq_sq: Float[Tensor, "batch layer head"]
    a_sq_y: Float[Tensor, "batch layer head k"]
    n_sq: Float[Tensor, " batch"]
    """Tokens visible from ``s_q`` (padding excluded)."""

    @classmethod
    @torch.no_grad()
    def collect(cls, model: HookedModel, batch: PromptBatch, chunk: int = 64) -> CircuitStates:
        L = model.cfg.n_layers
        resid = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(L)]
        pattern = [f"blocks.{i}.attn.hook_pattern" for i in range(L)]
        for name in resid + pattern:
            model.check_hook(name)
        tokens, mask = _with_answer(batch)
        parts: list[dict[str, Tensor]] = []
        for lo in range(0, len(batch), chunk):
            rows = slice(lo, lo + chunk)
            sq = batch.s_q[rows]
            xq = torch.tensor([a.x_q[1] - 1 for a in batch.annotations[rows]])
            s, y = batch.s[rows], batch.y[rows]
            parts.append(_read_states(model, tokens[rows], mask[rows], sq, xq, s, y))
        fields = {k: torch.cat([part[k] for part in parts]).float() for k in parts[0]}
        visible = torch.arange(mask.shape[1])[None] <= batch.s_q[:, None]
        return cls(**fields, n_sq=(mask.bool() & visible).sum(1).float())


class _StatesRead(Exception):
    """Raised by the last hook of :func:`_read_states` to end the forward pass there."""


def _read_states(
    model: HookedModel, tokens: Tensor, mask: Tensor, sq: Tensor, xq: Tensor, s: Tensor, y: Tensor
) -> dict[str, Tensor]:
    """One forward of a chunk, each hook keeping only the positions the steps read.

    Hooks read the residual stream at ``s_q``, ``x_q``, ``s_i``, ``y_i`` and the attention
    entries of :func:`attention_at` as the forward reaches them, so no layer's whole activation
    or attention pattern is copied or stacked; the last one ends the forward before the
    unembedding (what ``run_with_cache(..., logits=False)`` does, without its full copies)."""
    L = model.cfg.n_layers
    r = torch.arange(len(tokens))
    h: dict[int, dict[str, Tensor]] = {}
    a: dict[int, dict[str, Tensor]] = {}

    def at_resid(depth: int):
        def read(act: Tensor, hook) -> None:
            act = act.detach()
            h[depth] = {
                "h_sq": act[r, sq],
                "h_xq": act[r, xq],
                "h_s": act[r[:, None], s],
                "h_y": act[r[:, None], y],
            }
            if len(h) == L + 1 and len(a) == L:
                raise _StatesRead

        return read

    def at_pattern(layer: int):
        def read(act: Tensor, hook) -> None:
            p = act.detach()[:, None]  # (b, 1 layer, head, q, k)
            a[layer] = {
                "a_yq_sq": attention_at(p, sq + 1, sq[:, None])[..., 0],
                "a_sq_y": attention_at(p, sq, y),
            }
            if len(h) == L + 1 and len(a) == L:
                raise _StatesRead

        return read

    hooks = [("blocks.0.hook_resid_pre", at_resid(0))]
    hooks += [(f"blocks.{i}.hook_resid_post", at_resid(i + 1)) for i in range(L)]
    hooks += [(f"blocks.{i}.attn.hook_pattern", at_pattern(i)) for i in range(L)]
    try:
        model.run_with_hooks(tokens, hooks, mask)
    except _StatesRead:
        pass
    # depth after the prompt axis, or after the demonstration axis for h_s and h_y
    out = {k: torch.stack([h[d][k] for d in range(L + 1)], v.dim() - 1) for k, v in h[0].items()}
    # attention_at puts the layer axis second: (b, layer, head[, n])
    out |= {k: torch.cat([a[layer][k] for layer in range(L)], 1) for k in a[0]}
    return out


def _with_answer(batch: PromptBatch) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Tokens and mask with each prompt's gold label written at ``s_q + 1`` (one column more)."""
    tokens = F.pad(batch.tokens, (0, 1), value=0)  # masked out: any id will do
    mask = F.pad(batch.attention_mask, (0, 1), value=0)
    r = torch.arange(len(batch))
    tokens[r, batch.s_q + 1] = batch.answer_ids
    mask[r, batch.s_q + 1] = 1
    return tokens, mask


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibration and test halves of ``n`` prompts, shuffled reproducibly."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm[: n // 2], perm[n // 2 :]
