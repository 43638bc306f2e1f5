"""One progress bar per step: ours, without transformers' own bars nested inside."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_run_draws_our_bars_only(tmp_path):
    """transformers' "Loading weights" bar no longer follows our "loading organism" line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ICLSCOPE_STATIC_FIGURES": "0"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    args = ["run", "patch", "--model", "organism", "--prompts", "1", "--out", str(tmp_path)]
    out = subprocess.run(
        [sys.executable, "-m", "interp.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "patching" in out.stderr and "loading organism" in out.stdout + out.stderr
    assert "Loading weights" not in out.stderr


def test_library_bars_come_back_after_the_command():
    from transformers import modeling_gguf_pytorch_utils as gguf_reader
    from transformers.utils import logging as hf_logging

    from interp.cli.progress import library_bars_off, restore_library_bars

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # start from bars on, whatever this environment set
    drawn = gguf_reader.tqdm
    try:
        try:
            library_bars_off(converting=True)
            assert not hf_logging.is_progress_bar_enabled()
            assert gguf_reader.tqdm(range(2)).disable  # the GGUF reader's own bar, silenced
        finally:
            restore_library_bars()
        assert hf_logging.is_progress_bar_enabled() and gguf_reader.tqdm is drawn
    finally:
        if not was_on:
            hf_logging.disable_progress_bar()
