"""Every notebook runs top to bottom without a cell error, and shows what it is there to show.

Each notebook has a check that reads its outputs by content (a printed line, a result's
repr, a figure's title), so the checks survive edits to the cells' code: the quickstart's
prompt positions, accuracies, head sweep and run directory; the circuit walkthrough's summary
and the four figures it is drawn from; the task-vector notebook's accuracies and training.
"""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import interp

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
NUMBER = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)"


# -- reading executed outputs -------------------------------------------------------------------
def _outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def stdout(nb) -> str:
    """Everything the notebook printed."""
    return "".join(
        o["text"] for o in _outputs(nb) if o["output_type"] == "stream" and o["name"] == "stdout"
    )


def printed(nb, pattern: str) -> tuple[str, ...]:
    """The groups of the one printed match of ``pattern``."""
    found = re.findall(pattern, stdout(nb))
    assert len(found) == 1, (pattern, stdout(nb))
    return found[0] if isinstance(found[0], tuple) else (found[0],)


def results(nb) -> list[str]:
    """The ``text/plain`` of each cell's value."""
    return [o["data"]["text/plain"] for o in _outputs(nb) if o["output_type"] == "execute_result"]


def literal(nb, test) -> object:
    """The one cell value that is a Python literal (a dict, a tuple) passing ``test``."""
    found = []
    for text in results(nb):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            continue
        if test(value):
            found.append(value)
    assert len(found) == 1, (found, results(nb))
    return found[0]


def figures(nb) -> dict[str, dict]:
    """The plotly figures the notebook drew, by title."""
    figs = [o["data"][PLOTLY] for o in _outputs(nb) if PLOTLY in o.get("data", {})]
    return {f["layout"]["title"]["text"]: f for f in figs}


def array(value) -> np.ndarray:
    """A figure's data array: plotly writes numpy arrays base64-encoded with their dtype."""
    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return a.reshape([int(n) for n in str(shape).split(",")]) if shape else a
    return np.asarray(value)


def traces(fig: dict) -> dict[str, dict]:
    return {t.get("name"): {k: array(v) for k, v in t.items() if k in "xyz"} for t in fig["data"]}


