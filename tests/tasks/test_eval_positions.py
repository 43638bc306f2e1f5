"""``iclscope eval`` reads left-padded rows exactly as each prompt alone: on a model with learned
positions (GPT-2), the padded batch's last logits must equal each row's own forward."""

from __future__ import annotations

import torch

from interp.organism.language import Episode
from interp.prompts import FUNCTION_TEMPLATE, PromptBuilder
from interp.tasks.evaluate import last_logits


def test_left_padded_rows_read_as_alone(tiny_dirs, organism_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_dirs["gpt2"]
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    builder = PromptBuilder(tokenizer, padding_side="left", labels="first")
    episodes = [Episode([("a b", "c")] * shots, "d e", "f", labels=()) for shots in (0, 1, 3)]
    batch = builder.build(FUNCTION_TEMPLATE, episodes)
    assert len(set(batch.attention_mask.sum(-1).tolist())) == 3  # three lengths: real padding
    padded = last_logits(hf, batch)
    with torch.no_grad():
        for row in range(len(batch)):
            ids = batch.tokens[row][batch.attention_mask[row].bool()][None]
            alone = hf(input_ids=ids).logits[0, -1]
            torch.testing.assert_close(padded[row], alone, rtol=1e-4, atol=1e-4)
