"""What a task-vector run produces and the pieces it is assembled from: the result's tables
and weights, one soft-injection fit, one task's prompt batches, and the plain accuracy every
method is scored against."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor

from circuits.task_vectors.data import TaskSplit, wilson
from circuits.task_vectors.soft_injection import mean_jaccard, stable_heads
from interp.models import HookedModel
from interp.prompts import PromptBatch


@dataclass
class TaskVectorsResult:
    """Everything the run writes: tidy tables and the learned weights."""

    accuracy: pd.DataFrame  # task, method, acc, lo, hi, n, layer
    aie: pd.DataFrame  # task (or 'mean'), layer, head, aie, aie_std, baseline
    sweeps: pd.DataFrame  # task, method (fv | tv), split (dev | test), layer, acc
    alpha: dict[str, Tensor]  # task (or 'shared') -> (layer, head)
    losses: pd.DataFrame  # task, step, loss
    top_heads: list[tuple[int, int]]
    seconds: dict[str, float] = field(default_factory=dict)
    # task (or 'shared'), fit, lr, seed, main, above_0_9, below_0_1, acc, lo, hi, n
    stability: pd.DataFrame = field(default_factory=pd.DataFrame)
    alpha_fits: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # task -> fit -> alpha
    # task, prompt, layer, head, ie: the AIE before averaging (its intervals resample prompts)
    aie_by_prompt: pd.DataFrame = field(default_factory=pd.DataFrame)
    hits: pd.DataFrame = field(default_factory=pd.DataFrame)  # task, method, prompt, hit (0/1)

    def stable_heads(self, threshold: float = 0.9) -> dict[str, list[tuple[int, int]] | None]:
        """Per task (and 'shared'), the heads above ``threshold`` in every fit (None with a
        single fit: stability was not tested)."""
        return {
            t: stable_heads(list(f.values()), threshold) if len(f) > 1 else None
            for t, f in self.alpha_fits.items()
        }

    def fit_agreement(self, threshold: float = 0.9) -> dict[str, float | None]:
        """Per task, the mean pairwise Jaccard index of the fits' above-``threshold`` sets."""
        return {t: mean_jaccard(list(f.values()), threshold) for t, f in self.alpha_fits.items()}

    def per_task(self) -> dict[str, dict[str, float]]:
        return {
            task: dict(zip(group.method, group.acc.astype(float)))
            for task, group in self.accuracy.groupby("task", sort=False)
        }


@torch.no_grad()
def accuracy(model: HookedModel, batch, chunk: int = 16) -> Tensor:
    """Per prompt, 1 where the unedited model's top token at the last prompt token is the
    answer's first token (the unembedding runs at that token only)."""
    hf = model.plain_model()
    device = next(hf.parameters()).device
    hits = []
    for lo in range(0, len(batch), chunk):
        toks, mask = batch.tokens[lo : lo + chunk], batch.attention_mask[lo : lo + chunk]
        hidden = hf.base_model(input_ids=toks.to(device), attention_mask=mask.to(device))[0]
        last = batch.s_q[lo : lo + chunk].to(device)
        logits = hf.get_output_embeddings()(hidden[torch.arange(len(toks)), last])
        hits.append((logits.argmax(-1).cpu() == batch.answer_ids[lo : lo + chunk]).float())
    return torch.cat(hits)


@dataclass
class AlphaFit:
    """One soft-injection fit: its (lr, seed), alpha, losses and held-out hits per task."""

    lr: float
    seed: int
    alpha: Tensor  # (layer, head)
    losses: list[float]
    hits: dict[str, Tensor]
    seconds: float = 0.0  # training and evaluation

    @property
    def label(self) -> str:
        return fit_label(self.lr, self.seed)


def fit_label(lr: float, seed: int) -> str:
    return f"lr={lr:g} seed={seed}"


@dataclass
class TaskBatches:
    """One task's prompt batches (see :meth:`TaskVectors.batches`)."""

    split: TaskSplit
    test0: PromptBatch
    testk: PromptBatch
    dev0: PromptBatch
    te: PromptBatch
    shuffled: PromptBatch


def _stability_rows(name: str, fits: list[AlphaFit], threshold: float = 0.9) -> list[dict]:
    """One row per fit of one alpha: how many heads it saturates and its held-out accuracy
    (for the shared alpha, over every task's test items pooled)."""
    rows = []
    for k, f in enumerate(fits):
        hits = torch.cat(list(f.hits.values())).float()
        lo, hi = wilson(float(hits.sum()), len(hits))
        rows.append(
            {
                "task": name,
                "fit": f.label,
                "lr": f.lr,
                "seed": f.seed,
                "main": k == 0,
                "above_0_9": int((f.alpha > threshold).sum()),
                "below_0_1": int((f.alpha < 1 - threshold).sum()),
                "acc": float(hits.mean()),
                "lo": lo,
                "hi": hi,
                "n": len(hits),
            }
        )
    return rows


def _sweep_rows(task: str, method: str, split: str, sweep: pd.DataFrame) -> list[dict]:
    acc = sweep.groupby("layer").correct.mean()
    return [
        {"task": task, "method": method, "split": split, "layer": int(layer), "acc": float(a)}
        for layer, a in acc.items()
    ]
