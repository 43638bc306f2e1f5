"""The code fingerprint changes exactly when the code does: committing code that already ran
keeps it, an edit or a new module changes it, and docs do not count."""

from __future__ import annotations

import subprocess

import pytest

from interp.runs import provenance


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    root = tmp_path / "src"
    (root / "interp").mkdir(parents=True)
    (root / "circuits").mkdir()
    (root / "interp" / "a.py").write_text("A = 1\n")
    (root / "circuits" / "b.py").write_text("B = 1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(provenance, "SOURCE_ROOT", root)

    def measure():
        provenance.code_fingerprint.cache_clear()
        provenance.source_commit.cache_clear()
        return provenance.code_fingerprint(), provenance.source_commit()

    yield root, measure
    provenance.code_fingerprint.cache_clear()
    provenance.source_commit.cache_clear()


def test_the_fingerprint_follows_the_code_not_the_commit(checkout):
    root, measure = checkout
    clean, commit = measure()
    assert clean is not None and not commit.endswith("+")
    (root / "interp" / "a.py").write_text("A = 2\n")
    edited, dirty_commit = measure()
    assert edited != clean and dirty_commit == commit + "+"
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    committed, new_commit = measure()
    assert committed == edited  # the same code, now committed
    assert new_commit != commit and not new_commit.endswith("+")
    (root / "docs.md").write_text("words\n")  # not code
    assert measure()[0] == committed
    (root / "circuits" / "c.py").write_text("C = 1\n")  # a new module is code
    assert measure()[0] != committed


def test_outside_a_checkout_there_is_no_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "SOURCE_ROOT", tmp_path)
    provenance.code_fingerprint.cache_clear()
    provenance.source_commit.cache_clear()
    try:
        assert provenance.code_fingerprint() is None and provenance.source_commit() is None
    finally:
        provenance.code_fingerprint.cache_clear()
        provenance.source_commit.cache_clear()
