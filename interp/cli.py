"""The ``iclscope`` command line.

Every command turns a user mistake into one clear message (problem and fix) without a
traceback, and exits non-zero; see :func:`main`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from interp.errors import IclscopeError

app = typer.Typer(
    help="iclscope: see how a language model learns from its context.\n\n"
    "Run `iclscope demo` for a first report on the embedded model organism.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
organism_app = typer.Typer(
    help="The embedded ICL model organism: train or evaluate it.", no_args_is_help=True
)
app.add_typer(organism_app, name="organism")
run_app = typer.Typer(help="Analyses that write a run directory.", no_args_is_help=True)
app.add_typer(run_app, name="run")
bench_app = typer.Typer(help="Benchmarks: commands that print ratios, not tests.",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(bench_app, name="bench")
console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)  # paths stay whole

MODEL_HELP = "'organism' (embedded default), a local Hugging Face folder, or a hub name"


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the named models: real pretrained ones first, then the organism and tiny models."""
    from interp.models.registry import MODELS, describe

    rows = [describe(entry) for entry in MODELS.values()]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("name", "parameters", "layers", "heads", "kv", "context", "license", "source",
                  "converted")  # fmt: skip
    for r in rows:
        params = f"{r['parameters'] / 1e6:.1f}M" if r["parameters"] else "?"
        table.add_row(r["name"], params, *(str(r[k] or "?") for k in
                      ("layers", "heads", "kv_heads", "context")), r["license"], r["source"],
                      "yes" if r["converted"] else "no (converts on first use)")  # fmt: skip
    console.print(table)


