"""Annotated ICL prompts: token ids plus the positions every analysis needs.

A prompt is rendered to text while recording the character span of every slot (each ``x_i``,
``y_i``, the query, each document block), then tokenized once with offsets. Mapping spans to
tokens after tokenization, rather than tokenizing pieces separately, keeps the token sequence
exactly what the model would see for the same text under any tokenizer (BPE merges included).

Positions (all indices into the *padded* row):

* ``x``: per demonstration, the ``[start, end)`` token span of its input;
* ``s``: the forerunner of each demonstration, the last token of the label prefix;
* ``y``: the label token, always ``s + 1``;
* ``x_q`` / ``s_q``: the query's input span and forerunner (the last prompt token);
* ``blocks``: ranking documents or key-value pairs, one span each; ``gold_block`` the relevant one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import IclscopeError
from interp.organism.language import Episode
from interp.templates import (  # noqa: F401  (re-exported: the names prompts always had)
    CIRCUIT_TEMPLATE,
    FUNCTION_TEMPLATE,
    KV_TEMPLATE,
    RANKING_TEMPLATE,
    Template,
)
from interp.tokens import shown_pieces

Span = tuple[int, int]
"""A half-open ``[start, end)`` range of token (or character) indices."""


@dataclass
class Annotation:
    """Token positions of one prompt (see the module docstring)."""

    x: list[Span] = field(default_factory=list)
    s: list[int] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    x_q: Span = (0, 0)
    s_q: int = 0
    blocks: list[Span] = field(default_factory=list)
    gold_block: int = -1
    length: int = 0

    def shifted(self, offset: int) -> Annotation:
        """The same annotation with every position moved right by ``offset`` (left padding)."""

        def sp(span: Span) -> Span:
            return (span[0] + offset, span[1] + offset)

        return replace(
            self,
            x=[sp(v) for v in self.x],
            s=[v + offset for v in self.s],
            y=[v + offset for v in self.y],
            x_q=sp(self.x_q),
            s_q=self.s_q + offset,
            blocks=[sp(v) for v in self.blocks],
        )

    def layout(self) -> tuple:
        """Everything that must match between a clean and a corrupted prompt."""
        return (self.length, self.x, self.s, self.y, self.x_q, self.s_q, self.blocks)


@dataclass
class PromptBatch:
    """A padded batch of annotated prompts, ready for a forward pass."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    annotations: list[Annotation]
    answer_ids: Int[Tensor, " batch"]
    label_ids: list[list[int]]
    """Per prompt, the token ids of its candidate labels (empty when open-ended)."""
    texts: list[str]
    padding_side: Literal["left", "right"] = "right"

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def s_q(self) -> Int[Tensor, " batch"]:
        return torch.tensor([a.s_q for a in self.annotations])

    @property
    def y(self) -> Int[Tensor, "batch k"]:
        return torch.tensor([a.y for a in self.annotations])

    @property
    def s(self) -> Int[Tensor, "batch k"]:
        return torch.tensor([a.s for a in self.annotations])


def _spans_to_tokens(offsets: Sequence[tuple[int, int]], span: Span) -> list[int]:
    """Indices of tokens whose character range overlaps ``span``."""
    return [i for i, (a, b) in enumerate(offsets) if a < span[1] and b > span[0] and b > a]


class _Renderer:
    """Builds one prompt's text while recording the character span of each slot."""

    def __init__(self) -> None:
        self.text = ""

    def add(self, piece: str) -> Span:
        start = len(self.text)
        self.text += piece
        return (start, len(self.text))


