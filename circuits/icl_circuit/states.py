"""Everything the three steps read, gathered from one ``run_with_cache`` per batch."""

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
            # no logits: the forward ends at the last layer cached, before the unembedding
            _, cache = model.run_with_cache(tokens[rows], resid + pattern, mask[rows], logits=False)
            h = torch.stack([cache[n] for n in resid], 1)  # (b, depth, pos, d)
            p = torch.stack([cache[n] for n in pattern], 1)  # (b, layer, head, q, k)
            r = torch.arange(h.shape[0])
            sq = batch.s_q[rows]
            xq = torch.tensor([a.x_q[1] - 1 for a in batch.annotations[rows]])
            s, y = batch.s[rows], batch.y[rows]
            parts.append(
                {
                    "h_sq": h[r, :, sq],
                    "h_xq": h[r, :, xq],
                    "h_s": h[r[:, None], :, s],
                    "h_y": h[r[:, None], :, y],
                    "a_yq_sq": attention_at(p, sq + 1, sq[:, None])[..., 0],
                    "a_sq_y": attention_at(p, sq, y),
                }
            )
        fields = {k: torch.cat([part[k] for part in parts]).float() for k in parts[0]}
        visible = torch.arange(mask.shape[1])[None] <= batch.s_q[:, None]
        return cls(**fields, n_sq=(mask.bool() & visible).sum(1).float())


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