@app.command()
def tasks(
    model: str | None = typer.Option(
        None,
        help="Also say which families this model's tokenizer can build, and why not the others.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List the task families; every --task option takes these names."""
    from interp.tasks.suite import TASK_FAMILIES, family_support

    tokenizer = None
    if model is not None:
        from transformers import AutoTokenizer

        from interp.models import resolve_spec

        tokenizer = AutoTokenizer.from_pretrained(resolve_spec(model)[0])
    rows = []
    for f in TASK_FAMILIES.values():
        row = {"name": f.name, "kind": f.kind, "source": f.source, "template": f.template.demo,
               "labels": list(f.labels), "description": f.description}  # fmt: skip
        if tokenizer is not None:
            reason = family_support(f, tokenizer)
            row.update(buildable=reason is None, why_not=reason)
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    cols = ["name", "kind", "source", "template", "labels", "description"]
    table = Table(*cols, *(["buildable"] if tokenizer is not None else []))
    for r in rows:
        labels = ", ".join(r["labels"][:6]) + (" ..." if len(r["labels"]) > 6 else "")
        extra = [("yes" if r["buildable"] else f"no: {r['why_not']}")] if tokenizer else []
        table.add_row(r["name"], r["kind"], r["source"], repr(r["template"]), labels or "(open)",
                      r["description"], *extra)  # fmt: skip
    console.print(table)


@app.command("eval")
def eval_command(
    model: str = typer.Option("smollm2", help=MODEL_HELP),
    task: str = typer.Option(
        "all", help="A family name, or 'all' (every family this model's tokenizer can build)."
    ),
    shots: str = typer.Option("0,1,2,4,8", help="Comma-separated shot counts."),
    n: int = typer.Option(64, help="Prompts per cell."),
    seed: int = typer.Option(10_007, help="Seed of the evaluation prompts."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Score in-context learning per family and shot count, ranking P@1, and key-value
    retrieval at 256-2048 tokens."""
    from interp.tasks.suite import TASK_FAMILIES, get_family

    shot_list = _int_list(shots, "--shots", minimum=0)
    _check_positive(n, "--n")
    names = [get_family(task).name] if task != "all" else None
    from interp.tasks.run_eval import run_eval

    result = run_eval(model, names, shot_list, n, seed, quiet=as_json)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("family", "kind", *[f"{k}-shot" for k in shot_list])
    for name, fam in result["families"].items():
        if "shots" in fam:
            table.add_row(name, fam["kind"], *[f"{v:.3f}" for v in fam["shots"].values()])
    console.print(table)
    for name, fam in result["families"].items():
        if "p_at_1" in fam:
            console.print(f"{name}: precision@1 over {TASK_FAMILIES[name].default_k} documents "
                          f"{fam['p_at_1']:.3f}")  # fmt: skip
        if "tokens" in fam:
            cells = ", ".join(f"{t} tokens {a:.3f}" for t, a in fam["tokens"].items())
            console.print(f"{name}: {cells}")


def _int_list(text: str, option: str, minimum: int = 0) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise IclscopeError(f"{option} {text!r} is not a comma-separated list of integers",
                            fix=f"write e.g. {option} 0,1,2,4,8") from None  # fmt: skip
    if not values or min(values) < minimum:
        raise IclscopeError(f"{option} {text!r} needs integers >= {minimum}",
                            fix=f"write e.g. {option} 0,1,2,4,8")  # fmt: skip
    return values


def _check_positive(value: int, option: str) -> int:
    if value < 1:
        raise IclscopeError(f"{option} {value} must be at least 1", fix=f"pass {option} 1 or more")
    return value


@app.command()
def inspect(
    model: str = typer.Option("organism", help=MODEL_HELP),
    backend: str = typer.Option("transformer_lens", help="transformer_lens or nnsight"),
):
    """Show a model's shape and its hook points."""
    from interp.models import load_model

    m = load_model(model, backend=backend)
    console.print(m.cfg)
    names = m.hook_names()
    console.print(f"{len(names)} hook points; layer 0:")
    for n in names:
        if n.startswith("blocks.0.") or not n.startswith("blocks."):
            console.print(f"  {n}")


@organism_app.command("train")
def organism_train(
    out: Path = typer.Option(..., help="Folder to write the trained model into."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same data stream."),
    minutes: float = typer.Option(70.0, help="Wall-clock budget; the schedule follows it."),
    max_steps: int | None = typer.Option(None, help="Stop after this many steps instead."),
    d_model: int = typer.Option(128),
    n_layers: int = typer.Option(4),
    init: Path | None = typer.Option(
        None, help="Continue from this trained organism folder instead of a fresh model."
    ),
    lr: float = typer.Option(2e-3, help="Peak learning rate."),
):
    """Train the ICL model organism on the synthetic language (CPU, about an hour)."""
    from interp.organism.train import TrainConfig, train

    if init is not None and not (init / "config.json").is_file():
        raise IclscopeError(f"--init {init} is not a trained model folder (no config.json)",
                            fix="pass a folder written by `iclscope organism train`")  # fmt: skip
    cfg = TrainConfig(seed=seed, minutes=minutes, max_steps=max_steps, d_model=d_model,
                      n_layers=n_layers, init=str(init) if init else None, lr=lr)  # fmt: skip
    record = train(out, cfg, log=console.print)
    console.print(f"wrote {out} ({record['steps']} steps, {record['wall_seconds'] / 60:.1f} min)")


@organism_app.command("eval")
def organism_eval(
    model: str = typer.Option("organism", help=MODEL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    n: int = typer.Option(200, help="Held-out prompts per cell."),
):
    """Score held-out prompts: ICL accuracy by shots, ranking P@1, key-value retrieval."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.models import resolve_spec
    from interp.organism.evaluate import evaluate_organism

    where, _ = resolve_spec(model)
    hf = AutoModelForCausalLM.from_pretrained(where).eval()
    result = evaluate_organism(hf, AutoTokenizer.from_pretrained(where), n=n)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("measure", *[f"{k}-shot" for k in ("0", "1", "2", "4", "8")])
    for key in ("classification_semantic", "classification_arbitrary", "function_tasks"):
        table.add_row(key, *[f"{v:.3f}" for v in result[key].values()])
    console.print(table)
    console.print(f"ranking precision@1 (10 documents): {result['ranking_p_at_1']:.3f}")
    console.print(
        f"key-value retrieval ({result['kv_retrieval_tokens']} tokens): "
        f"{result['kv_retrieval_acc']:.3f}"
    )


@app.command()
def demo(
    out: Path = typer.Option(Path("runs"), help="Runs folder to write the run directory into."),
    model: str = typer.Option("smollm2", help=MODEL_HELP),
    seed: int = typer.Option(0),
    n: int = typer.Option(32, help="Held-out prompts per evaluation cell."),
    pipeline: bool = typer.Option(True, help="Also run the ICL circuit."),
    circuit_prompts: int = typer.Option(256, help="Prompts for the circuit."),
):
    """The main job: evaluate a few task families by shots, look inside one prompt, then (with
    --pipeline) run the ICL circuit; all of it in one run directory with a report."""
    from interp.demo import run_demo

    _check_positive(n, "--n")
    _check_positive(circuit_prompts, "--circuit-prompts")
    path = run_demo(out, model=model, seed=seed, n=n, circuit=pipeline,
                    circuit_prompts=circuit_prompts, log=console.print)  # fmt: skip
    console.print(f"[bold green]report:[/] {path / 'report.html'}")
    print(path)


@run_app.command("patch")
def run_patch_command(
    model: str = typer.Option("organism", help=MODEL_HELP),
    task: str = typer.Option("sentiment_semantic", help="A classification task family."),
    component: str = typer.Option("heads", help="heads, resid, mlp or edges"),
    metric: str = typer.Option("logit_diff", help="logit_diff, prob, acc or kl"),
    ablation: str | None = typer.Option(None, help="mean, zero or resample (default: patch)"),
    prompts: int = typer.Option(8, help="Clean/corrupted prompt pairs."),
    shots: int = typer.Option(4),
    seed: int = typer.Option(0),
    max_batch: int | None = typer.Option(
        None, help="Rows per forward pass (default: fit a 1 GiB budget)."
    ),
    per_position: bool = typer.Option(False, help="Heads: patch each position separately."),
    out: Path = typer.Option(Path("runs"), help="Runs folder."),
):
    """Patch or ablate every component in batched forward passes; write heatmaps, the top
    components, the plan, summary.json and a report."""
    from interp.patch_run import run_patch

    if ablation not in (None, "mean", "zero", "resample"):
        raise IclscopeError(f"unknown ablation {ablation!r}", fix="use mean, zero or resample")
    path = run_patch(out, model, task, component, metric, ablation, prompts, shots, seed,
                     max_batch, per_position, log=console.print)  # fmt: skip
    console.print(f"[bold green]report:[/] {path / 'report.html'}")
    print(path)


@run_app.command("circuit")
def run_circuit_command(
    model: str = typer.Option("organism", help=MODEL_HELP),
    task: str = typer.Option("sentiment_arbitrary", help="A classification task family."),
    shots: int = typer.Option(4),
    prompts: int = typer.Option(512, help="Prompts for the probes and the ablation table."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs"), help="Runs folder."),
    ablation_prompts: int = typer.Option(
        None,
        help="Run the ablation table on the first N prompts only [all]: it costs up to "
        "32 forward passes per prompt.",
    ),
):
    """The ICL inference circuit (Cho et al.): summarize, semantics merge, retrieve and copy,
    and the attention-edge ablation table, written as a run directory."""
    from interp.circuit_run import run_circuit

    if ablation_prompts is not None:
        _check_positive(ablation_prompts, "--ablation-prompts")
    path = run_circuit(out, model, task, shots, prompts, seed, log=console.print,
                       ablation_prompts=ablation_prompts)  # fmt: skip
    console.print(f"[bold green]report:[/] {path / 'report.html'}")
    print(path)


@bench_app.command("patching")
def bench_patching_command(
    model: str = typer.Option("organism", help=MODEL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    repeats: int = typer.Option(5, help="Timed repeats per method (median reported)."),
    shots: int = typer.Option(4, help="Demonstrations per prompt (sets the prompt length)."),
):
    """Time head patching four ways (TransformerLens, nnsight, our engine with and without
    resuming) against a plain forward, on workloads A (heads x 8 pairs) and B (heads x
    positions x 1 pair)."""
    from interp.bench import bench_patching

    result = bench_patching(
        model, repeats=repeats, shots=shots, log=(lambda *a: None) if as_json else console.print
    )
    if as_json:
        print(json.dumps(result))


@bench_app.command("kernels")
def bench_kernels_command(
    device: str = typer.Option(None, help="cuda or cpu [cuda when a GPU is visible]."),
    size: str = typer.Option(
        None,
        help="Model size for the hook cost: small (GPT-2 small) "
        "or tiny [small on a GPU, tiny on CPU].",
    ),  # fmt: skip
    batch: int = typer.Option(None, help="Rows [256 on a GPU, 32 on CPU]."),
    positions: int = typer.Option(None, help="Positions per row [128 on a GPU, 64 on CPU]."),
    dtype: str = typer.Option("float32", help="float32 or bfloat16."),
    repeats: int = typer.Option(10, help="Timed repeats (median reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """The patch kernel's bandwidth against a device-to-device copy, and the hooks' cost as a
    percentage of a forward (a random GPT-2-small-sized Llama on a GPU)."""
    from interp.bench_kernels import bench_kernels

    result = bench_kernels(device, size, batch, positions, dtype, repeats)
    if as_json:
        print(json.dumps(result))
        return
    bw, hc = result["bandwidth"], result["hook_cost"]
    console.print(f"{result['device']}, {result['dtype']}, kernel: {bw['kernel']}")
    console.print(f"copy: {bw['copy_gb_per_s']:.1f} GB/s")
    for name in ("one_head", "all_heads"):
        b = bw[name]
        console.print(f"patch {name}: {b['gb_per_s']:.1f} GB/s = {b['fraction_of_copy']:.2f} of "
                      f"copy (max diff vs twin {b['max_abs_diff_vs_twin']:.1e})")  # fmt: skip
    console.print(f"hooks: {hc['hook_percent_of_forward']:.1f}% of a {hc['layers']}-layer "
                  f"forward over {hc['rows']} x {hc['positions']}")  # fmt: skip


@app.command()
def show(run: Path = typer.Argument(..., help="A run directory.")):
    """Print a run's status and headline numbers."""
    from interp.runs import load_run

    loaded = load_run(run)
    m = loaded.manifest
    console.print(f"{run}: {m.get('kind')} on {m.get('model')}, status [bold]{loaded.status}[/]")
    if m.get("error"):
        console.print(f"error: {m['error']}")
    for key, value in loaded.summary.items():
        console.print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    console.print(f"  tables: {', '.join(loaded.tables)}; figures: {', '.join(loaded.figures)}")


@app.command("app")
def app_command(
    runs: Path = typer.Option(Path("runs"), help="Runs folder to browse."),
    port: int = typer.Option(8501, help="Port to serve on."),
):
    """Start the Streamlit explorer in the browser."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false", "--",
           "--runs", str(runs.resolve())]  # fmt: skip
    console.print(f"iclscope explorer on http://localhost:{port} (runs: {runs})")
    raise SystemExit(subprocess.call(cmd))


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print as one message, never a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, standalone_mode=False)
    except IclscopeError as err:
        err_console.print("[bold red]error:[/]", escape(err.problem))
        if err.fix:
            err_console.print("[bold]fix:[/]", escape(err.fix))
        return 2
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.ClickException):
            err.show()
            return err.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
