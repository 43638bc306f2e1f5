"""The ICL inference circuit: summarize, semantics merge, retrieve and copy.

Cho et al., "Revisiting In-context Learning Inference Circuit in Large Language Models" (ICLR
2025), restated in ``docs/analyses/icl-circuit.md``. The claim is a three-step circuit:

1. **Summarize**: each input ``x`` is encoded into a linear representation at its forerunner
   token ``s`` (the ``:`` before the label).
2. **Semantics merge**: the label token ``y_i`` copies the representation of its forerunner
   ``s_i`` through *forerunner-token heads*, so label states carry the demonstration's input.
3. **Retrieve and copy**: from the query's forerunner ``s_q`` some heads attend to the label
   tokens of demonstrations similar to the query and copy the label.

Each step is one small dataclass here (its hyper-parameters are its fields, with the paper's
defaults), reading from :class:`CircuitStates`: everything the three steps look at, gathered
from *one* forward pass per batch of prompts. The ablation table (attention-edge
knockouts in layer ranges) is one :class:`~interp.engine.plan.InterventionPlan` that the
engine runs once; no step loops over components calling the model.

The pure computations (head counting, retrieval scores, label assignment) take tensors and are
tested on hand-made attention patterns. Conventions: ``layer`` is an attention layer
``0..L-1``; ``depth`` is a residual-stream index ``0..L`` (0 = embeddings, ``l + 1`` = after
layer ``l``), so ``h[depth]`` is the input of layer ``depth``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import pandas as pd

from circuits.icl_circuit.ablation import EdgeAblation, random_control
from circuits.icl_circuit.scores import (
    EDGE_NAMES,
    LAYER_RANGES,
    EdgeGroup,
    attention_at,
    counts_as_head,
    forerunner_heads,
    label_assignment,
    layer_range,
    retrieval_scores,
)
from circuits.icl_circuit.states import CircuitData, CircuitStates, wrong_labels
from circuits.icl_circuit.steps import RetrieveAndCopy, SemanticsMerge, Summarize
from interp.errors import IclscopeError
from interp.models import HookedModel
from interp.organism.language import Episode
from interp.prompts import check_pair
from interp.stats import wilson_ci
from interp.tasks.family import TaskFamily
from interp.tasks.suite import get_family, label_mode

__all__ = [
    "CircuitData",
    "CircuitStates",
    "EDGE_NAMES",
    "EdgeAblation",
    "EdgeGroup",
    "IclCircuit",
    "IclCircuitResult",
    "LAYER_RANGES",
    "RetrieveAndCopy",
    "SemanticsMerge",
    "Summarize",
    "attention_at",
    "counts_as_head",
    "forerunner_heads",
    "label_assignment",
    "layer_range",
    "retrieval_scores",
    "wrong_labels",
]


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
    """edge, range, start, end, first_layer, last_layer, acc, drop (vs none), drop_low,
    drop_high (bootstrap interval of the drop over prompts)."""
    seconds: float = 0.0
    ablation_prompts: int = 0
    ablation_by_prompt: pd.DataFrame = field(default_factory=pd.DataFrame)
    """edge, range, draw (-1 outside the random control), prompt, acc: each prompt's score."""
    prompts: int = 0
    """Prompts of the probes (half calibrate the centroid classifiers, half test them)."""

    def summary(self) -> dict:
        """The headline numbers, each measured number with a 95% interval ``<key>_ci``.

        ``step1_best_layer``: the depth where the centroid classifier at ``s_q`` is most
        accurate, ``step1_best_centroid_acc`` that accuracy on the held-out half (Wilson
        interval). ``step2_peak_layer``: the layer of largest copy magnitude.
        ``step3_best_head``: ``[layer, head]`` of best label assignment (ties: correctness),
        ``step3_best_head_label_acc`` its accuracy over the prompts (Wilson). ``accuracy`` and
        ``accuracy_0shot``: the ablation prompts unablated, with and without demonstrations
        (Wilson). ``ablation_drop``: per circuit edge, its largest accuracy drop against
        ``none`` over the layer ranges, with a bootstrap interval over the ablation prompts
        (the range is chosen again in every resample); ``random_drop`` the same for the random
        control averaged over its draws. ``random_drops``: the largest drop of each random draw;
        ``random_drop_p95`` their 95th percentile; ``above_random``: the edges whose drop's
        lower bound is above it (:func:`interp.stats.beats_control`). Layers and heads are
        picks, not measurements, and have no interval.
        """
        s1 = self.step1.query("position == 's_q' and measure == 'centroid'")
        best1 = s1.loc[s1.value.idxmax()]
        s2 = self.step2_layers.sort_values(
            ["copy_magnitude", "forerunner_heads"], ascending=False
        ).iloc[0]
        s3 = self.step3_heads.sort_values(["label_acc", "correctness"], ascending=False).iloc[0]
        drops = self.ablation.groupby("edge").drop.max()
        n = self.prompts or int(self.subspace.prompt.nunique())
        n_test = n - n // 2
        by = self.ablation_by_prompt
        ranges = [
            f"{a:g}-{b:g}" for a, b in sorted(set(zip(self.ablation.start, self.ablation.end)))
        ]
        ranges = [r for r in ranges if r in set(by["range"])]
        control = random_control(by, ranges)
        out = {
            "step1_best_layer": int(best1.depth),
            "step1_best_centroid_acc": float(best1.value),
            "step1_best_centroid_acc_ci": _pair(_wilson(best1.value, n_test)),
            "step2_peak_layer": int(s2.layer),
            "step3_best_head": [int(s3.layer), int(s3["head"])],
            "step3_best_head_label_acc": float(s3.label_acc),
            "step3_best_head_label_acc_ci": _pair(_wilson(s3.label_acc, n)),
        }
        for key, edge in (("accuracy", "none"), ("accuracy_0shot", "k=0")):
            scores = by[by.edge == edge].acc
            out[key] = float(scores.mean())
            out[f"{key}_ci"] = _pair(wilson_ci(int(round(scores.sum())), len(scores)))
        return out | {
            "ablation_drop": {e: float(drops[e]) for e in EDGE_NAMES},
            "ablation_drop_ci": control["ablation_drop_ci"],
            "random_drop": float(drops["random"]),
            "random_drop_ci": control["random_drop_ci"],
            "random_drops": control["random_drops"],
            "random_drop_p95": control["random_drop_p95"],
            "above_random": control["above_random"],
            "seconds": round(self.seconds, 3),
            "ablation_prompts": self.ablation_prompts,
        }


