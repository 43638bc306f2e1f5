"""The atlas as a registered analysis (kind ``atlas``): it composes the others.

Its run runs (or reuses) each part through the one runner, reads one score per head from each
part's tables (:mod:`circuits.atlas.scores`), makes each score a role set by its rule and tests
every pair of role sets for more shared heads than chance (:mod:`circuits.atlas.overlap`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from circuits.atlas.config import AtlasConfig, atlas_parts
from interp.analysis import Analysis
from interp.analysis.base import CostEstimate, Log


@dataclass(frozen=True)
class ModelShape:
    """What the atlas needs of the model itself: its name, size and task suite (the parts load
    the model their own way, so the atlas loads only its config and tokenizer)."""

    name: str
    n_layers: int
    n_heads: int
    suite: str


class AtlasAnalysis(Analysis):
    """Every part's run, the heads table, role sets and their overlaps."""

    kind = "atlas"
    config_type = AtlasConfig
    score = "each part's own scoring (see each part's run)"
    out: Path | None = None
    """Where a dry run looks for runs to reuse (the command line's ``--out``)."""

    def check(self, model: str, task: str, config: AtlasConfig) -> None:
        from interp.tasks.suite import get_family

        config.check()
        for name in config.tasks or ():
            get_family(name)  # an unknown family is refused before any run starts

    def load(self, model: str, config: AtlasConfig) -> ModelShape:
        from transformers import AutoConfig, AutoTokenizer

        from interp.models import resolve_spec
        from interp.models.interface import ModelConfig
        from interp.tasks.suite import own_suite

        folder, _ = resolve_spec(model)
        cfg = ModelConfig.from_hf(model, AutoConfig.from_pretrained(folder))
        suite = own_suite(AutoTokenizer.from_pretrained(folder))
        return ModelShape(model, cfg.n_layers, cfg.n_heads, suite)

    def estimate(self, model, task, config: AtlasConfig, workers=1, loaded=None):
        from circuits.atlas.estimate import atlas_estimate

        shape = loaded if loaded is not None else self.load(model, config)
        running = self.run_dir is not None  # each part estimates itself as it starts
        out = self.run_dir.parent if running else self.out
        parts = atlas_parts(config, shape.suite)
        return atlas_estimate(model, parts, out, workers, timed=not running)

    def run(self, model: ModelShape, task: str, config: AtlasConfig, executor, *, log: Log = print):
        import sys

        from circuits.atlas.overlap import role_overlaps, role_sets
        from circuits.atlas.parts import run_parts
        from circuits.atlas.report import AtlasResult
        from circuits.atlas.schema import ROLES
        from circuits.atlas.scores import head_scores
        from interp.runs.store import load_run

        parts = atlas_parts(config, model.suite)
        done = run_parts(
            parts, model.name, self.run_dir.parent, executor, log, command=list(sys.argv)
        )
        runs = {p.kind: load_run(p.path) for p in done}
        heads = head_scores(runs, model.n_layers, model.n_heads)
        roles = {
            name: replace(role, top=config.top) if role.top is not None else role
            for name, role in ROLES.items()
        }
        roles_table = role_sets(heads, roles)
        overlaps = role_overlaps(roles_table, len(heads))
        return AtlasResult(model, parts, done, heads, roles_table, overlaps, roles)


__all__ = ["AtlasAnalysis", "AtlasConfig", "CostEstimate", "ModelShape"]
