"""No top-level package of ours takes an import name that another installed distribution owns.

An import name is global: a package of ours that comes first on ``sys.path`` hides the other
distribution's package from everything that imports it. (transformers imports Hugging Face's
``kernels`` package, which an old top-level ``kernels`` of ours once hid.)
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def shipped_top_level_names() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.removesuffix("*") for pattern in patterns}


def test_every_top_level_package_in_the_tree_is_one_we_ship():
    in_tree = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert in_tree == shipped_top_level_names()


def test_no_shipped_package_shadows_another_distribution():
    owners = importlib.metadata.packages_distributions()
    clashes = {
        name: sorted(set(owners.get(name, [])) - {"iclscope"}) for name in shipped_top_level_names()
    }
    assert not any(clashes.values()), f"import names owned by other distributions: {clashes}"


def test_transformers_imports_its_own_hub_kernels_module():
    # the import that broke while a top-level ``kernels`` of ours shadowed Hugging Face's
    from transformers import LlamaConfig

    assert LlamaConfig.model_type == "llama"
