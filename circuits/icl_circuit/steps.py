"""The three steps of the circuit, one small dataclass each (paper defaults as fields)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from circuits.icl_circuit.scores import forerunner_heads, label_assignment, retrieval_scores
from circuits.icl_circuit.states import CircuitData, CircuitStates, _split
from interp.errors import IclscopeError
from interp.models import HookedModel
from probes import (
    centroid_accuracy,
    kernel_alignment,
    logistic_probe_accuracy,
    random_reference,
    reference_encoding,
)

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
                    (
                        depth,
                        position,
                        "centroid",
                        centroid_accuracy(X[cal], y[cal], X[test], y[test]),
                    ),
                    (
                        depth,
                        position,
                        "logistic",
                        logistic_probe_accuracy(X, y, self.folds, self.seed),
                    ),
                    (depth, position, "align_text", kernel_alignment(X, ref, self.m)),
                    (depth, position, "align_random", kernel_alignment(X, rand, self.m)),
                ]
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
        heads = pd.DataFrame(
            {
                "layer": np.repeat(np.arange(n_layers), n_heads),
                "head": np.tile(np.arange(n_heads), n_layers),
                "attention": states.a_yq_sq.mean(0).flatten().numpy(),
                "forerunner_head": mask.flatten().numpy(),
            }
        )
        b, k = states.h_y.shape[:2]
        rand = random_reference(b * k, 64, self.seed)
        layers = []
        for layer in range(n_layers):
            label_states = states.h_y[:, :, layer + 1].reshape(b * k, -1).numpy()
            forerunners = states.h_s[:, :, layer].reshape(b * k, -1).numpy()
            layers.append(
                {
                    "layer": layer,
                    "forerunner_heads": int(count[layer]),
                    "copy_magnitude": float(copy[layer]),
                    "cross_alignment": kernel_alignment(label_states, forerunners, self.m),
                    "cross_alignment_random": kernel_alignment(label_states, rand, self.m),
                }
            )
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
                labels.append({"depth": depth, "labels": name, "centroid": acc})
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
        heads = pd.DataFrame(
            {
                "layer": np.repeat(np.arange(n_layers), n_heads),
                "head": np.tile(np.arange(n_heads), n_layers),
                "label_acc": acc.flatten().numpy(),
                "p_gold": p_gold.flatten().numpy(),
                **{k: v.flatten().numpy() for k, v in scores.items()},
            }
        )
        cos = F.cosine_similarity(states.h_s, states.h_sq[:, None], dim=-1)  # (b, k, depth)
        v_acc, v_p = label_assignment(cos.transpose(1, 2), demo, data.batch.label_ids, gold)
        vanilla = pd.DataFrame(
            {"depth": np.arange(len(v_acc)), "label_acc": v_acc.numpy(), "p_gold": v_p.numpy()}
        )
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
        return pd.DataFrame(
            {
                "pc1": points[:, 0],
                "pc2": points[:, 1],
                "prompt": np.repeat(np.arange(b), k),
                "demo": np.tile(np.arange(k), b),
                "label": data.batch.tokens.gather(1, data.batch.y).flatten().numpy(),
                "label_word": [y for ep in data.episodes for _, y in ep.demos],
                "class": [c for cs in data.demo_class for c in cs],
                "layer": layer,
                "head": head,
            }
        )


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