def _wilson(accuracy: float, n: int) -> tuple[float, float]:
    """Wilson interval of an accuracy measured on ``n`` prompts."""
    return wilson_ci(int(round(float(accuracy) * n)), n)


def _pair(ci: tuple[float, float]) -> list[float]:
    """An interval as summary.json stores it: ``[low, high]``, rounded to 4 places."""
    return [round(float(v), 4) for v in ci]


@dataclass
class IclCircuit:
    """The ICL inference circuit on one classification family: ``IclCircuit().run(model)``.

    ``shots`` [4] demonstrations per prompt, ``prompts`` [512] prompts (half calibrate the
    centroid classifiers, half test them), ``chunk`` prompts per cached forward pass.
    ``ablation_prompts`` [all] caps the prompts of the ablation table, the costly part on a
    real model (77 rows of up to a full forward each per prompt); its first prompts are used.
    """

    shots: int = 4
    prompts: int = 512
    seed: int = 0
    chunk: int = 64
    summarize: Summarize = field(default_factory=Summarize)
    merge: SemanticsMerge = field(default_factory=SemanticsMerge)
    retrieve: RetrieveAndCopy = field(default_factory=RetrieveAndCopy)
    ablation: EdgeAblation = field(default_factory=EdgeAblation)
    ablation_prompts: int | None = None

    def episodes(self, family: TaskFamily, k: int) -> list[Episode]:
        """The same episodes :func:`interp.tasks.suite.build_family_batch` draws."""
        rng = random.Random(f"{family.name}:{k}:{self.seed}")
        return [family.sample(rng, k) for _ in range(self.prompts)]

    def ablation_batch(self, builder, fam: TaskFamily, episodes: list[Episode]):
        """The ablation table's prompts: the first ``ablation_prompts`` k-shot ones, then as
        many 0-shot ones; and how many are k-shot."""
        cap = len(episodes) if self.ablation_prompts is None else self.ablation_prompts
        chosen = episodes[:cap]
        return builder.build(fam.template, chosen + self.episodes(fam, 0)[:cap]), len(chosen)

    def engine_steps(self, model: HookedModel, family: str) -> list:
        """The engine runs of :meth:`run` (only the ablation table), as the dry run estimates
        them (:func:`interp.engine.memory.estimate_steps`): built from prompts alone."""
        fam = get_family(family)
        both, n_shot = self.ablation_batch(
            model.prompt_builder(labels=label_mode(fam)), fam, self.episodes(fam, self.shots)
        )
        plan = self.ablation.batch_plan(both, n_shot, model.cfg.n_layers)
        return [("ablation table", plan, both, None)]

    def run(
        self, model: HookedModel, family: str = "sentiment_arbitrary", log=lambda _: None
    ) -> IclCircuitResult:
        fam = get_family(family)
        if fam.kind != "classification":
            raise IclscopeError(
                f"the ICL circuit needs a classification family, not {family!r} ({fam.kind})",
                fix="use sentiment_semantic or sentiment_arbitrary",
            )
        if self.ablation_prompts is not None and self.ablation_prompts < 1:
            raise IclscopeError(
                f"ablation_prompts {self.ablation_prompts} must be at least 1",
                fix="pass None (all prompts) or a positive count",
            )
        if self.shots < 1 or self.prompts < 4:
            raise IclscopeError(
                f"{self.shots} shots and {self.prompts} prompts are too few for the circuit",
                fix="use at least 1 shot and 4 prompts (the paper uses 4 shots, 512 prompts)",
            )
        start = time.perf_counter()
        builder = model.prompt_builder(labels=label_mode(fam))
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
        both, n_shot = self.ablation_batch(builder, fam, episodes)
        log(f"ablations on {n_shot} prompts: one plan through the engine")
        ablation, by_prompt = self.ablation.measure(model, both, n_shot)
        return IclCircuitResult(
            step1,
            s2_layers,
            s2_heads,
            s2_labels,
            s3_heads,
            s3_vanilla,
            subspace,
            ablation,
            time.perf_counter() - start,
            n_shot,
            by_prompt,
            len(episodes),
        )
