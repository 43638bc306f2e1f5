"""Two models' ICL atlases side by side: do the same roles sit at the same relative depth, and
do the scores rise and fall with depth the same way?

Models differ in depth (SmolLM2 has 30 layers, Gemma 3 270M has 18), so every comparison is
made along the ``depth`` column of ``heads`` (``layer / (n_layers - 1)``, in [0, 1]), never by
layer number. A role's heads are summarised by the quartiles of their depth; a score is
averaged in equal bins of relative depth per model, and the two profiles are compared with
Spearman's rank correlation over the bins both models fill, since the scores of two models
need not share a scale, only an order.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from itertools import permutations
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from circuits.atlas.schema import ROLES, SCORES
from interp.analysis.base import Result
from interp.errors import IclscopeError
from interp.runs.store import load_run

if TYPE_CHECKING:
    import plotly.graph_objects as go

MIN_BINS = 3
"""The fewest shared bins a rank correlation is computed over: with two, rho is always ±1."""

EXACT_BINS = 8
"""Up to this many shared bins the p-value is exact (all 8! = 40320 orderings); spearmanr's t
approximation gives p = 0 for a perfect rho over 3 bins, where the exact value is 1/3."""

_REQUIRED = {"heads": ("layer", "head", "depth"), "roles": ("role", "layer", "head")}
"""The tables (and their columns) the comparison reads; ``overlaps`` is not needed."""

_QUANTILES = {"depth_min": 0.0, "depth_q25": 0.25, "depth_median": 0.5, "depth_q75": 0.75}
_SHORT_NAMES = {"aie": "AIE", "snapkv_kept": "SnapKV-kept", "band_drop": "band-drop"}
"""Score names as a sentence writes them, where the column name is not already readable."""


@dataclass(frozen=True)
class CompareConfig:
    """How two atlases are compared. ``bins``: equal relative-depth bins a score is averaged
    in (ten keep a bin filled by at least one layer of an 18-layer model); ``alpha``: the
    level a correlation's p-value is called significant at."""

    bins: int = 10
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise IclscopeError(f"bins must be at least 1, not {self.bins}", fix="pass bins=10")
        if not 0 < self.alpha < 1:
            raise IclscopeError(f"alpha must lie in (0, 1), not {self.alpha}", fix="pass 0.05")


@dataclass(frozen=True)
class Atlas:
    """The parts of one atlas run a comparison reads: its model and two tables."""

    model: str
    heads: pd.DataFrame
    roles: pd.DataFrame


def load_atlas(path: str | os.PathLike[str]) -> Atlas:
    """Read an atlas run directory; refuse any other run, or one missing the tables read here
    (an atlas still being written has no tables yet), with what to do about it."""
    run = load_run(path)
    kind = run.manifest.get("kind")
    if kind != "atlas":
        raise IclscopeError(
            f"{path} is a {kind!r} run, not an atlas run",
            fix="pass the run directory an atlas run wrote (its manifest says kind 'atlas')",
        )
    model = run.manifest.get("model")
    if not isinstance(model, str) or not model:
        raise IclscopeError(
            f"{path}/manifest.json names no model", fix="re-run the atlas that made it"
        )
    for name, columns in _REQUIRED.items():
        table = run.tables.get(name)
        if table is None:
            raise IclscopeError(
                f"{path} has no {name}.parquet (status: {run.status})",
                fix="wait for the atlas run to finish, or re-run it",
            )
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise IclscopeError(
                f"{path}/{name}.parquet lacks the columns {', '.join(missing)}",
                fix="re-run the atlas with this iclscope, whose schema has them",
            )
    return Atlas(model=model, heads=run.tables["heads"], roles=run.tables["roles"])


