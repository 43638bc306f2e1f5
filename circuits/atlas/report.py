"""The atlas's result: its tables, figures, summary and report in sentences."""

from __future__ import annotations

import pandas as pd

from circuits.atlas.schema import SCORES, Role
from interp.analysis import Result

ALPHA = 0.05
"""The family-wise level the overlaps are judged at, after Holm's correction."""


class AtlasResult(Result):
    """The atlas of one model: ``heads``, ``roles``, ``overlaps`` and the parts it read."""

    def __init__(self, model, parts, done, heads, roles_table, overlaps, roles: dict[str, Role]):
        self.model, self.parts, self.done = model, parts, done
        self.heads, self.roles_table, self.overlaps, self.roles = (
            heads,
            roles_table,
            overlaps,
            roles,
        )

    def params(self) -> dict:
        return {"part_tasks": {p.kind: p.task for p in self.parts}}

    def tables(self) -> dict[str, pd.DataFrame]:
        parts = pd.DataFrame(
            [
                dict(
                    kind=d.kind, task=p.task, run_id=d.path.name, path=str(d.path), reused=d.reused
                )
                for p, d in zip(self.parts, self.done)
            ]
        )
        return {
            "heads": self.heads,
            "roles": self.roles_table,
            "overlaps": self.overlaps,
            "parts": parts,
        }

    def labels(self) -> dict[str, str]:
        return {name: role.label or name for name, role in self.roles.items()}

    def figures(self) -> dict:
        from circuits.atlas.figures import overlap_upset, role_grid

        labels = self.labels()
        return {
            "role_grid": role_grid(self.heads, self.roles_table, labels),
            "overlap_upset": overlap_upset(self.roles_table, self.overlaps, labels),
        }

    def figure_sections(self) -> dict[str, str]:
        return {"role_grid": "Roles", "overlap_upset": "Shared heads"}

    def summary(self) -> dict:
        m = self.model
        sizes = self.roles_table.groupby("role").size() if len(self.roles_table) else {}
        roles = {
            name: dict(label=role.label or name, rule=role.rule(), size=int(sizes.get(name, 0)))
            for name, role in self.roles.items()
        }
        pairs = [
            dict(
                roles=[r.role_a, r.role_b],
                shared=int(r.shared),
                expected=round(float(r.expected), 3),
                p_value=float(r.p_value),
                p_adjusted=float(r.p_adjusted),
                heads=r.shared_heads,
            )
            for r in self.overlaps.itertuples()
        ]
        return dict(
            model=m.name,
            n_layers=m.n_layers,
            n_heads=m.n_heads,
            heads=m.n_layers * m.n_heads,
            runs={
                d.kind: dict(run_id=d.path.name, path=str(d.path), reused=d.reused, task=p.task)
                for p, d in zip(self.parts, self.done)
            },
            roles=roles,
            overlaps=pairs,
            significant_pairs=[p["roles"] for p in pairs if p["p_adjusted"] < ALPHA],
            scores_missing=[s for s in SCORES if self.heads[s].isna().all()],
        )

    def report(self, summary: dict) -> str:
        from circuits.atlas.overlap import overlap_sentences

        s = summary
        lines = [
            f"# The ICL atlas of {s['model']}",
            "",
            f"{s['heads']} heads ({s['n_layers']} layers of {s['n_heads']}), scored by "
            f"{len(s['runs'])} analyses:",
            "",
        ]
        for kind, r in s["runs"].items():
            how = "reused" if r["reused"] else "run now"
            lines.append(f"- {kind} on `{r['task']}`: run `{r['run_id']}` ({how})")
        if s["scores_missing"]:
            lines += [
                "",
                "Not scored (their analysis was not part of this atlas): "
                + ", ".join(s["scores_missing"])
                + ".",
            ]
        lines += ["", "## Roles", "", "| role | rule | heads |", "|---|---|---|"]
        for r in s["roles"].values():
            lines.append(f"| {r['label']} | {r['rule']} | {r['size']} |")
        lines += ["", "## Shared heads", ""]
        n_pairs = len(s["overlaps"])
        if not n_pairs:
            lines.append("Fewer than two roles have heads, so no overlap can be tested.")
        else:
            lines.append(
                f"Each pair of roles against chance (hypergeometric, one-sided), with Holm's "
                f"correction over the {n_pairs} pairs; significant at {ALPHA} after correction: "
                f"{len(s['significant_pairs'])} of {n_pairs}."
            )
            lines.append("")
            lines += [
                f"- {line}" for line in overlap_sentences(self.overlaps, self.labels(), ALPHA)
            ]
        return "\n".join(lines) + "\n"
