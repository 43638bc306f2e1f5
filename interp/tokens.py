"""Tokens as a person reads them: the one place that turns a token into display text.

Tokenizers spell their pieces in their own alphabets: byte-level BPE (GPT-2, SmolLM2) writes a
leading space as ``Ġ`` and a newline as ``Ċ``; SentencePiece (Llama, Gemma) writes the space as
``▁`` and a newline as the byte token ``<0x0A>``. A figure, a table or a message shows the text
instead, with the whitespace that matters made visible: ``␣negative`` for the token
``Ġnegative`` (the space is part of the token, and " negative" and "negative" are different
tokens), ``↵`` for a newline, ``⇥`` for a tab.

:func:`token_texts` decodes ids through their tokenizer (exact for every alphabet);
:func:`shown_token` makes one piece displayable, whether it is decoded text or a raw piece read
back from an older run's table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

VISIBLE_SPACE = "\u2423"  # ␣
NEWLINE = "\u21b5"  # ↵
TAB = "\u21e5"  # ⇥
_RAW = {"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t", "<0x0A>": "\n", "<0x09>": "\t", "<0x20>": " "}
_RAW_PATTERN = re.compile("|".join(re.escape(k) for k in sorted(_RAW, key=len, reverse=True)))


def plain_token(token: str) -> str:
    """A piece as the text it stands for: the space, newline and tab markers of byte-level BPE
    and SentencePiece replaced by the characters themselves (decoded text is left as it is)."""
    return _RAW_PATTERN.sub(lambda m: _RAW[m.group(0)], str(token))


def shown_token(token: str) -> str:
    """A piece as a label shows it: plain text, a leading or trailing space as ``␣``, a newline
    as ``↵`` and a tab as ``⇥`` (spaces inside the text stay spaces)."""
    text = plain_token(token).replace("\n", NEWLINE).replace("\t", TAB)
    core = text.strip(" ")
    if not core:
        return VISIBLE_SPACE * len(text)
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" "))
    return VISIBLE_SPACE * lead + core + VISIBLE_SPACE * trail


def shown_tokens(tokens: Iterable[str]) -> list[str]:
    """:func:`shown_token` of each piece."""
    return [shown_token(t) for t in tokens]


def token_texts(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each id as the text it stands for (``" cat"``, not ``"Ġcat"``), decoded one at a time.
    A word-level vocabulary, whose tokens carry no spaces, gets one after each word so that the
    pieces joined read as the prompt."""
    texts = [tokenizer.decode([int(i)]) for i in ids]
    if not any(t.strip() and t != t.strip() for t in texts):  # ("\n" alone does not count)
        texts = [t if t == "\n" else t + " " for t in texts]
    return texts


def token_text(tokenizer, token_id: int) -> str:
    """One id as the text it stands for, as decoding it alone gives it."""
    return tokenizer.decode([int(token_id)])


def shown_pieces(tokenizer, ids: Sequence[int]) -> list[str]:
    """How ``ids`` split into tokens, each shown as a label shows it (``['␣k', 'appa']``)."""
    return [shown_token(token_text(tokenizer, i)) for i in ids]


def has_raw_marks(text: str) -> bool:
    """Whether ``text`` still holds a tokenizer's own space or newline marker (a test's check)."""
    return bool(re.search("[ĠĊĉ▁]", str(text)))