def compare_atlases(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    config: CompareConfig | None = None,
) -> AtlasComparison:
    """Compare the atlas runs at ``a`` and ``b`` (two different models) by relative depth."""
    config = config or CompareConfig()
    atlas_a, atlas_b = load_atlas(a), load_atlas(b)
    if atlas_a.model == atlas_b.model:
        raise IclscopeError(
            f"{a} and {b} are both atlases of {atlas_a.model}",
            fix="pass the atlas runs of two different models",
        )
    return AtlasComparison.build(atlas_a, atlas_b, config)


def present_scores(heads: pd.DataFrame) -> list[str]:
    """The scores of :data:`SCORES` this atlas computed: a column with at least one value (a
    score left out is a column of NaN)."""
    return [s for s in SCORES if s in heads.columns and heads[s].notna().any()]


def role_bands(atlas: Atlas, roles: list[str]) -> pd.DataFrame:
    """One row per role: how many heads it holds and the quartiles of their depth (NaN where
    the role has no heads in this model). A role's head missing from ``heads`` has no depth
    and is not counted."""
    depth = atlas.heads[["layer", "head", "depth"]]
    placed = atlas.roles.merge(depth, on=["layer", "head"], how="inner")
    rows = []
    for role in roles:
        depths = placed.loc[placed.role == role, "depth"].dropna()
        row: dict[str, Any] = {"model": atlas.model, "role": role, "heads": len(depths)}
        for column, q in _QUANTILES.items():
            row[column] = float(depths.quantile(q)) if len(depths) else math.nan
        row["depth_max"] = float(depths.max()) if len(depths) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "role", "heads", *_QUANTILES, "depth_max"])


def depth_bin(depth: pd.Series, bins: int) -> pd.Series:
    """The bin of each relative depth: ``[i/bins, (i+1)/bins)``, depth 1 in the last bin."""
    # the epsilon keeps a depth that lies on an edge (0.6 * 10) out of the bin below it
    index = np.floor(depth.to_numpy(dtype=float) * bins + 1e-9)
    return pd.Series(np.clip(index, 0, bins - 1).astype(int), index=depth.index)


def score_profiles(atlas: Atlas, scores: list[str], bins: int) -> pd.DataFrame:
    """One row per (score, bin): the mean of the heads' scores at that relative depth and how
    many heads gave a value (NaN and 0 where none did)."""
    binned = atlas.heads.assign(bin=depth_bin(atlas.heads["depth"], bins))
    rows = []
    for score in scores:
        by_bin = binned.groupby("bin")[score].agg(["mean", "count"])
        for i in range(bins):
            mean, count = by_bin.loc[i] if i in by_bin.index else (math.nan, 0)
            rows.append(
                {
                    "model": atlas.model,
                    "score": score,
                    "bin": i,
                    "depth": (i + 0.5) / bins,
                    "mean": float(mean),
                    "heads": int(count),
                }
            )
    return pd.DataFrame(rows, columns=["model", "score", "bin", "depth", "mean", "heads"])


def correlate(
    profile_a: pd.Series, profile_b: pd.Series, model_a: str, model_b: str
) -> dict[str, Any]:
    """Spearman's rho between two profiles (bin -> mean) over the bins both fill, or None with
    the reason in ``note`` where it cannot be computed."""
    both = pd.concat([profile_a, profile_b], axis=1, keys=["a", "b"]).dropna()
    out: dict[str, Any] = {"rho": None, "p_value": None, "bins": len(both), "note": ""}
    if len(both) < MIN_BINS:
        verb = "hold" if len(both) > 1 else "holds"
        held = "no bin holds" if not len(both) else f"only {_bins(len(both))} {verb}"
        out["note"] = f"{held} a value in both models ({MIN_BINS} needed)"
        return out
    constant = [m for m, col in ((model_a, "a"), (model_b, "b")) if both[col].nunique() == 1]
    if constant:
        out["note"] = f"the profile is constant in {' and '.join(constant)}"
        return out
    rho, p_value = spearmanr(both["a"], both["b"])
    if len(both) <= EXACT_BINS:
        p_value = exact_p_value(both["a"].to_numpy(), both["b"].to_numpy(), float(rho))
    out["rho"], out["p_value"] = float(rho), float(p_value)
    return out