def fraction(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


# SmolLM2-135M, the model every notebook loads
N_LAYERS, N_HEADS = 30, 9


# -- what each notebook shows -------------------------------------------------------------------
def check_quickstart(nb, tmp: Path) -> None:
    cfg = next(r for r in results(nb) if r.startswith("ModelConfig("))
    assert f"n_layers={N_LAYERS}" in cfg and f"n_heads={N_HEADS}" in cfg, cfg

    # a 4-shot prompt and its positions: each label right after its forerunner, s_q last
    y, s, s_q = printed(nb, r"labels at \[([\d, ]+)\] forerunners at \[([\d, ]+)\] s_q = (\d+)")
    y, s = [int(v) for v in y.split(",")], [int(v) for v in s.split(",")]
    assert len(y) == len(s) == 4 and y == [p + 1 for p in s] and y == sorted(y)
    assert int(s_q) > y[-1]
    prompt = stdout(nb).split("labels at")[0].strip().splitlines()
    assert sum(line.endswith((": positive", ": negative")) for line in prompt) == 4, prompt
    assert prompt[-1].endswith(":"), prompt  # the query, cut before its label

    # accuracy by number of demonstrations: fractions, and demonstrations help
    acc = literal(nb, lambda v: isinstance(v, dict) and set(v) == {0, 1, 2, 4, 8})
    assert all(fraction(a) for a in acc.values()), acc
    assert acc[8] > acc[0], acc

    # the head sweep: one row per prompt, layer and head, plotted as a layer x head grid
    (rows,) = printed(nb, r"InterventionPlan\((\d+) rows on corrupted, edits: Patch;")
    assert int(rows) == 2 * N_LAYERS * N_HEADS
    (grid,) = traces(figures(nb)["Patching each head: clean -> corrupted"]).values()
    z = grid["z"].astype(float)
    assert z.shape == (N_LAYERS, N_HEADS) and np.isfinite(z).all()
    assert np.ptp(z) > 0.1, z  # patching some heads moves the logit difference, others not

    # the run directory it wrote loads, with what the notebook printed
    status, clean, top, figs = literal(nb, lambda v: isinstance(v, tuple) and len(v) == 4)
    assert status == "complete" and isinstance(clean, float) and len(top) == 3 and figs
    (run_dir,) = {p.parent for p in tmp.rglob("manifest.json")}
    run = interp.load_run(run_dir)
    assert run.manifest["status"] == status and run.summary["clean_baseline"] == clean
    assert run.summary["top_components"][:3] == top and sorted(run.figures) == sorted(figs)


def check_circuit_walkthrough(nb, tmp: Path) -> None:
    best = literal(nb, lambda v: isinstance(v, dict) and "step1_best_layer" in v)
    figs = figures(nb)

    # step 1: centroid accuracy by depth; the summary names the best depth at s_q
    step1 = traces(figs["Centroid accuracy of the query class by depth"])
    assert set(step1) == {"s_q", "x_q"}
    sq = step1["s_q"]
    assert list(sq["x"]) == list(range(N_LAYERS + 1)) and ((0 <= sq["y"]) & (sq["y"] <= 1)).all()
    assert best["step1_best_layer"] == int(np.argmax(sq["y"]))
    assert best["step1_best_centroid_acc"] == pytest.approx(sq["y"].max())
    assert best["step1_best_centroid_acc"] > 0.75  # the class is decodable, above chance (0.5)
    depth, acc = printed(nb, rf"most decodable at depth (\d+) \(accuracy {NUMBER}\)")
    assert int(depth) == best["step1_best_layer"]
    assert float(acc) == pytest.approx(best["step1_best_centroid_acc"], abs=0.01)

    # step 2: forerunner heads (a count of heads) and copy magnitude per layer
    step2 = traces(figs["Forerunner-token heads and copy magnitude per layer"])
    heads, copy = step2["forerunner_heads"]["y"], step2["copy_magnitude"]["y"]
    assert len(heads) == len(copy) == N_LAYERS
    assert ((0 <= heads) & (heads <= N_HEADS)).all() and (heads == heads.round()).all()
    assert heads.sum() > 0 and (copy >= 0).all()
    assert best["step2_peak_layer"] == int(np.argmax(copy))
    assert int(printed(nb, r"peaks at layer (\d+)")[0]) == best["step2_peak_layer"]

    # step 3: label-assignment accuracy per head; the best head is the grid's maximum
    (step3,) = traces(figs["Label-assignment accuracy per head"]).values()
    z = step3["z"].astype(float)
    assert z.shape == (N_LAYERS, N_HEADS) and ((0 <= z) & (z <= 1)).all()
    layer, head = best["step3_best_head"]
    assert (
        z[layer, head] == pytest.approx(z.max()) == pytest.approx(best["step3_best_head_label_acc"])
    )
    shown = printed(nb, rf"head L(\d+)H(\d+) retrieves the right label {NUMBER}%")
    assert [int(shown[0]), int(shown[1])] == [layer, head]
    assert float(shown[2]) == pytest.approx(100 * best["step3_best_head_label_acc"], abs=0.5)

    # the ablation table: accuracy per edge and layer range; a drop is the largest fall
    # below the unablated accuracy over the ranges
    (table,) = figs["Accuracy after knocking out edges"]["data"]
    acc = dict(zip(table["y"], array(table["z"]).astype(float)))
    assert set(best["ablation_drop"]) | {"random", "none", "k=0"} == set(acc)
    assert all(((0 <= a) & (a <= 1)).all() for a in acc.values())
    for edge, drop in [*best["ablation_drop"].items(), ("random", best["random_drop"])]:
        assert drop == pytest.approx((acc["none"] - acc[edge]).max()), edge
    worst = max(best["ablation_drop"], key=best["ablation_drop"].get)
    edge, drop, random_drop = printed(
        nb, rf"removing (\w+) costs {NUMBER} accuracy, against {NUMBER}"
    )
    assert edge == worst and float(drop) == pytest.approx(best["ablation_drop"][worst], abs=0.01)
    assert float(random_drop) == pytest.approx(best["random_drop"], abs=0.01)
    assert best["ablation_prompts"] == 8


def check_task_vectors(nb, tmp: Path) -> None:
    zero, icl = (float(v) for v in printed(nb, rf"0-shot {NUMBER} 8-shot {NUMBER}"))
    assert fraction(zero) and fraction(icl) and icl > zero + 0.3  # demonstrations teach it

    (heads,) = printed(nb, r"top heads: (\[.*\])")
    heads = ast.literal_eval(heads)
    assert len(heads) == len(set(heads)) == 10
    assert all(0 <= layer < N_LAYERS and 0 <= head < N_HEADS for layer, head in heads)

    fv_layer, fv = printed(nb, rf"FV at layer (\d+) {NUMBER}")
    tv_layer, tv = printed(nb, rf"TV at layer (\d+) {NUMBER}")
    assert 0 <= int(fv_layer) < N_LAYERS and 0 <= int(tv_layer) < N_LAYERS
    assert fraction(float(fv)) and fraction(float(tv))
    assert float(tv) > zero  # a task vector added to 0-shot prompts does the task
    # dev accuracy by edited layer (-1: unedited): the chosen layer is the best, and helps
    tv_dev = literal(nb, lambda v: isinstance(v, dict) and set(v) == {-1, *range(N_LAYERS)})
    assert all(fraction(a) for a in tv_dev.values())
    assert tv_dev[int(tv_layer)] == max(a for layer, a in tv_dev.items() if layer >= 0)
    assert tv_dev[int(tv_layer)] > tv_dev[-1]

    hits, strong, total, first, last = printed(
        nb,
        rf"soft injection {NUMBER} \| heads with alpha > 0.9: (\d+) of (\d+) "
        rf"\| loss {NUMBER} -> {NUMBER}",
    )
    assert fraction(float(hits)) and float(hits) > zero
    assert int(total) == N_LAYERS * N_HEADS and 0 <= int(strong) <= int(total)
    assert float(last) < float(first)  # training lowered the loss


def check_atlas(nb, tmp: Path) -> None:
    from scipy.stats import spearmanr

    from interp.runs import load_run
    from interp.stats import overlap_p_value

    (path,) = printed(nb, r"atlas: (\S+)")
    assert Path(path).parent.parent == tmp  # made in the temporary folder, beside its parts
    atlas = load_run(path)
    assert set(atlas.summary["runs"]) == {"circuit", "task-vectors"}
    rho, p, n = printed(
        nb, rf"Spearman rho between AIE and retrieval: {NUMBER} \(p = {NUMBER}, (\d+) heads\)"
    )
    heads = atlas.tables["heads"].dropna(subset=["aie", "retrieval"])
    total = 4 * 8  # the organism's heads
    assert int(n) == len(heads) == total
    assert float(rho) == pytest.approx(spearmanr(heads.aie, heads.retrieval)[0], abs=1e-3)
    shared, a, b, expected, p_value = printed(
        nb, rf"share (\d+) of (\d+) and (\d+) \(expected {NUMBER}; p = {NUMBER}, Holm"
    )
    roles = atlas.tables["roles"]
    fv = set(zip(roles[roles.role == "fv"].layer, roles[roles.role == "fv"]["head"]))
    ret = set(zip(roles[roles.role == "retrieval"].layer, roles[roles.role == "retrieval"]["head"]))
    assert int(a) == int(b) == 5 and int(shared) == len(fv & ret)
    assert float(expected) == pytest.approx(25 / total, abs=0.01)
    assert float(p_value) == pytest.approx(overlap_p_value(len(fv & ret), 5, 5, total), rel=1e-2)
    grid = [o for o in _outputs(nb) if PLOTLY in o.get("data", {})]
    assert len(grid) == 1


CHECKS = {
    "atlas": check_atlas,
    "quickstart": check_quickstart,
    "circuit_walkthrough": check_circuit_walkthrough,
    "task_vectors": check_task_vectors,
}


def test_every_notebook_is_checked():
    assert {p.stem for p in NOTEBOOKS} == set(CHECKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    # the kernel inherits TMPDIR: what a notebook writes to a temporary folder lands here
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(nb, tmp_path / path.name)  # the executed notebook, to read when a check fails
    errors = [o for o in _outputs(nb) if o.get("output_type") == "error"]
    assert not errors
    CHECKS[path.stem](nb, tmp_path / "tmp")
