"""Shared fixtures: tiny random models of both architectures, built once per session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from interp.models.tiny import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: str(build_tiny_model(root / arch, arch)) for arch in ("gpt2", "llama")}


@pytest.fixture(scope="session")
def organism_tokenizer():
    from interp.organism.tokenizer import build_tokenizer

    return build_tokenizer()
