"""The organism language's task families: one source of families, beside the natural-language
suite (:mod:`interp.tasks.natural`), that :mod:`interp.tasks.suite` collects by name."""

from __future__ import annotations

from interp.organism import language as lang
from interp.prompts import CIRCUIT_TEMPLATE, FUNCTION_TEMPLATE, KV_TEMPLATE, RANKING_TEMPLATE
from interp.tasks.family import TaskFamily


def _families() -> dict[str, TaskFamily]:
    fams = [
        TaskFamily(
            "sentiment_semantic",
            "classification",
            CIRCUIT_TEMPLATE,
            lang.CLASS_NAMES,
            lambda rng, k: lang.sample_classification(rng, k, arbitrary=False),
            "classify a multi-word input into its latent class, labels are the class names",
        ),
        TaskFamily(
            "sentiment_arbitrary",
            "classification",
            CIRCUIT_TEMPLATE,
            lang.ARBITRARY_LABELS,
            lambda rng, k: lang.sample_classification(rng, k, arbitrary=True),
            "as sentiment_semantic, but each prompt assigns random label words to its classes",
        ),
    ]
    for op in lang.FUNCTION_OPS:
        for pos in lang.FUNCTION_POSITIONS:
            fams.append(
                TaskFamily(
                    f"fn_{op}_{pos}",
                    "function",
                    FUNCTION_TEMPLATE,
                    (),
                    lambda rng, k, op=op, pos=pos: lang.sample_function(rng, k, op, pos),
                    f"answer the {op} of the {pos} of three words",
                )
            )
    fams += [
        TaskFamily(
            "ranking",
            "ranking",
            RANKING_TEMPLATE,
            lang.NUMBER_WORDS,
            lambda rng, k: lang.sample_ranking(rng, k),
            "name the ID of the one document that contains the query word",
            default_k=10,
        ),
        TaskFamily(
            "kv_retrieval",
            "retrieval",
            KV_TEMPLATE,
            (),
            lambda rng, k: lang.sample_kv(rng, k),
            "recall the value of a key from a long list of key: value lines",
            default_k=64,
        ),
    ]
    return {f.name: f for f in fams}


ORGANISM_FAMILIES: dict[str, TaskFamily] = _families()
"""The organism language's families; :mod:`interp.tasks.suite` joins them with the rest."""
