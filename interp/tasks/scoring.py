"""Scoring answers that may be several tokens long: first-token and exact-match accuracy.

``iclscope eval`` has scored the argmax at the query forerunner against the answer's first
token (:func:`interp.tasks.evaluate.accuracy`). That is sound while every answer is one token,
but user task files hold answers such as ``Kabul`` or ``dépendant`` (``' dé' 'pend' 'ant'``),
where a right first token says little: ``Kuala Lumpur`` starts with ``' K'``. The second
score, ``exact``, decodes greedily for the answer's own length in tokens plus a small margin
and compares the normalised text with the normalised answer, as the soft-injection ICL paper
scores its tasks. Generation stops at the first newline because the templates separate
demonstrations with newlines: past it the model writes the next demonstration, not the answer.

The batches are the evaluation ones: left-padded, so every row's next token is read in the
last column and the rows grow together, one column per step, over a shared KV cache.
"""

from __future__ import annotations

import inspect
import re
import unicodedata
from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.prompts import PromptBatch, Template

_WHITESPACE = re.compile(r"\s+")


def normalise_answer(text: str) -> str:
    """The comparable form of an answer or a generation: NFKC, cut at the first line break,
    surrounding whitespace stripped and inner runs of whitespace collapsed to one space.

    NFKC makes a composed ``é`` equal its decomposed form and a no-break space a space, which
    tokenizers and data files spell either way. Case is kept: in Function-Vector tasks such as
    capitalisation the case *is* the answer, so folding it would score a plain copy as right.
    """
    text = unicodedata.normalize("NFKC", text)
    lines = text.splitlines()  # \n, \r\n, \r and the Unicode line and paragraph separators
    first = lines[0] if lines else ""
    return _WHITESPACE.sub(" ", first).strip()


def answer_separator(template: Template) -> str:
    """What a template puts between its last prompt token and the answer (``' '`` for
    ``'Q: {x}\\nA: {y}'``): the prompt ends on the label prefix with trailing whitespace
    dropped (see :mod:`interp.prompts`), so the answer is generated with that whitespace."""
    if template.kind == "ranking":
        return ""  # the prompt ends on 'Final Answer: [' and the id follows it directly
    if template.kind == "retrieval":
        return " "
    mid = template.demo.split("{x}", 1)[1].split("{y}", 1)[0]
    return mid[len(mid.rstrip()) :]


def answer_token_lengths(
    tokenizer,
    answers: Sequence[str],
    separator: str = " ",
    contexts: Sequence[str] | None = None,
) -> list[int]:
    """The number of tokens of each answer as the model would write it after the prompt.

    BPE spells a word differently after a space (``' Paris'`` is one SmolLM2 token, ``'Paris'``
    is another), so each answer is encoded with the ``separator`` that precedes it in the
    prompt (:func:`answer_separator`). With ``contexts`` (the prompts' texts, ``batch.texts``),
    ``context + separator + answer`` is encoded whole and the tokens overlapping the separator
    and answer are counted, so a merge across the boundary is counted as the model sees it.
    """
    if contexts is None:
        enc = tokenizer([separator + a for a in answers], add_special_tokens=False)
        return [len(ids) for ids in enc["input_ids"]]
    if len(contexts) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(contexts)} contexts")
    texts = [c + separator + a for c, a in zip(contexts, answers)]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    lengths = []
    for context, text, offsets in zip(contexts, texts, enc["offset_mapping"]):
        start, end = len(context), len(text)
        lengths.append(sum(1 for a, b in offsets if b > a and a < end and b > start))
    return lengths


