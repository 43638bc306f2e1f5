"""``bench patching`` and ``bench kernels``: commands that print ratios, not tests."""

from __future__ import annotations

import json

import typer

from interp.cli import checks, options
from interp.cli.app import bench_app, console
from interp.cli.options import Device, Dtype, KernelSize


@bench_app.command(
    "patching", short_help="Time head patching: TransformerLens, nnsight and our engine."
)
@options.task_file_options()
def bench_patching_command(
    model: str = options.model(),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    repeats: int = options.count(5, "Timed repeats per method (median reported)."),
    shots: int = options.shots(help="Demonstrations per prompt (sets the prompt length)."),
    positions: int | None = options.count(
        None,
        "Workload B patches this many positions, spread evenly from first to last "
        "[every position].",
    ),
    pairs: int = options.count(8, "Prompt pairs in workload A (heads over all positions)."),
    task: str | None = typer.Option(
        None, help="A classification family or file [the model's own sentiment family]."
    ),
):
    """Time head patching four ways (TransformerLens, nnsight, our engine with and without
    resuming) against a plain forward, on workloads A (heads x 8 pairs) and B (heads x
    positions x 1 pair). On a 30-layer model on a CPU, --pairs 2 --positions 3 keeps it to
    minutes."""
    folder = checks.model_folder(model)
    from transformers import AutoTokenizer

    from interp.bench.patching import BENCH_FAMILIES, bench_patching
    from interp.tasks.suite import default_family

    family = task and checks.task(task, kind="classification").name
    family = family or default_family(AutoTokenizer.from_pretrained(folder), *BENCH_FAMILIES)
    checks.prompts(folder, model, [family], [shots])
    result = bench_patching(
        model,
        task=family,
        repeats=repeats,
        shots=shots,
        positions=positions,
        pairs=pairs,
        log=(lambda *a: None) if as_json else console.print,
    )
    if as_json:
        print(json.dumps(result))


@bench_app.command("scale", short_help="Time one head sweep locally and on a local Ray cluster.")
@options.task_file_options()
def bench_scale_command(
    model: str = options.model(),
    workers: str = typer.Option("1,2", help="Comma-separated Ray worker counts."),
    pairs: int = options.count(8, "Prompt pairs (the sweep has pairs x layers x heads rows)."),
    shots: int = options.shots(help="Demonstrations per prompt (sets the prompt length)."),
    repeats: int = options.count(1, "Timed runs per contender (median reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    task: str | None = typer.Option(
        None, help="A classification family or file [the model's own sentiment family]."
    ),
):
    """Time one head sweep on the local engine and on a local Ray cluster with each number of
    workers: Ray's overhead over local, and what more workers buy on this machine."""
    counts = checks.int_list(workers, "--workers", minimum=1)
    folder = checks.model_folder(model)
    from transformers import AutoTokenizer

    from interp.bench.patching import BENCH_FAMILIES
    from interp.bench.scale import bench_scale
    from interp.tasks.suite import default_family

    family = task and checks.task(task, kind="classification").name
    family = family or default_family(AutoTokenizer.from_pretrained(folder), *BENCH_FAMILIES)
    checks.prompts(folder, model, [family], [shots])
    result = bench_scale(
        model,
        counts,
        pairs,
        shots,
        repeats,
        log=(lambda *a: None) if as_json else console.print,
        task=family,
    )
    if as_json:
        print(json.dumps(result))


@bench_app.command(
    "kernels", short_help="The patch kernel's bandwidth and the hooks' cost (on a GPU)."
)
def bench_kernels_command(
    device: Device | None = typer.Option(None, help="Where to run [cuda when a GPU is visible]."),
    size: KernelSize | None = typer.Option(
        None,
        help="Model size for the hook cost: small (GPT-2 small) "
        "or tiny [small on a GPU, tiny on CPU].",
    ),
    batch: int | None = options.count(None, "Rows [256 on a GPU, 32 on CPU]."),
    positions: int | None = options.count(None, "Positions per row [128 on a GPU, 64 on CPU]."),
    dtype: Dtype = typer.Option("float32", help="Element type of the activations."),
    repeats: int = options.count(10, "Timed repeats (median reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """The patch kernel's bandwidth against a device-to-device copy, and the hooks' cost as a
    percentage of a forward (a random GPT-2-small-sized Llama on a GPU)."""
    from interp.bench.kernels import bench_kernels

    result = bench_kernels(device, size, batch, positions, dtype, repeats)
    if as_json:
        print(json.dumps(result))
        return
    bw, hc = result["bandwidth"], result["hook_cost"]
    console.print(f"{result['device']}, {result['dtype']}, kernel: {bw['kernel']}")
    console.print(f"copy: {bw['copy_gb_per_s']:.1f} GB/s")
    for name in ("one_head", "all_heads"):
        b = bw[name]
        console.print(
            f"patch {name}: {b['gb_per_s']:.1f} GB/s = {b['fraction_of_copy']:.2f} of "
            f"copy (max diff vs twin {b['max_abs_diff_vs_twin']:.1e})"
        )
    console.print(
        f"hooks: {hc['hook_percent_of_forward']:.1f}% of a {hc['layers']}-layer "
        f"forward over {hc['rows']} x {hc['positions']}"
    )
