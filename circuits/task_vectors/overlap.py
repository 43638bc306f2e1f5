"""Do the heads that carry the task (top AIE) overlap the ICL circuit's retrieval heads?

Two lines of work name "the heads that matter for ICL" with different measurements: the function
vector paper ranks heads by their average indirect effect on shuffled-label prompts, the ICL
circuit by how well a head's step-3 attention assigns the gold label. :func:`circuit_heads`
measures the second on the same model, and :func:`overlap` counts the heads both name against
what two random sets of those sizes would share.
"""

from __future__ import annotations

import random

from interp.models import HookedModel
from interp.tasks.suite import default_family, get_family


def circuit_heads(model: HookedModel, prompts: int = 64, k: int = 10, seed: int = 0) -> dict:
    """The ICL circuit's step-3 retrieval heads on this model: the top ``k`` by label assignment
    accuracy (ties: correctness), from ``prompts`` classification prompts."""
    from circuits.icl_circuit import CircuitData, CircuitStates, RetrieveAndCopy

    family = default_family(model.tokenizer, "nl_sentiment_natural", "sentiment_arbitrary")
    fam = get_family(family)
    rng = random.Random(f"{family}:4:{seed}")
    episodes = [fam.sample(rng, 4) for _ in range(prompts)]
    data = CircuitData.build(model.prompt_builder(), fam, episodes)
    states = CircuitStates.collect(model, data.batch, chunk=16)
    heads, _, _ = RetrieveAndCopy().measure(model, states, data)
    top = heads.sort_values(["label_acc", "correctness"], ascending=False).head(k)
    return {
        "family": family,
        "prompts": prompts,
        "heads": [[int(r.layer), int(r.head)] for r in top.itertuples()],
        "label_acc": [round(float(a), 4) for a in top.label_acc],
    }


def overlap(aie_heads: list[tuple[int, int]], circuit: dict, n_heads_total: int) -> dict:
    """How many top AIE heads are also circuit step-3 heads, against chance (k1 k2 / N)."""
    a = {tuple(h) for h in aie_heads}
    c = {tuple(h) for h in circuit["heads"]}
    shared = sorted(a & c)
    return {
        **circuit,
        "aie_heads": [list(h) for h in aie_heads],
        "shared": [list(h) for h in shared],
        "overlap": len(shared),
        "chance": round(len(a) * len(c) / n_heads_total, 3),
    }