def _stop_ids(hf, tokenizer) -> set[int]:
    """End-of-sequence ids of the tokenizer and of the model's generation config (a list for
    instruction-tuned models, whose end-of-turn token also ends a text)."""
    ids: set[int] = set()
    config = getattr(hf, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return ids


def _cache_argument(hf) -> str:
    """The forward's keyword for the KV cache: ``cache`` in recent transformers releases,
    ``past_key_values`` in earlier ones (later ones accept it with a deprecation warning)."""
    return "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"


class _LineEnds:
    """Which token ids contain a line break, decoded once per id (byte-level BPE writes
    ``'\\n'`` as ``'Ċ'``, SentencePiece as ``'<0x0A>'``: decoding covers both)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.known: dict[int, bool] = {}

    def __call__(self, token: int) -> bool:
        if token not in self.known:
            text = self.tokenizer.decode([token], skip_special_tokens=False)
            self.known[token] = "".join(text.splitlines()) != text  # a break was removed
        return self.known[token]


@torch.no_grad()
def _greedy_ids(
    hf,
    tokens: Int[Tensor, "batch pos"],
    mask: Int[Tensor, "batch pos"],
    budgets: Sequence[int],
    stops: set[int],
    line_end: _LineEnds,
) -> list[list[int]]:
    """Greedy token ids of one left-padded chunk, each row cut at its budget, after its first
    line break (kept) or before its end-of-sequence token (dropped).

    Position ids are counted over real tokens only, as ``generate`` does, so a padded row sees
    the positions it would see alone: that matters for absolute position embeddings (GPT-2),
    and keeps rotary models within float noise of an unpadded run. Only the last column's
    logits are computed (``logits_to_keep=1``), as in :func:`interp.tasks.evaluate.last_logits`.
    """
    out: list[list[int]] = [[] for _ in budgets]
    done = [b <= 0 for b in budgets]
    if all(done):
        return out
    real = mask.bool().any(0).nonzero()
    first = int(real[0]) if len(real) else 0
    tokens, mask = tokens[:, first:].to(hf.device), mask[:, first:].to(hf.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    step_ids, cache, cache_argument = tokens, None, _cache_argument(hf)
    for _ in range(max(budgets)):
        result = hf(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{cache_argument: cache},
        )
        cache = result.get("cache")
        cache = result.get("past_key_values") if cache is None else cache
        chosen = result.logits[:, -1].argmax(-1)
        for row, token in enumerate(chosen.tolist()):
            if done[row]:
                continue
            if token in stops:
                done[row] = True
                continue
            out[row].append(token)
            done[row] = line_end(token) or len(out[row]) >= budgets[row]
        if all(done):
            break
        step_ids = chosen[:, None]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
    return out


def greedy_continuations(
    hf,
    batch: PromptBatch,
    max_new_tokens: Sequence[int] | int,
    tokenizer,
    chunk: int = 16,
) -> list[str]:
    """Each prompt's greedy continuation, at most its own ``max_new_tokens`` tokens long.

    Rows are decoded ``chunk`` at a time with a KV cache; a chunk stops as soon as every row
    has written a line break or an end-of-sequence token (or used its budget), since nothing
    after the first line break is scored (:func:`normalise_answer`). Returned text holds the
    line break when one was written and never the end-of-sequence token.
    """
    assert batch.padding_side == "left", "build generation batches with padding_side='left'"
    if isinstance(max_new_tokens, int):
        budgets = [max_new_tokens] * len(batch)
    else:
        budgets = [int(b) for b in max_new_tokens]
        if len(budgets) != len(batch):
            raise ValueError(f"{len(budgets)} budgets for a batch of {len(batch)} prompts")
    stops, line_end = _stop_ids(hf, tokenizer), _LineEnds(tokenizer)
    texts: list[str] = []
    for i in range(0, len(batch), chunk):
        rows = slice(i, i + chunk)
        ids = _greedy_ids(
            hf, batch.tokens[rows], batch.attention_mask[rows], budgets[rows], stops, line_end
        )
        texts += [tokenizer.decode(r, skip_special_tokens=False) for r in ids]
    return texts


def exact_match(
    hf,
    tokenizer,
    batch: PromptBatch,
    answers: Sequence[str],
    margin: int = 3,
    chunk: int = 16,
    separator: str = " ",
) -> list[bool]:
    """Per prompt, whether the greedy continuation, normalised, equals the normalised answer.

    The budget is the answer's length in tokens (as written after the prompt, see
    :func:`answer_token_lengths`) plus ``margin``: enough to write the answer with a different
    split, short enough that a longer wrong answer (``Rome, Italy`` for ``Rome``) is seen
    whole and refused. The ``separator`` (:func:`answer_separator` of the template) is removed
    from the start of the generation before normalising, so a template whose answer follows a
    line break is not cut to nothing.
    """
    if len(answers) != len(batch):
        raise ValueError(f"{len(answers)} answers for a batch of {len(batch)} prompts")
    lengths = answer_token_lengths(tokenizer, answers, separator, contexts=batch.texts)
    budgets = [n + margin for n in lengths]
    generated = greedy_continuations(hf, batch, budgets, tokenizer, chunk)
    matches = []
    for text, answer in zip(generated, answers):
        if separator and text.startswith(separator):
            text = text[len(separator) :]
        matches.append(normalise_answer(text) == normalise_answer(answer))
    return matches


def exact_accuracy(
    hf,
    tokenizer,
    batch: PromptBatch,
    answers: Sequence[str],
    margin: int = 3,
    chunk: int = 16,
    separator: str = " ",
) -> float:
    """Share of prompts whose greedy answer is exactly right (:func:`exact_match`)."""
    matches = exact_match(hf, tokenizer, batch, answers, margin, chunk, separator)
    return sum(matches) / len(matches) if matches else 0.0


def first_token_collisions(
    tokenizer, labels: Sequence[str], prefix: str = " "
) -> dict[int, list[str]]:
    """Labels that share their first token after ``prefix``, grouped by that token id (groups
    of two or more only, labels in the order given).

    First-token scoring cannot tell such labels apart: the argmax over label tokens picks the
    shared id and the score credits whichever label the prompt's answer happens to be. A bare
    space can be the shared token (SmolLM2 spells ``' été'`` as ``' ' 'ét' 'é'``).
    """
    groups: dict[int, list[str]] = {}
    for label in dict.fromkeys(labels):  # a label listed twice does not collide with itself
        ids = tokenizer(prefix + label, add_special_tokens=False)["input_ids"]
        if not ids:
            raise IclscopeError(f"label {label!r} is empty", fix="give every label some text")
        groups.setdefault(ids[0], []).append(label)
    return {token: group for token, group in groups.items() if len(group) > 1}


def refuse_first_token_collisions(
    tokenizer, labels: Sequence[str], prefix: str = " ", what: str = "labels"
) -> None:
    """Raise an :class:`IclscopeError` naming every group of colliding labels and the token
    they share; do nothing when the first tokens tell every label apart."""
    collisions = first_token_collisions(tokenizer, labels, prefix)
    if not collisions:
        return
    shown = "; ".join(
        f"{', '.join(repr(label) for label in group)} all start with {tokenizer.decode([token])!r}"
        for token, group in collisions.items()
    )
    raise IclscopeError(
        f"{what} cannot be scored by their first token: {shown}",
        fix="choose labels whose first tokens differ, or use the exact score, which decodes "
        "whole answers",
    )
