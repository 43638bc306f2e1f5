"""The atlas end to end on a tiny model with planted roles: every part run through the one
runner, the planted heads found in two roles whose overlap is then significant, a second atlas
reusing every part (counted), the dry run, and the comparison of two atlases."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pytest
import torch

from interp.cli import main
from interp.runs.store import load_run

TINY = ["--size", "tiny"]


def atlas_cli(capsys, *args: str) -> Path:
    assert main(["atlas", *args]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def planted_atlas(planted_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas_runs")
    assert main(["atlas", "--model", planted_model, *TINY, "--top", "4", "--out", str(out)]) == 0
    (path,) = out.glob("atlas-*")
    return load_run(path)


def test_the_planted_heads_are_previous_token_heads(planted_model, planted_heads):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(planted_model, attn_implementation="eager")
    tokens = torch.randint(5, 200, (2, 300), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        attentions = hf(tokens, output_attentions=True).attentions
    for layer, head in planted_heads:
        previous = attentions[layer][:, head].diagonal(-1, dim1=-2, dim2=-1)
        assert float(previous.min()) > 0.999, (layer, head)
    assert float(attentions[1][:, 0].diagonal(-1, dim1=-2, dim2=-1).mean()) < 0.5


def test_every_part_ran_and_every_score_is_filled(planted_atlas):
    from circuits.atlas.schema import SCORES

    s = planted_atlas.summary
    assert set(s["runs"]) == {"circuit", "task-vectors", "eviction", "block-relevance"}
    assert not any(r["reused"] for r in s["runs"].values())
    heads = planted_atlas.tables["heads"]
    assert len(heads) == s["heads"] == 4 * 8
    assert s["scores_missing"] == []
    for score in SCORES:
        assert heads[score].notna().any(), score
    for kind, r in s["runs"].items():
        part = load_run(r["path"])
        assert part.manifest["kind"] == kind and part.manifest["status"] == "complete"


def test_the_atlas_finds_the_planted_overlap(planted_atlas, planted_heads):
    roles = planted_atlas.tables["roles"]
    heads_of = lambda role: set(  # noqa: E731
        zip(roles[roles.role == role].layer, roles[roles.role == role]["head"])
    )
    assert heads_of("forerunner") == planted_heads
    assert heads_of("snapkv_keeps") == planted_heads
    o = planted_atlas.tables["overlaps"]
    pair = o[(o.role_a == "forerunner") & (o.role_b == "snapkv_keeps")].iloc[0]
    assert pair.shared == 4
    assert pair.p_value == pytest.approx(1 / comb(32, 4), rel=1e-6)
    assert pair.p_adjusted < 0.05
    assert ["forerunner", "snapkv_keeps"] in planted_atlas.summary["significant_pairs"]
    assert pair.p_adjusted == o.p_adjusted.min()
    report = planted_atlas.report
    assert "share 4 heads" in report and "L1H2, L1H3, L2H4, L2H5" in report


def test_a_second_atlas_reuses_every_part(planted_atlas, planted_model, capsys, monkeypatch):
    import circuits.atlas.parts as parts

    started = []
    real = parts.run_analysis
    monkeypatch.setattr(parts, "run_analysis", lambda *a, **k: started.append(a) or real(*a, **k))
    out = planted_atlas.path.parent
    again = load_run(
        atlas_cli(capsys, "--model", planted_model, *TINY, "--top", "3", "--out", str(out))
    )
    assert started == []
    first, second = planted_atlas.summary["runs"], again.summary["runs"]
    assert all(r["reused"] for r in second.values())
    assert {k: r["run_id"] for k, r in first.items()} == {k: r["run_id"] for k, r in second.items()}
    assert again.summary["roles"]["forerunner"]["size"] == 3
    # another seed is another set of prompts: computed again
    atlas_cli(
        capsys,
        "--model",
        planted_model,
        *TINY,
        "--parts",
        "circuit",
        "--seed",
        "1",
        "--out",
        str(out),
    )
    assert len(started) == 1


def test_the_dry_run_says_what_it_reuses_and_writes_nothing(planted_atlas, planted_model, capsys):
    out = planted_atlas.path.parent
    before = sorted(p.name for p in out.iterdir())
    assert main(["atlas", "--model", planted_model, *TINY, "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    for kind in ("circuit", "task-vectors", "eviction", "block-relevance"):
        assert f"{kind} on " in printed
    assert printed.count("reuses ") == 4
    assert sorted(p.name for p in out.iterdir()) == before


def test_two_atlases_compare_by_relative_depth(planted_atlas, capsys, tmp_path):
    other = atlas_cli(
        capsys, "--model", "organism", *TINY, "--parts", "circuit", "--out", str(tmp_path)
    )
    path = atlas_cli(
        capsys, "--compare", str(planted_atlas.path), str(other), "--out", str(tmp_path)
    )
    run = load_run(path)
    assert run.manifest["kind"] == "atlas-compare"
    bands = run.tables["bands"]
    assert set(bands.role) >= {"forerunner", "retrieval"}
    assert "forerunner" in json.dumps(run.summary)


def test_bad_atlas_input_is_refused_before_any_run(tmp_path, capsys):
    for args, said in (
        (["--parts", "circuit,nonsense"], "unknown atlas parts"),
        (["--tasks", "no_such_family"], "no_such_family"),
        (["--size", "huge"], "--size"),
        (["--top", "0"], "--top"),
    ):
        assert main(["atlas", "--model", "organism", *args, "--out", str(tmp_path)]) != 0
        assert said in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_explorer_shows_a_real_atlas_and_links_a_head_to_its_parts(planted_atlas, monkeypatch):
    from streamlit.testing.v1 import AppTest

    import app.explorer

    monkeypatch.setenv("ICLSCOPE_RUNS", str(planted_atlas.path.parent))
    monkeypatch.setenv("ICLSCOPE_STATIC_FIGURES", "0")
    at = AppTest.from_file(app.explorer.__file__, default_timeout=120)
    at.query_params.update({"page": "Runs", "run": planted_atlas.path.name, "head": "L1H2"})
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="atlas_head").value == "L1H2"
    (scores,) = [d.value for d in at.dataframe if d.value.index.name == "score"]
    assert float(scores.loc["forerunner", "value"]) == pytest.approx(1.0, abs=0.01)
    links = "\n".join(m.value for m in at.markdown if "head=L1H2" in m.value)
    for kind, r in planted_atlas.summary["runs"].items():
        assert f"run={r['run_id']}&head=L1H2" in links, kind