def _render(template: Template, ep: Episode) -> tuple[str, dict]:
    r = _Renderer()
    r.add(template.prefix)
    spans: dict = {"x": [], "y": [], "blocks": []}
    if template.kind == "ranking":
        spans["query"] = (r.add("query: "), r.add(ep.query))[1]
        r.add("\n")
        for doc_id, content in ep.docs:
            start = len(r.text)
            r.add(f"ID: {doc_id} | CONTENT: ")
            r.add(content)
            r.add(f" | END ID: {doc_id}\n")
            spans["blocks"].append((start, len(r.text)))
        r.add("Final Answer: [")
        spans["answer_text"] = f"{ep.answer}"
        return r.text, spans
    if template.kind == "retrieval":
        for key, value in ep.docs:
            spans["blocks"].append(r.add(f"{key}: {value}\n"))
        spans["query"] = r.add(ep.query)
        r.add(":")
        spans["answer_text"] = f" {ep.answer}"
        return r.text, spans
    head, tail = template.demo.split("{x}")
    mid, after = tail.split("{y}")
    for x, y in ep.demos:
        r.add(head)
        spans["x"].append(r.add(x))
        r.add(mid)
        spans["y"].append(r.add(y))
        r.add(after)
    r.add(head)
    spans["query"] = r.add(ep.query)
    r.add(mid.rstrip())
    spans["answer_text"] = mid[len(mid.rstrip()) :] + ep.answer
    return r.text, spans


