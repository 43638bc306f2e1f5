"""A byte-level BPE tokenizer (as GPT-2 and SmolLM2 use: ``Ġ`` for a leading space, ``Ċ`` for
a newline) behind a tiny model: the demo's figures, tables and report and the reason a family
cannot be built show the text a person reads, never the tokenizer's own alphabet."""

from __future__ import annotations

import pytest
from report_checks import raw_token_strings

from interp.analysis import get, run_analysis
from interp.runs import load_run
from interp.runs.reports import STATIC_ENV
from interp.tokens import has_raw_marks, shown_token


@pytest.fixture(scope="module")
def bpe_model(tmp_path_factory):
    """A 2-layer Llama whose tokenizer is byte-level BPE trained on the organism's words (each
    word one ``Ġword`` token), saved as a Hugging Face folder."""
    import torch
    import transformers
    from tokenizers import ByteLevelBPETokenizer

    from interp.organism.tokenizer import build_tokenizer

    words = [w for w in build_tokenizer().get_vocab() if w.isalnum()]
    lines = [
        f"sentence: {w} sentiment: {w}\nQ: {w}\nA: {w}\n\nID: {w} | CONTENT: {w} | END ID: {w}\n"
        for w in words
    ] * 4
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        lines, vocab_size=1500, min_frequency=1, special_tokens=["<s>", "</s>", "<pad>"]
    )
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    out = tmp_path_factory.mktemp("bpe-llama")
    tok.save_pretrained(str(out))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(str(out))
    return out, tok


def test_the_tokenizer_writes_spaces_as_g(bpe_model):
    _, tok = bpe_model
    pieces = tok.convert_ids_to_tokens(tok(" alpha\n", add_special_tokens=False)["input_ids"])
    assert pieces == ["Ġalpha", "Ċ"]  # what a label showed before
    assert [shown_token(tok.decode([i])) for i in tok(" alpha\n")["input_ids"]] == ["␣alpha", "↵"]


def test_the_demo_shows_text_not_tokenizer_marks(bpe_model, tmp_path, monkeypatch):
    folder, _ = bpe_model
    monkeypatch.setenv(STATIC_ENV, "0")
    analysis = get("demo")
    config = analysis.config_type(n=2, shots=(0, 1), circuit=False)
    path = run_analysis(
        analysis, config, out=tmp_path, model=str(folder), task="demo", log=lambda _: None
    )
    run = load_run(path)
    tokens = run.tables["query_attention"].token
    assert tokens.str.startswith("␣").any(), "a leading space is shown as ␣"
    assert not raw_token_strings(run.figures, run.tables)
    assert not has_raw_marks(run.report) and "␣" in run.report
    ticks = [str(x) for x in run.figures["query_attention"].data[0].x]
    assert any("␣" in t for t in ticks) and not any(has_raw_marks(t) for t in ticks)


def test_a_family_refused_for_its_labels_says_so_in_text(bpe_model):
    from interp.tasks.suite import family_support, get_family

    _, tok = bpe_model
    reason = family_support(get_family("nl_sentiment_natural"), tok)  # English: not one token
    assert reason and "tokens [" in reason, reason
    assert not has_raw_marks(reason) and "␣" in reason, reason
