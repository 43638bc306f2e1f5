"""``--dry-run`` says how long the run will take, the run takes about that long, and a long
run says so as it starts."""

from __future__ import annotations

import re
import statistics
import time

import pytest

from interp.cli import main

ORGANISM_PATCH = ["run", "patch", "--model", "organism"]
SECONDS = ["--prompts", "16", "--per-position"]
"""A setting the organism runs in a few seconds, most of them in the engine."""


def estimated_seconds(out: str) -> float:
    found = re.search(r"^estimated time: ~([\d.]+) s", out, re.MULTILINE)
    assert found, out
    return float(found.group(1))


@pytest.fixture(autouse=True)
def no_static_figures(monkeypatch):
    """Exporting static figures is not part of the estimate (it is off in the tests)."""
    monkeypatch.setenv("ICLSCOPE_STATIC_FIGURES", "0")


def test_the_dry_runs_time_is_the_runs_within_a_factor_of_2(tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    # like with like: the estimate and the run in this process, after a small dry run has
    # paid the imports that neither of them should count
    assert main([*ORGANISM_PATCH, "--prompts", "1", *out, "--dry-run"]) == 0
    capsys.readouterr()
    estimates, runs = [], []
    # three estimates and three runs taken in turn, compared by their medians: a burst of
    # load from another process then shifts one pair, not the comparison
    for _ in range(3):
        assert main([*ORGANISM_PATCH, *SECONDS, *out, "--dry-run"]) == 0
        estimates.append(estimated_seconds(capsys.readouterr().out))
        assert len(list(tmp_path.iterdir())) == len(runs)  # a dry run writes nothing
        start = time.perf_counter()
        assert main([*ORGANISM_PATCH, *SECONDS, *out]) == 0
        runs.append(time.perf_counter() - start)
        capsys.readouterr()
    estimated, real = statistics.median(estimates), statistics.median(runs)
    assert real / 2 <= estimated <= 2 * real, f"estimated {estimates} s, ran {runs} s"


def test_only_a_long_run_states_its_time_as_it_starts(tmp_path, capsys, monkeypatch):
    from interp.analysis import runner

    args = [*ORGANISM_PATCH, "--prompts", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "estimated time" not in out  # seconds, not worth a line
    memory = [line for line in out.splitlines() if line.startswith("estimate: peak memory")]
    assert memory and "one chunk" in memory[0]  # a line of the log stays one line
    monkeypatch.setattr(runner, "LONG_RUN_SECONDS", 0.0)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert estimated_seconds(out) > 0
    assert out.index("estimated time") < out.index("InterventionPlan")  # before the work


def test_a_dry_run_of_prompt_chunks_is_timed_too(tiny_dirs, tmp_path, capsys):
    """block-relevance runs no engine plan: its chunks are timed on a forward of the largest."""
    args = ["run", "block-relevance", "--model", tiny_dirs["llama"], "--task", "ranking"]
    assert main([*args, "--prompts", "4", "--docs", "5", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert estimated_seconds(out) > 0 and "roughly" in out
    assert not list(tmp_path.iterdir())
