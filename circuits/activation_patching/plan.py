"""The sweep's plan: which component each row patches, ablates or knocks out.

Building the plan is the whole of the analysis's science before the engine runs it: one row per
component (and prompt), every row described, none run here.
"""

from __future__ import annotations

from dataclasses import replace

from interp.engine.plan import InterventionPlan, Knockout, Patch, PlanRow, Source
from interp.engine.sweeps import head_sweep, resid_sweep
from interp.errors import IclscopeError
from interp.prompts import Annotation

COMPONENTS = ("heads", "resid", "mlp", "edges")


def position_groups(ann: Annotation) -> dict[str, tuple[int, ...]]:
    """Annotated position groups that attention edges run between."""
    x = tuple(p for a, b in ann.x for p in range(a, b))
    return {
        "x_i": x,
        "s_i": tuple(ann.s),
        "y_i": tuple(ann.y),
        "x_q": tuple(range(*ann.x_q)),
        "s_q": (ann.s_q,),
    }


EDGES = [("s_q", "y_i"), ("s_q", "x_q"), ("s_q", "s_i"), ("y_i", "s_i"), ("s_i", "x_i")]


def edge_sweep(n_layers: int, prompts, annotations, base="clean") -> InterventionPlan:
    """Knock out each edge type between position groups, one layer per row. A knockout removes
    something from a run, so it is read against the run it removes it from: the clean one."""
    rows = []
    for prompt in prompts:
        groups = position_groups(annotations[prompt])
        for layer in range(n_layers):
            for q, k in EDGES:
                knock = Knockout(layer, groups[q], groups[k])
                rows.append(PlanRow(prompt, (knock,), (("layer", layer), ("edge", f"{q}->{k}"))))
    return InterventionPlan(rows, base=base)


def build_plan(
    component, cfg, clean, ablation: str | None, per_position: bool = False
) -> InterventionPlan:
    """The component sweep: denoising patches on the corrupted run, or (``ablation`` given,
    and always for ``edges``) ablations on the clean run."""
    # resample reads another prompt's clean run: sweep with "clean", then point each row away
    source: Source = "clean" if ablation in (None, "resample") else ablation  # type: ignore
    base = "clean" if ablation else "corrupted"
    prompts = range(len(clean))
    n_pos = clean.tokens.shape[1]
    if component == "heads":
        plan = head_sweep(cfg, prompts, n_pos if per_position else None, source, base)
    elif component in ("resid", "mlp"):
        hook = "hook_resid_pre" if component == "resid" else "hook_mlp_out"
        plan = resid_sweep(cfg, prompts, n_pos, hook=hook, source=source, base=base)
    elif component == "edges":
        plan = edge_sweep(cfg.n_layers, prompts, clean.annotations)
    else:
        raise IclscopeError(f"unknown component {component!r}", fix=f"use one of {COMPONENTS}")
    if ablation == "resample":  # each prompt reads another prompt's clean run
        rows = [
            PlanRow(
                r.prompt,
                tuple(
                    replace(e, source="resample", source_prompt=(r.prompt + 1) % len(clean))
                    if isinstance(e, Patch)
                    else e
                    for e in r.edits
                ),
                r.labels,
            )
            for r in plan.rows
        ]
        plan = InterventionPlan(rows, base=plan.base)
    return plan
