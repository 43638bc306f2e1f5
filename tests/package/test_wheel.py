"""A wheel built from the repository carries the app and the embedded model."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_app_and_organism(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("iclscope-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "app/explorer.py",
        "interp/cli/__init__.py",
        "interp/cli/__main__.py",
        "interp/organism/model/config.json",
        "interp/organism/model/model.safetensors",
        "interp/organism/model/tokenizer.json",
        "interp/organism/model/training_record.json",
        "interp/models/registry.py",
        "interp/tasks/data/functions.json",
        "interp/tasks/data/classification.json",
        "circuits/__init__.py",
        "circuits/icl_circuit/steps.py",
        "probes/centroid.py",
        "interp/kernels/__init__.py",
    ):
        assert required in names, required
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "iclscope = interp.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    assert not any(n.startswith("kernels-") for n in names)  # the distribution is not "kernels"
