"""The ICL inference circuit: summarize, semantics merge, retrieve and copy.

Cho et al., "Revisiting In-context Learning Inference Circuit in Large Language Models" (ICLR
2025), restated in METHODS.md section 1. The claim is a three-step circuit:

1. **Summarize**: each input ``x`` is encoded into a linear representation at its forerunner
   token ``s`` (the ``:`` before the label).
2. **Semantics merge**: the label token ``y_i`` copies the representation of its forerunner
   ``s_i`` through *forerunner-token heads*, so label states carry the demonstration's input.
3. **Retrieve and copy**: from the query's forerunner ``s_q`` some heads attend to the label
   tokens of demonstrations similar to the query and copy the label.

Each step is one small dataclass here (its hyper-parameters are its fields, with the paper's
defaults), reading from :class:`CircuitStates`: everything the three steps look at, gathered
from *one* ``run_with_cache`` per batch of prompts. The ablation table (attention-edge
knockouts in layer ranges) is one :class:`~interp.plan.InterventionPlan` that the engine runs
once; no step loops over components calling the model.

The pure computations (head counting, retrieval scores, label assignment) take tensors and are
tested on hand-made attention patterns. Conventions: ``layer`` is an attention layer
``0..L-1``; ``depth`` is a residual-stream index ``0..L`` (0 = embeddings, ``l + 1`` = after
layer ``l``), so ``h[depth]`` is the input of layer ``depth``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.engine import Engine
from interp.errors import IclscopeError
from interp.models import HookedModel
from interp.organism.data import TaskFamily, get_family
from interp.organism.language import Episode
from interp.plan import InterventionPlan, Knockout, PlanRow
from interp.prompts import Annotation, PromptBatch, PromptBuilder, check_pair
from probes import (
    centroid_accuracy,
    kernel_alignment,
    logistic_probe_accuracy,
    random_reference,
    reference_encoding,
)

LAYER_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0), (0.0, 1.0),
)  # fmt: skip
"""Fractions of depth the ablations are applied in, as in the paper's table."""
EDGE_NAMES: tuple[str, ...] = ("xi_to_si", "xq_to_sq", "si_to_yi", "yi_to_sq", "si_to_si")
EdgeGroup = tuple[tuple[int, ...], tuple[int, ...]]
"""``(queries, keys)``: every query position loses its attention to every key position."""


# ---------------------------------------------------------------------------------------------
# Pure computations on attention scores (tested on hand-made patterns)


def attention_at(
    pattern: Float[Tensor, "batch layer head q k"],
    queries: Int[Tensor, " batch"],
    keys: Int[Tensor, "batch n"],
) -> Float[Tensor, "batch layer head n"]:
    """``A[l, h, queries[b], keys[b, i]]`` for every prompt ``b``: each prompt reads its own
    positions, since annotated positions differ between prompts."""
    r = torch.arange(len(queries))[:, None]
    return pattern[r, :, :, queries[:, None], keys].permute(0, 2, 3, 1)


def counts_as_head(
    score: Float[Tensor, " batch *heads"], n_tokens: Float[Tensor, " batch"], factor: float = 5.0
) -> Bool[Tensor, "*heads"]:
    """Heads whose mean score over prompts beats the mean of ``factor / n_tokens``.

    ``factor / n`` is ``factor`` times uniform attention over the ``n`` visible tokens, so a head
    counts when it attends far more than chance. Prompts differ in length, so the threshold is
    averaged like the score (a per-prompt vote would let many barely-passing prompts win).
    """
    return score.mean(0) > (factor / n_tokens.float()).mean()


def forerunner_heads(
    a: Float[Tensor, "batch layer head"], n_tokens: Float[Tensor, " batch"], factor: float = 5.0
) -> tuple[Bool[Tensor, "layer head"], Int[Tensor, " layer"], Float[Tensor, " layer"]]:
    """Step 2 from ``a = A[l, h, y_q, s_q]``: which heads count, how many per layer, and the copy
    magnitude ``mean over prompts of max_h a`` (how strongly the best head copies)."""
    mask = counts_as_head(a, n_tokens, factor)
    return mask, mask.sum(-1), a.max(-1).values.mean(0)


