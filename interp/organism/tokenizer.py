"""The organism's word-level tokenizer, written as a standard ``tokenizer.json``.

Words are split on spaces; newlines and the punctuation ``: | [ ]`` are tokens of their own,
so the forerunner ``:`` of every template is a single token.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from interp.organism.language import vocabulary

SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n|[:|\[\]]"), behavior="isolated"),
            pre_tokenizers.Split(" ", behavior="removed"),
        ]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **SPECIALS)


def save_tokenizer(out: Path) -> PreTrainedTokenizerFast:
    tok = build_tokenizer()
    tok.save_pretrained(str(out))
    return tok