def exact_p_value(values_a: np.ndarray, values_b: np.ndarray, rho: float) -> float:
    """The two-sided permutation p-value of Spearman's ``rho``: the share of all orderings of
    ``values_b`` whose |rho| reaches the observed one."""
    ranks_a, ranks_b = rankdata(values_a), rankdata(values_b)
    orderings = ranks_b[np.array(list(permutations(range(len(ranks_b)))))]
    centred_a = ranks_a - ranks_a.mean()
    centred = orderings - orderings.mean(axis=1, keepdims=True)
    rhos = centred @ centred_a / (np.linalg.norm(centred, axis=1) * np.linalg.norm(centred_a))
    return float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))  # tolerance: rounding of ties


def _profile(profiles: pd.DataFrame, model: str, score: str) -> pd.Series:
    """One model's mean of one score by bin."""
    rows = profiles[(profiles.model == model) & (profiles.score == score)]
    return rows.set_index("bin")["mean"]


def _bins(count: int) -> str:
    return f"{count} bin" if count == 1 else f"{count} bins"


def _optional(value: float) -> float | None:
    """A number for summary.json, whose JSON has no NaN."""
    return None if value is None or math.isnan(value) else float(value)


def _role_label(role: str) -> str:
    return ROLES[role].label if role in ROLES and ROLES[role].label else f"{role} heads"


def _score_name(score: str) -> str:
    return _SHORT_NAMES.get(score, score.replace("_", " "))


class AtlasComparison(Result):
    """Two atlases compared by relative depth: the tables ``bands``, ``depth_correlation`` and
    ``profiles``, the figures ``bands`` and ``profiles``, and a report in sentences."""

    def __init__(
        self,
        model_a: str,
        model_b: str,
        bands: pd.DataFrame,
        depth_correlation: pd.DataFrame,
        profiles: pd.DataFrame,
        scores: dict[str, dict[str, Any]],
        config: CompareConfig,
    ) -> None:
        self.model_a, self.model_b = model_a, model_b
        self.bands = bands
        self.depth_correlation = depth_correlation
        self.profiles = profiles
        self.scores = scores
        """Every score present in either model: rho, p_value, bins and why rho is missing."""
        self.config = config

    @classmethod
    def build(cls, a: Atlas, b: Atlas, config: CompareConfig) -> AtlasComparison:
        """Compute every table from the two atlases."""
        named = set(a.roles.role) | set(b.roles.role)
        roles = [r for r in ROLES if r in named] + sorted(named - set(ROLES))
        bands = pd.concat([role_bands(a, roles), role_bands(b, roles)], ignore_index=True)
        scores_a, scores_b = present_scores(a.heads), present_scores(b.heads)
        profiles = pd.concat(
            [score_profiles(a, scores_a, config.bins), score_profiles(b, scores_b, config.bins)],
            ignore_index=True,
        )
        scores: dict[str, dict[str, Any]] = {}
        for score in SCORES:
            absent = [m for m, s in ((a.model, scores_a), (b.model, scores_b)) if score not in s]
            if len(absent) == 2:
                continue
            if absent:
                note = f"the score is missing in {absent[0]}"
                scores[score] = {"rho": None, "p_value": None, "bins": 0, "note": note}
                continue
            profile_a, profile_b = (_profile(profiles, m, score) for m in (a.model, b.model))
            scores[score] = correlate(profile_a, profile_b, a.model, b.model)
        in_both = [s for s in scores if s in scores_a and s in scores_b]
        rows = [{"score": s, **scores[s]} for s in in_both]
        correlation = pd.DataFrame(rows, columns=["score", "rho", "p_value", "bins", "note"])
        correlation[["rho", "p_value"]] = correlation[["rho", "p_value"]].astype(float)
        return cls(a.model, b.model, bands, correlation, profiles, scores, config)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "bands": self.bands,
            "depth_correlation": self.depth_correlation,
            "profiles": self.profiles,
        }

    def figures(self) -> dict[str, go.Figure]:
        from circuits.atlas.compare_figures import comparison_figures

        return comparison_figures(self)

    def figure_sections(self) -> dict[str, str]:
        return {"bands": "Where the roles sit", "profiles": "Scores by depth"}

    def summary(self) -> dict[str, Any]:
        roles: dict[str, dict[str, Any]] = {}
        for role, rows in self.bands.groupby("role", sort=False):
            by_model = rows.set_index("model")
            roles[role] = {
                "median_a": _optional(by_model.loc[self.model_a, "depth_median"]),
                "median_b": _optional(by_model.loc[self.model_b, "depth_median"]),
                "heads_a": int(by_model.loc[self.model_a, "heads"]),
                "heads_b": int(by_model.loc[self.model_b, "heads"]),
            }
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "bins": self.config.bins,
            "alpha": self.config.alpha,
            "scores": self.scores,
            "roles": roles,
        }

    def report(self, summary: dict[str, Any]) -> str:
        a, b = summary["model_a"], summary["model_b"]
        lines = [
            f"# The ICL atlases of {a} and {b}, by relative depth",
            "",
            "Depth is relative (0 = first layer, 1 = last), so models with different numbers "
            "of layers line up.",
            "",
            "## Where the roles sit",
            "",
        ]
        lines += [_role_sentence(role, v, a, b) for role, v in summary["roles"].items()]
        if not summary["roles"]:
            lines.append("Neither atlas has any role heads.")
        lines += ["", "## Scores by depth", ""]
        lines.append(
            f"Each score is averaged in {summary['bins']} equal bins of relative depth per "
            "model; the two profiles are ranked against each other over the bins both fill. "
            f"A p-value is exact (every ordering of the bins) for up to {EXACT_BINS} shared "
            "bins and from the t approximation above that; with few bins even a perfect rank "
            "agreement cannot be significant (3 bins: p = 1/3 at best)."
        )
        lines.append("")
        lines += [_score_sentence(s, v, summary["alpha"]) for s, v in summary["scores"].items()]
        if not summary["scores"]:
            lines.append("Neither atlas has any score to compare.")
        return "\n".join(lines) + "\n"


