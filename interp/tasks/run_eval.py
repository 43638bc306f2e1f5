"""``iclscope eval``: load a model once, pick the families its tokenizer can build, score them."""

from __future__ import annotations

from collections.abc import Sequence

from interp.tasks.evaluate import evaluate_model
from interp.tasks.suite import TASK_FAMILIES, family_support, get_family


def runnable_families(tokenizer, source: str | None = None) -> list[str]:
    """Families this tokenizer can build (natural ones first), optionally of one source."""
    return [
        name
        for name, fam in TASK_FAMILIES.items()
        if (source is None or fam.source == source) and family_support(fam, tokenizer) is None
    ]


def run_eval(
    model: str,
    families: Sequence[str] | None,
    shots: Sequence[int],
    n: int,
    seed: int,
    quiet: bool = False,
    score: str = "first-token",
) -> dict:
    """Score ``families`` (``None``: every family the tokenizer builds) with a progress bar."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.models import resolve_spec
    from interp.models.gguf_cache import prepend_bos

    folder, _ = resolve_spec(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    names = list(families) if families is not None else runnable_families(tokenizer)
    steps = sum(
        len(shots)
        if get_family(f).kind in ("classification", "function")
        else (4 if get_family(f).kind == "retrieval" else 1)
        for f in names
    )
    with tqdm(total=steps, desc=f"eval {model}", disable=quiet, unit="cell") as bar:

        def advance(what: str) -> None:
            bar.set_postfix_str(what)
            bar.update()

        result = evaluate_model(
            hf,
            tokenizer,
            names,
            shots,
            n,
            seed=seed,
            prepend_bos=prepend_bos(folder),
            progress=advance,
            score=score,
        )
    return {"model": model, **result}