def retrieval_scores(
    a: Float[Tensor, "batch layer head k"],
    correct: Bool[Tensor, "batch k"],
    n_tokens: Float[Tensor, " batch"],
    n_labels: Float[Tensor, " batch"],
    factor: float = 5.0,
) -> dict[str, Tensor]:
    """Step 3 from ``a = A[l, h, s_q, y_i]``, each ``(layer, head)``.

    ``magnitude`` (how much ``s_q`` reads label tokens at all, counts above ``factor / n``) and
    ``correctness`` (attention to correct labels minus attention to wrong ones, counts above
    ``factor / n / |Y|``, the share one label would get by chance), both means over prompts.
    """
    sign = correct.float() * 2 - 1
    magnitude = a.sum(-1)
    correctness = (a * sign[:, None, None, :]).sum(-1)
    return {
        "magnitude": magnitude.mean(0),
        "correctness": correctness.mean(0),
        "magnitude_head": counts_as_head(magnitude, n_tokens, factor),
        "correctness_head": counts_as_head(correctness, n_tokens * n_labels, factor),
    }


def label_assignment(
    weights: Float[Tensor, " batch *units k"],
    demo_labels: Int[Tensor, "batch k"],
    candidates: Sequence[Sequence[int]],
    gold: Int[Tensor, " batch"],
) -> tuple[Float[Tensor, "*units"], Float[Tensor, "*units"]]:
    """Accuracy and mean ``p(gold)`` of ``p(y) ∝ Σ_{i: label_i = y} weights_i``, per unit.

    A unit is a head (weights = attention from ``s_q`` to each ``y_i``) or a layer (the vanilla
    baseline, weights = ``cos(h[s_i], h[s_q])``). Labels that no demonstration carries score 0.
    ``p(gold)`` clips negative weights to 0 (a cosine can be negative; a probability cannot) and
    is ``1 / |Y|`` when nothing is left.
    """
    b, k = demo_labels.shape
    units = weights.shape[1:-1]
    w = weights.reshape(b, -1, k).float()
    width = max(len(c) for c in candidates)
    cand = torch.full((b, width), -1, dtype=torch.long)
    for i, c in enumerate(candidates):
        cand[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
    onehot = (demo_labels[:, :, None] == cand[:, None, :]).float()  # (b, k, width)
    scores = torch.einsum("buk,bkc->buc", w, onehot)
    scores = scores.masked_fill((cand < 0)[:, None, :], float("-inf"))
    pred = cand.gather(1, scores.argmax(-1))
    acc = (pred == gold[:, None]).float().mean(0)
    pos = w.clamp(min=0)
    total = torch.einsum("buk,bkc->buc", pos, onehot).sum(-1)
    at_gold = (pos * (demo_labels == gold[:, None]).float()[:, None, :]).sum(-1)
    n_labels = (cand >= 0).sum(-1, keepdim=True).float()
    p_gold = torch.where(total > 0, at_gold / total.clamp(min=1e-12), 1.0 / n_labels)
    return acc.reshape(units), p_gold.mean(0).reshape(units)


def layer_range(n_layers: int, start: float, end: float) -> range:
    """Layers ``[floor(start * L), ceil(end * L))``, at least one layer and inside the model."""
    lo = min(math.floor(start * n_layers), n_layers - 1)
    return range(lo, max(lo + 1, min(math.ceil(end * n_layers), n_layers)))


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
            _, cache = model.run_with_cache(tokens[rows], resid + pattern, mask[rows])
            h = torch.stack([cache[n] for n in resid], 1)  # (b, depth, pos, d)
            p = torch.stack([cache[n] for n in pattern], 1)  # (b, layer, head, q, k)
            r = torch.arange(h.shape[0])
            sq = batch.s_q[rows]
            xq = torch.tensor([a.x_q[1] - 1 for a in batch.annotations[rows]])
            s, y = batch.s[rows], batch.y[rows]
            parts.append({
                "h_sq": h[r, :, sq], "h_xq": h[r, :, xq],
                "h_s": h[r[:, None], :, s], "h_y": h[r[:, None], :, y],
                "a_yq_sq": attention_at(p, sq + 1, sq[:, None])[..., 0],
                "a_sq_y": attention_at(p, sq, y),
            })  # fmt: skip
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


# ---------------------------------------------------------------------------------------------
# The three steps


@dataclass
class Summarize:
    """Step 1: is the query input encoded linearly at its forerunner ``s_q``?

    Per depth: nearest-centroid accuracy of the query's class from ``h[s_q]`` (calibrated on one
    half of the prompts, tested on the other), the same at the last token of ``x_q`` (where the
    input ends, before the summary is written), a cross-validated logistic probe, and kernel
    alignment of ``h[s_q]`` with a reference encoding of the query text and with a random one.

    ``m``: neighbours per item in the alignment [64]. ``folds``: probe folds [5].
    ``reference``: ``(texts, dim, seed) -> (n, dim)`` encoder [TF-IDF + SVD]; ``ref_dim`` [64].
    """

    m: int = 64
    folds: int = 5
    ref_dim: int = 64
    seed: int = 0
    reference: Callable[[Sequence[str], int, int], np.ndarray] = reference_encoding

    def measure(self, states: CircuitStates, data: CircuitData) -> pd.DataFrame:
        y = np.array(data.query_class)
        cal, test = _split(len(y), self.seed)
        ref = self.reference([ep.query for ep in data.episodes], self.ref_dim, self.seed)
        rand = random_reference(len(y), self.ref_dim, self.seed)
        rows = []
        for depth in range(states.h_sq.shape[1]):
            for position, h in (("s_q", states.h_sq[:, depth]), ("x_q", states.h_xq[:, depth])):
                X = h.numpy()
                rows += [
                    (depth, position, "centroid", centroid_accuracy(X[cal], y[cal], X[test],
                                                                    y[test])),
                    (depth, position, "logistic", logistic_probe_accuracy(X, y, self.folds,
                                                                          self.seed)),
                    (depth, position, "align_text", kernel_alignment(X, ref, self.m)),
                    (depth, position, "align_random", kernel_alignment(X, rand, self.m)),
                ]  # fmt: skip
        return pd.DataFrame(rows, columns=["depth", "position", "measure", "value"])


@dataclass
class SemanticsMerge:
    """Step 2: do label tokens absorb their demonstration through forerunner-token heads?

    Per layer ``l``: heads whose ``A[l, h, y_q, s_q]`` beats ``factor / n`` [5], the copy
    magnitude, and kernel alignment between ``h[l+1, y_i]`` and ``h[l, s_i]`` over all
    demonstrations (with a random control). Per depth: centroid accuracy of the demonstration's
    input class from ``h[y_i]`` in prompts with correct labels and with every label wrong; if
    the wrong-label accuracy stays high, the label state carries the input, not the label.
    """

    factor: float = 5.0
    m: int = 64
    seed: int = 0

    def measure(
        self, states: CircuitStates, wrong: CircuitStates, data: CircuitData
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        mask, count, copy = forerunner_heads(states.a_yq_sq, states.n_sq + 1, self.factor)
        n_layers, n_heads = mask.shape
        heads = pd.DataFrame({
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
            "attention": states.a_yq_sq.mean(0).flatten().numpy(),
            "forerunner_head": mask.flatten().numpy(),
        })  # fmt: skip
        b, k = states.h_y.shape[:2]
        rand = random_reference(b * k, 64, self.seed)
        layers = []
        for layer in range(n_layers):
            label_states = states.h_y[:, :, layer + 1].reshape(b * k, -1).numpy()
            forerunners = states.h_s[:, :, layer].reshape(b * k, -1).numpy()
            layers.append({
                "layer": layer, "forerunner_heads": int(count[layer]),
                "copy_magnitude": float(copy[layer]),
                "cross_alignment": kernel_alignment(label_states, forerunners, self.m),
                "cross_alignment_random": kernel_alignment(label_states, rand, self.m),
            })  # fmt: skip
        cal, test = _split(b, self.seed)
        classes = np.array(data.demo_class)
        labels = []
        for depth in range(states.h_y.shape[2]):
            for name, st in (("correct", states), ("wrong", wrong)):
                X = st.h_y[:, :, depth].numpy()
                acc = centroid_accuracy(
                    X[cal].reshape(-1, X.shape[-1]),
                    classes[cal].ravel(),
                    X[test].reshape(-1, X.shape[-1]),
                    classes[test].ravel(),
                )
                labels.append({"depth": depth, "labels": name, "centroid": acc})  # fmt: skip
        return pd.DataFrame(layers), heads, pd.DataFrame(labels)


@dataclass
class RetrieveAndCopy:
    """Step 3: which heads at ``s_q`` retrieve the labels of matching demonstrations?

    Per head: magnitude and correctness of ``A[s_q, y_i]`` (:func:`retrieval_scores`, with the
    ``factor`` [5] thresholds) and label-assignment accuracy and ``p(gold)``
    (:func:`label_assignment`). The vanilla baseline assigns labels by
    ``cos(h[depth, s_i], h[depth, s_q])`` per depth instead of attention. For the best head the
    retrieval subspace: label states (normed as the layer's attention sees them) mapped by
    ``W_Qᵀ W_K``, i.e. the direction a query must point to attend to that label, then PCA to 2-D.
    RoPE is ignored in this view: it rotates by relative position, and the subspace asks what
    the content of a label token offers the query, not where it sits.
    """

    factor: float = 5.0

    def measure(
        self, model: HookedModel, states: CircuitStates, data: CircuitData
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        demo, gold = data.demo_labels, data.gold
        n_labels = torch.tensor([len(c) for c in data.batch.label_ids], dtype=torch.float)
        scores = retrieval_scores(
            states.a_sq_y, demo == gold[:, None], states.n_sq, n_labels, self.factor
        )
        acc, p_gold = label_assignment(states.a_sq_y, demo, data.batch.label_ids, gold)
        n_layers, n_heads = acc.shape
        heads = pd.DataFrame({
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
            "label_acc": acc.flatten().numpy(), "p_gold": p_gold.flatten().numpy(),
            **{k: v.flatten().numpy() for k, v in scores.items()},
        })  # fmt: skip
        cos = F.cosine_similarity(states.h_s, states.h_sq[:, None], dim=-1)  # (b, k, depth)
        v_acc, v_p = label_assignment(cos.transpose(1, 2), demo, data.batch.label_ids, gold)
        vanilla = pd.DataFrame({"depth": np.arange(len(v_acc)), "label_acc": v_acc.numpy(),
                                "p_gold": v_p.numpy()})  # fmt: skip
        best = heads.sort_values(["label_acc", "correctness"], ascending=False).iloc[0]
        subspace = self.subspace(model, states, data, int(best.layer), int(best["head"]))
        return heads, vanilla, subspace

    @torch.no_grad()
    def subspace(
        self, model: HookedModel, states: CircuitStates, data: CircuitData, layer: int, head: int
    ) -> pd.DataFrame:
        """2-D PCA of ``W_Qᵀ W_K norm(h[layer, y_i])`` over all demonstrations."""
        from sklearn.decomposition import PCA

        w_q, w_k, norm = _qk_weights(model, layer, head)
        b, k = states.h_y.shape[:2]
        x = norm(states.h_y[:, :, layer].reshape(b * k, -1).to(w_q.dtype))
        keys = (x @ w_k.T) @ w_q  # (n, d_model): W_Qᵀ W_K x, row by row
        points = PCA(n_components=2).fit_transform(keys.float().numpy())
        return pd.DataFrame({
            "pc1": points[:, 0], "pc2": points[:, 1],
            "prompt": np.repeat(np.arange(b), k), "demo": np.tile(np.arange(k), b),
            "label": data.batch.tokens.gather(1, data.batch.y).flatten().numpy(),
            "label_word": [y for ep in data.episodes for _, y in ep.demos],
            "class": [c for cs in data.demo_class for c in cs],
            "layer": layer, "head": head,
        })  # fmt: skip


def _qk_weights(model: HookedModel, layer: int, head: int) -> tuple[Tensor, Tensor, Callable]:
    """``W_Q``, ``W_K`` (each ``(d_head, d_model)``) of one query head and the norm before
    attention, from the Hugging Face modules (GQA: query head h reads KV head h // group)."""
    cfg, hf = model.cfg, model.hf_model
    d = cfg.d_head
    kv = head // (cfg.n_heads // cfg.n_kv_heads)
    base = hf.base_model
    if hasattr(base, "layers"):  # Llama family: separate projections
        block = base.layers[layer]
        attn = block.self_attn
        w_q = attn.q_proj.weight[head * d : (head + 1) * d]
        return w_q, attn.k_proj.weight[kv * d : (kv + 1) * d], block.input_layernorm
    if hasattr(base, "h"):  # GPT-2: fused Conv1D, weight is (d_model, 3 * d_model)
        block = base.h[layer]
        w = block.attn.c_attn.weight
        w_q = w[:, head * d : (head + 1) * d].T
        w_k = w[:, cfg.d_model + head * d : cfg.d_model + (head + 1) * d].T
        return w_q, w_k, block.ln_1
    raise IclscopeError(
        f"no query/key weights known for architecture {cfg.architecture!r}",
        fix="use a Llama- or GPT-2-style model for the retrieval subspace",
    )


# ---------------------------------------------------------------------------------------------
# The ablation table: one plan, one engine run


@dataclass
class EdgeAblation:
    """Attention-edge knockouts of each circuit step, in each range of layers.

    A row forbids, in every layer of its range, the edges of one kind (see :meth:`edge_groups`);
    ``random`` knocks out as many random causal edges per layer as the largest circuit row of
    that prompt (never the first token, so no query is left with nothing to attend to). Rows
    ``none`` and ``k=0`` (0-shot prompts) give the baselines. Metric: accuracy of the argmax
    over the prompt's candidate labels at ``s_q``.
    """

    ranges: tuple[tuple[float, float], ...] = LAYER_RANGES
    seed: int = 0

    @staticmethod
    def edge_groups(ann: Annotation) -> dict[str, list[EdgeGroup]]:
        """The edges each circuit row removes, per prompt (positions differ between prompts)."""
        x_q = tuple(range(*ann.x_q)) + (ann.s_q,)
        return {
            "xi_to_si": [((s,), tuple(range(a, b))) for s, (a, b) in zip(ann.s, ann.x)],
            "xq_to_sq": [((ann.s_q,), x_q)],
            "si_to_yi": [((y,), (s,)) for s, y in zip(ann.s, ann.y)],
            "yi_to_sq": [((ann.s_q,), tuple(ann.y))],
            "si_to_si": [((s,), tuple(ann.s[: i + 1])) for i, s in enumerate(ann.s)],
        }

    def random_groups(self, ann: Annotation, count: int, prompt: int, layer: int) -> list:
        """``count`` distinct causal edges ``(q, k)``, ``1 <= k <= q``, seeded per prompt and layer
        so every range knocks out the same edges in a shared layer."""
        rng = random.Random(f"{self.seed}:{prompt}:{layer}")
        total = ann.length * (ann.length - 1) // 2
        # edge i in the order (1,1), (2,1), (2,2), (3,1), ...: query q starts at q(q-1)/2
        picks = rng.sample(range(total), min(count, total))
        edges = []
        for i in picks:
            q = (math.isqrt(8 * i + 1) - 1) // 2 + 1
            edges.append(((q,), (i - q * (q - 1) // 2 + 1,)))
        return edges

    def plan(
        self, annotations: Sequence[Annotation], n_layers: int, zero_shot: Sequence[int] = ()
    ) -> InterventionPlan:
        """Every row of every range for ``annotations``' prompts, plus ``k=0`` rows."""
        rows = []
        for prompt, ann in enumerate(annotations):
            groups = self.edge_groups(ann)
            largest = max(sum(len(q) * len(k) for q, k in g) for g in groups.values())
            rows.append(PlanRow(prompt, (), (("edge", "none"), ("range", "all"))))
            for start, end in self.ranges:
                layers = layer_range(n_layers, start, end)
                label = (("range", f"{start:g}-{end:g}"),)
                for name, group in groups.items():
                    knocks = tuple(Knockout(lay, q, k) for lay in layers for q, k in group)
                    rows.append(PlanRow(prompt, knocks, (("edge", name), *label)))
                knocks = tuple(
                    Knockout(lay, q, k)
                    for lay in layers
                    for q, k in self.random_groups(ann, largest, prompt, lay)
                )
                rows.append(PlanRow(prompt, knocks, (("edge", "random"), *label)))
        rows += [PlanRow(p, (), (("edge", "k=0"), ("range", "all"))) for p in zero_shot]
        return InterventionPlan(rows, base="clean")

    def measure(self, model: HookedModel, batch: PromptBatch, n_shot: int) -> pd.DataFrame:
        """Accuracy per edge and range: ``batch`` holds ``n_shot`` k-shot prompts, then 0-shot."""
        plan = self.plan(batch.annotations[:n_shot], model.cfg.n_layers,
                         range(n_shot, len(batch)))  # fmt: skip
        table = Engine(model).run(plan, batch, metric="acc", progress=False)
        acc = table.groupby(["edge", "range"], sort=False).metric.mean()
        rows = []
        for start, end in self.ranges:
            layers = layer_range(model.cfg.n_layers, start, end)
            name = f"{start:g}-{end:g}"
            for edge in (*EDGE_NAMES, "random", "none", "k=0"):
                value = acc.get((edge, name), acc.get((edge, "all"), float("nan")))
                rows.append({"edge": edge, "range": name, "start": start, "end": end,
                             "first_layer": layers[0], "last_layer": layers[-1],
                             "acc": float(value)})  # fmt: skip
        out = pd.DataFrame(rows)
        out["drop"] = float(acc[("none", "all")]) - out.acc
        return out


# ---------------------------------------------------------------------------------------------
# The whole analysis


@dataclass
class IclCircuitResult:
    """Tidy tables, one per view, and the numbers a report leads with."""

    step1: pd.DataFrame
    """depth, position (s_q / x_q), measure (centroid, logistic, align_text, align_random)."""
    step2_layers: pd.DataFrame
    """layer, forerunner_heads, copy_magnitude, cross_alignment, cross_alignment_random."""
    step2_heads: pd.DataFrame
    """layer, head, attention (mean A[y_q, s_q]), forerunner_head."""
    step2_labels: pd.DataFrame
    """depth, labels (correct / wrong), centroid accuracy of the input class from h[y_i]."""
    step3_heads: pd.DataFrame
    """layer, head, label_acc, p_gold, magnitude, correctness and whether each counts."""
    step3_vanilla: pd.DataFrame
    """depth, label_acc, p_gold of the cos(h[s_i], h[s_q]) baseline."""
    subspace: pd.DataFrame
    """pc1, pc2 of the best head's retrieval subspace per demonstration, with its label."""
    ablation: pd.DataFrame
    """edge, range, start, end, first_layer, last_layer, acc, drop (vs none)."""
    seconds: float = 0.0

    def summary(self) -> dict:
        """The headline numbers. ``step1_best_layer``: the depth where the centroid classifier
        at ``s_q`` is most accurate. ``step2_peak_layer``: the layer of largest copy magnitude.
        ``step3_best_head``: ``[layer, head]`` of best label assignment (ties: correctness).
        ``ablation_drop``: per circuit edge, its largest accuracy drop against ``none`` over
        the layer ranges; ``random_drop`` the same for the random control."""
        s1 = self.step1.query("position == 's_q' and measure == 'centroid'")
        best1 = s1.loc[s1.value.idxmax()]
        s2 = self.step2_layers.sort_values(["copy_magnitude", "forerunner_heads"],
                                           ascending=False).iloc[0]  # fmt: skip
        s3 = self.step3_heads.sort_values(["label_acc", "correctness"], ascending=False).iloc[0]
        drops = self.ablation.groupby("edge").drop.max()
        return {
            "step1_best_layer": int(best1.depth),
            "step1_best_centroid_acc": float(best1.value),
            "step2_peak_layer": int(s2.layer),
            "step3_best_head": [int(s3.layer), int(s3["head"])],
            "step3_best_head_label_acc": float(s3.label_acc),
            "ablation_drop": {e: float(drops[e]) for e in EDGE_NAMES},
            "random_drop": float(drops["random"]),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class IclCircuit:
    """The ICL inference circuit on one classification family: ``IclCircuit().run(model)``.

    ``shots`` [4] demonstrations per prompt, ``prompts`` [512] prompts (half calibrate the
    centroid classifiers, half test them), ``chunk`` prompts per cached forward pass.
    """

    shots: int = 4
    prompts: int = 512
    seed: int = 0
    chunk: int = 64
    summarize: Summarize = field(default_factory=Summarize)
    merge: SemanticsMerge = field(default_factory=SemanticsMerge)
    retrieve: RetrieveAndCopy = field(default_factory=RetrieveAndCopy)
    ablation: EdgeAblation = field(default_factory=EdgeAblation)

    def episodes(self, family: TaskFamily, k: int) -> list[Episode]:
        """The same episodes :func:`interp.organism.data.build_family_batch` draws."""
        rng = random.Random(f"{family.name}:{k}:{self.seed}")
        return [family.sample(rng, k) for _ in range(self.prompts)]

    def run(
        self, model: HookedModel, family: str = "sentiment_arbitrary", log=lambda _: None
    ) -> IclCircuitResult:
        fam = get_family(family)
        if fam.kind != "classification":
            raise IclscopeError(
                f"the ICL circuit needs a classification family, not {family!r} ({fam.kind})",
                fix="use sentiment_semantic or sentiment_arbitrary",
            )
        if self.shots < 1 or self.prompts < 4:
            raise IclscopeError(
                f"{self.shots} shots and {self.prompts} prompts are too few for the circuit",
                fix="use at least 1 shot and 4 prompts (the paper uses 4 shots, 512 prompts)",
            )
        start = time.perf_counter()
        builder = model.prompt_builder()
        episodes = self.episodes(fam, self.shots)
        data = CircuitData.build(builder, fam, episodes)
        wrong = CircuitData.build(builder, fam, [wrong_labels(ep) for ep in episodes])
        check_pair(data.batch, wrong.batch)
        log(f"caching {len(episodes)} prompts with correct and with wrong labels")
        states = CircuitStates.collect(model, data.batch, self.chunk)
        wrong_states = CircuitStates.collect(model, wrong.batch, self.chunk)
        log("step 1: summarize")
        step1 = self.summarize.measure(states, data)
        log("step 2: semantics merge")
        s2_layers, s2_heads, s2_labels = self.merge.measure(states, wrong_states, data)
        log("step 3: retrieve and copy")
        s3_heads, s3_vanilla, subspace = self.retrieve.measure(model, states, data)
        zero = self.episodes(fam, 0)
        both = builder.build(fam.template, episodes + zero)
        log("ablations: one plan through the engine")
        ablation = self.ablation.measure(model, both, len(episodes))
        return IclCircuitResult(step1, s2_layers, s2_heads, s2_labels, s3_heads, s3_vanilla,
                                subspace, ablation, time.perf_counter() - start)  # fmt: skip