def _role_sentence(role: str, values: dict[str, Any], a: str, b: str) -> str:
    """Where one role's heads sit in both models, in one sentence."""
    label = _role_label(role)
    label = label[0].upper() + label[1:]
    med_a, med_b = values["median_a"], values["median_b"]
    if med_a is None and med_b is None:
        return f"- {label}: none in either model."
    if med_a is None or med_b is None:
        has, lacks, median = (a, b, med_a) if med_b is None else (b, a, med_b)
        return f"- {label} sit at relative depth {median:.2f} (median) in {has}; {lacks} has none."
    gap = abs(med_a - med_b)
    return (
        f"- {label} sit at relative depth {med_a:.2f} (median) in {a} and {med_b:.2f} in {b}, "
        f"{gap:.2f} apart ({values['heads_a']} and {values['heads_b']} heads)."
    )


def _score_sentence(score: str, values: dict[str, Any], alpha: float) -> str:
    """How one score's depth profiles agree, or why that cannot be said, in one sentence."""
    name = _score_name(score)
    name = name[0].upper() + name[1:]
    if values["rho"] is None:
        return f"- {name} profiles by depth cannot be correlated: {values['note']}."
    rho, p_value, bins = values["rho"], values["p_value"], values["bins"]
    sentence = (
        f"- {name} profiles by depth correlate with Spearman rho {rho:.2f} "
        f"(p = {p_value:.2g}, {_bins(bins)})"
    )
    if p_value >= alpha:
        return sentence + f"; this is not significant at the {alpha:g} level."
    return sentence + f", significant at the {alpha:g} level."