class PromptBuilder:
    """Turns episodes into a :class:`PromptBatch` with one tokenizer.

    ``labels="single"`` refuses a label or answer that is not one token; ``labels="first"``
    scores the first token of a multi-token label instead (a common choice, made explicit).
    """

    def __init__(
        self,
        tokenizer,
        n_ctx: int | None = None,
        prepend_bos: bool = True,
        padding_side: Literal["left", "right"] = "right",
        labels: Literal["single", "first"] = "single",
    ) -> None:
        self.tokenizer = tokenizer
        self.n_ctx = n_ctx
        self.prepend_bos = prepend_bos and tokenizer.bos_token_id is not None
        self.padding_side = padding_side
        self.labels = labels
        self._label_cache: dict[str, int] = {}

    def _encode(self, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], enc["offset_mapping"]

    def _single_token(self, ids: list[int], what: str) -> int:
        if len(ids) == 1 or (ids and self.labels == "first"):
            return ids[0]
        shown = shown_pieces(self.tokenizer, ids)
        raise IclscopeError(
            f"{what} is {len(ids)} tokens {shown}, not one",
            fix="choose single-token labels, or build prompts with labels='first' to score "
            "the first token of each label",
        )

    def _label_id(self, context: str, label: str) -> int:
        """A label's token id as it appears after ``context`` (leading spaces matter in BPE)."""
        key = context + "\0" + label
        if key not in self._label_cache:
            ids, offs = self._encode([context + label])
            tok = _spans_to_tokens(offs[0], (len(context), len(context) + len(label)))
            lead = _spans_to_tokens(offs[0], (0, len(context)))
            if set(tok) & set(lead):
                raise IclscopeError(
                    f"label {label.strip()!r} merges with the token before it, so the "
                    "forerunner cannot be located",
                    fix="put a space or punctuation between the label prefix and the label",
                )
            self._label_cache[key] = self._single_token(
                [ids[0][i] for i in tok], f"label {label.strip()!r}"
            )
        return self._label_cache[key]

    def build(self, template: Template, episodes: Sequence[Episode]) -> PromptBatch:
        if not episodes:
            raise IclscopeError("no episodes to build prompts from", fix="pass one or more")
        rendered = [_render(template, ep) for ep in episodes]
        all_ids, all_offsets = self._encode([text for text, _ in rendered])
        rows, annotations, answers, label_sets = [], [], [], []
        bos = [self.tokenizer.bos_token_id] if self.prepend_bos else []
        for (text, spans), ids, offs, ep in zip(rendered, all_ids, all_offsets, episodes):
            o = len(bos)
            ann = Annotation(length=len(ids) + o)
            for xs, ys in zip(spans["x"], spans["y"]):
                xt, yt = _spans_to_tokens(offs, xs), _spans_to_tokens(offs, ys)
                if not xt or not yt:
                    raise IclscopeError(f"an input or label is empty in prompt {text!r}")
                self._single_token([ids[i] for i in yt], f"label {text[ys[0] : ys[1]]!r}")
                if yt[0] - 1 in xt or yt[0] - 1 < 0:
                    raise IclscopeError(
                        f"template {template.name!r} has no forerunner token between input "
                        "and label",
                        fix="put a label prefix such as ' sentiment:' before {y}",
                    )
                ann.x.append((xt[0] + o, xt[-1] + 1 + o))
                ann.y.append(yt[0] + o)
                ann.s.append(yt[0] - 1 + o)
            ann.blocks = [
                (t[0] + o, t[-1] + 1 + o)
                for t in (_spans_to_tokens(offs, b) for b in spans["blocks"])
            ]
            if template.kind == "ranking":
                ann.gold_block = ep.meta.get("gold", -1)
            elif template.kind == "retrieval":
                ann.gold_block = ep.meta.get("index", -1)
            qt = _spans_to_tokens(offs, spans["query"])
            if not qt:
                raise IclscopeError(
                    f"the query is empty in prompt {text!r}", fix="give every episode a query"
                )
            ann.x_q = (qt[0] + o, qt[-1] + 1 + o)
            ann.s_q = len(ids) - 1 + o
            annotations.append(ann)
            rows.append(bos + list(ids))
            answers.append(self._label_id(text, spans["answer_text"]))
            sep = spans["answer_text"][: len(spans["answer_text"]) - len(ep.answer)]
            label_sets.append([self._label_id(text, sep + lab) for lab in ep.labels])
        return self._pad(rows, annotations, answers, label_sets, [t for t, _ in rendered])

    def _pad(self, rows, annotations, answers, label_sets, texts) -> PromptBatch:
        longest = max(len(r) for r in rows)
        if self.n_ctx is not None and longest > self.n_ctx:
            raise IclscopeError(
                f"a prompt is {longest} tokens, longer than the model's context of {self.n_ctx}",
                fix="use fewer shots or shorter inputs, or a model with a longer context",
            )
        pad_id = self.tokenizer.pad_token_id
        pad_id = pad_id if pad_id is not None else (self.tokenizer.eos_token_id or 0)
        tokens = torch.full((len(rows), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            off = longest - len(row) if self.padding_side == "left" else 0
            tokens[i, off : off + len(row)] = torch.tensor(row)
            mask[i, off : off + len(row)] = 1
            annotations[i] = annotations[i].shifted(off)
        return PromptBatch(
            tokens,
            mask,
            annotations,
            torch.tensor(answers),
            label_sets,
            texts,
            self.padding_side,
        )


def check_pair(clean: PromptBatch, corrupted: PromptBatch) -> None:
    """Refuse clean/corrupted batches whose shapes or annotated positions differ: patching
    position p of one into the other is only meaningful when p means the same in both."""
    if clean.tokens.shape != corrupted.tokens.shape:
        raise IclscopeError(
            f"clean prompts are {tuple(clean.tokens.shape)} tokens but corrupted prompts are "
            f"{tuple(corrupted.tokens.shape)}",
            fix="build both from episodes with the same number of shots and input lengths",
        )
    for i, (a, b) in enumerate(zip(clean.annotations, corrupted.annotations)):
        if a.layout() != b.layout():
            raise IclscopeError(
                f"clean and corrupted prompt {i} have different annotated positions",
                fix="corrupt labels or content word-for-word so every position lines up",
            )


_SLOT = re.compile(r"\{(\w+)\}")


def template_slots(template: Template) -> list[str]:
    """The slot names a template uses, in order (for listings)."""
    return _SLOT.findall(template.demo)


def token_roles(ann: Annotation, length: int) -> list[str]:
    """A role name per token position: ``x_i``, ``s_i``, ``y_i``, ``x_q``, ``s_q``, ``block_d``
    or ``""`` (template text and padding)."""
    roles = [""] * length
    for d, (a, b) in enumerate(ann.blocks):
        roles[a:b] = [f"block_{d}"] * (b - a)
    for i, (a, b) in enumerate(ann.x):
        roles[a:b] = [f"x_{i}"] * (b - a)
    for i, (s, y) in enumerate(zip(ann.s, ann.y)):
        roles[s], roles[y] = f"s_{i}", f"y_{i}"
    if ann.x_q != (0, 0):
        roles[ann.x_q[0] : ann.x_q[1]] = ["x_q"] * (ann.x_q[1] - ann.x_q[0])
    roles[ann.s_q] = "s_q"
    return roles
