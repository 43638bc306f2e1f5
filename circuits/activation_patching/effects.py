"""A sweep read against its baselines: effects, their normalisation and the ranking.

A patched metric means nothing without the two runs it sits between, so the sweep's plan also
holds the clean and the corrupted run of every prompt
(:func:`~interp.engine.sweeps.with_baselines`) and every table carries them. Components are
read and ranked by their *effect* on the metric (see :mod:`interp.engine.metrics`):

* **denoising** (patching clean into corrupted, the default): the plan runs on the corrupted
  prompts, ``effect = patched - corrupted``, and components are ranked by how far they restore
  the clean answer, largest first;
* **noising** (``--ablation mean|zero|resample`` and the ``edges`` knockouts): the plan runs on
  the clean prompts, ``effect = patched - clean``, and components are ranked by the damage they
  do, largest first.

Which way is "towards clean" is read from the baselines (down for ``kl``, whose clean run is
0; down for ``logit_diff`` too on a model that gets the clean prompts wrong), and from the
metric's convention only where they coincide (:func:`interp.engine.metrics.towards_clean`), so the
ranking always agrees with the normalised effect. The figures show the normalised effect
(1 = the component carries the whole answer), coloured around 0. Where the clean and corrupted
runs coincide the normalised effect is NaN, never ``inf``; the report and the log say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from interp.engine.metrics import baselines_equal, normalized_effect, ranking_score, towards_clean
from interp.engine.plan import InterventionPlan
from interp.engine.sweeps import BASELINE

MEASURES = ["metric", "clean_baseline", "corrupted_baseline", "effect", "normalized_effect"]
"""The value columns of every effect table, after the component's labels."""


@dataclass
class Effects:
    """A sweep read against its baselines: what the tables, figures, summary and report show.

    ``results`` has one row per component and prompt, ``by_component`` the means over
    prompts, both with :data:`MEASURES`; ``baselines`` is the clean and corrupted metric per
    prompt. ``noising``: the plan ran on the clean prompts (ablations, knockouts)."""

    results: pd.DataFrame
    by_component: pd.DataFrame
    baselines: pd.DataFrame
    metric: str
    noising: bool

    @classmethod
    def measure(cls, table: pd.DataFrame, plan: InterventionPlan, metric: str) -> Effects:
        """Read the engine's table of a plan made by
        :func:`~interp.engine.sweeps.with_baselines`."""
        rows, baselines = split_baselines(table, plan)
        noising = plan.base == "clean"
        results = _with_effects(
            rows.assign(
                clean_baseline=baselines.clean.loc[rows.prompt].to_numpy(),
                corrupted_baseline=baselines.corrupted.loc[rows.prompt].to_numpy(),
            ),
            noising,
        )
        keys = [c for c in results.columns if c not in ("prompt", *MEASURES)]
        # the normalised effect of the means, not the mean of per-prompt ratios: one prompt
        # with a small clean-corrupted gap cannot then dominate it
        mean = _with_effects(results.groupby(keys, as_index=False)[MEASURES[:3]].mean(), noising)
        return cls(results, mean, baselines, metric, noising)

    @property
    def clean(self) -> float:
        """The clean run's metric, mean over prompts."""
        return float(self.baselines.clean.mean())

    @property
    def corrupted(self) -> float:
        """The corrupted run's metric, mean over prompts."""
        return float(self.baselines.corrupted.mean())

    @property
    def direction(self) -> float:
        """+1 where clean sits above corrupted on the metric, -1 where below."""
        return towards_clean(self.clean, self.corrupted, self.metric)

    def ranked(self) -> pd.DataFrame:
        """Components by effect, the one that matters most first: the largest move towards
        clean when denoising (restoration), away from clean when noising (damage); see
        :func:`interp.engine.metrics.ranking_score`."""
        score = ranking_score(self.by_component.effect, self.direction, self.noising)
        return self.by_component.iloc[np.argsort(-score, kind="stable")].reset_index(drop=True)

    def ranking_rule(self) -> str:
        """The ranking, in words."""
        up = (self.direction > 0) != self.noising  # which sign of the effect comes first
        if self.noising:
            rule = "damage: effect = patched - clean, away from clean"
        else:
            rule = "restoration: effect = patched - corrupted, towards clean"
        return f"{rule}, {'largest' if up else 'most negative'} effect first"

    def warnings(self) -> list[str]:
        """Where the normalised effect is NaN because the baselines coincide."""
        out = []
        if baselines_equal(self.clean, self.corrupted):
            out.append(
                "the mean clean and corrupted baselines are equal to within 1e-4: the "
                "normalised effect is NaN and the figures show the raw effect"
            )
        flat = baselines_equal(self.baselines.clean, self.baselines.corrupted)
        if flat.any():
            out.append(
                f"{int(flat.sum())} of {len(flat)} prompts have equal clean and corrupted "
                "baselines: their per-prompt normalised effects are NaN"
            )
        return out


def split_baselines(table: pd.DataFrame, plan: InterventionPlan) -> tuple[pd.DataFrame, ...]:
    """The engine's table of ``plan`` (its component rows, then its baseline rows) as the
    component rows and, per prompt, the ``clean`` and ``corrupted`` baselines."""
    n = sum(BASELINE not in dict(r.labels) for r in plan.rows)
    labels = pd.DataFrame([dict(r.labels) for r in plan.rows[:n]])
    # the baseline rows' missing labels made integer columns float; give them their types back
    rows = table.iloc[:n].drop(columns=BASELINE).astype(labels.dtypes.to_dict())
    baselines = table.iloc[n:].pivot(index="prompt", columns=BASELINE, values="metric")
    return rows.reset_index(drop=True), baselines[["clean", "corrupted"]].rename_axis(None, axis=1)


def _with_effects(df: pd.DataFrame, noising: bool) -> pd.DataFrame:
    """``effect`` against the plan's base run and ``normalized_effect``, from the metric and
    the two baseline columns."""
    base = df.clean_baseline if noising else df.corrupted_baseline
    normalized = normalized_effect(df.metric, df.clean_baseline, df.corrupted_baseline, noising)
    return df.assign(effect=df.metric - base, normalized_effect=normalized)
