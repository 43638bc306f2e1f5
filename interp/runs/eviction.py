"""``run_eviction``: accuracy against KV-cache eviction rate (docs/analyses/eviction.md) as a
run directory; ``train_gate_folder``: the attention gate trained and saved with its record.

The analysis lives in :mod:`circuits.eviction`, with its prompts and the eager model it runs on
(:mod:`circuits.eviction.prompts`, whose names this module still exports); this module turns
the result into tables, figures, a summary and a report.

Eviction is simulated after the prefill: the final rows (the query line, from the query's first
token) are decoded against the cache with the evicted keys masked; every earlier row was
computed with every key. The rate counts context tokens (real tokens before the final rows).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import plotly.express as px
import plotly.graph_objects as go

from circuits.eviction import METHODS, EvictionEval, EvictionResult, GateStack
from circuits.eviction.evaluate import GATE, GATE_WINDOW
from circuits.eviction.prompts import (  # noqa: F401 (re-exported: their older home)
    KINDS,
    KV_KEYS,
    eviction_builder,
    eviction_settings,
    load_eager,
    sample_digit_kv,
)
from circuits.eviction.train import gate_examples, train_gate
from interp.errors import Interrupted
from interp.execution import recorded
from interp.runs.store import RunWriter


def train_gate_folder(
    out: str | Path,
    model: str = "smollm2",
    task: str = "nl_capital",
    objective: str = "distill",
    rate: float = 0.5,
    shots: int = 16,
    prompts: int = 48,
    lengths: Sequence[int] = (512,),
    epochs: int = 40,
    seed: int = 1,
    log: Callable[[str], object] = print,
    loaded=None,
    max_seconds: float | None = 1500.0,
    kv_keys: str = "words",
) -> tuple[GateStack, dict]:
    """Train a gate on prompts of its own seed (never the evaluation's) and save it in ``out``
    (``gate.pt``, ``gate.json``, ``training.json``)."""
    from interp.models.interface import ModelConfig

    t0 = time.perf_counter()
    hf, tokenizer, builder = loaded or load_eager(model)
    settings = eviction_settings(builder, task, shots, prompts, lengths, seed, kv_keys)
    examples = []
    for name, batch in settings.items():
        log(f"gate training data: prefill of {len(batch)} prompts ({name})")
        examples += gate_examples(hf, batch, rate)
    prefill_s = time.perf_counter() - t0
    gate = GateStack.for_model(ModelConfig.from_hf(model, hf.config), target_rate=rate)
    context = dict(model=model, task=task, shots=shots, settings=list(settings), command=sys.argv)
    context.update(prefill_seconds=round(prefill_s, 2))
    try:
        record = train_gate(
            hf,
            gate,
            examples,
            objective,
            epochs=epochs,
            seed=seed,
            log=log,
            max_seconds=max_seconds,
        )
    except Interrupted as stop:  # keep the steps done, with a record saying where it stopped
        if getattr(stop, "record", None) is not None:
            record = {**stop.record, **context}
            record.update(total_seconds=round(time.perf_counter() - t0, 2))
            gate.save(out, record)
            log(f"interrupted ({stop.name}) after {record['steps_done']} steps: saved in {out}")
        raise
    record.update(context, total_seconds=round(time.perf_counter() - t0, 2))
    gate.save(out, record)
    log(f"gate saved in {out} ({record['total_seconds']:.0f} s in all)")
    return gate, record


def run_eviction(
    out: str | Path,
    model: str = "smollm2",
    task: str = "nl_capital",
    shots: int = 16,
    prompts: int = 32,
    rates: Sequence[float] = (0.25, 0.5, 0.75),
    methods: Sequence[str] = tuple(METHODS),
    lengths: Sequence[int] = (512, 1024),
    gate: str | Path | None = None,
    train: bool = True,
    objective: str = "distill",
    gate_prompts: int = 48,
    seed: int = 0,
    log: Callable[[str], object] = print,
    gate_epochs: int = 40,
    kv_keys: str = "words",
    chunk: int = 8,
    executor=None,
) -> Path:
    """Every method at every rate, plus the gate (loaded from ``gate``, or trained here with
    ``objective`` and saved under the run's ``gate/`` when ``train``); write the run. The
    evaluation's chunks of ``chunk`` prompts (fewer past 512 tokens) run on ``executor``
    (default: the enclosing ``using`` block's, else here), and the manifest records it; the
    gate is trained here either way."""
    params = dict(
        shots=shots,
        prompts=prompts,
        rates=list(rates),
        methods=list(methods),
        lengths=list(lengths),
        gate=str(gate) if gate else None,
        objective=objective,
        gate_prompts=gate_prompts,
        gate_epochs=gate_epochs,
        kv_keys=kv_keys,
        chunk=chunk,
        eviction="after prefill: the query line's rows",
    )
    with RunWriter(
        out, kind="eviction", model=model, task=task, seed=seed, command=sys.argv, params=params
    ) as run:
        t0 = time.perf_counter()
        loaded = load_eager(model)
        hf, tokenizer, builder = loaded
        settings = eviction_settings(builder, task, shots, prompts, lengths, seed, kv_keys)
        stack, record = None, None
        if gate is not None:
            stack = GateStack.load(gate)
        elif train:
            stack, record = train_gate_folder(
                run.path / "gate",
                model,
                task,
                objective,
                rates[len(rates) // 2],
                shots,
                gate_prompts,
                lengths[:1],
                gate_epochs,
                seed=seed + 1,
                kv_keys=kv_keys,
                log=log,
                loaded=loaded,
            )
        # a failed run still records its retries and unfinished chunks
        with recorded(executor, run.executor) as executor:
            result = EvictionEval(tuple(methods), tuple(rates), chunk).run(
                hf, settings, tokenizer, stack, log=log, executor=executor
            )
        for name in ("curves", "by_head", "tokens"):
            run.table(name, getattr(result, name))
        for name, fig in eviction_figures(result).items():
            run.figure(name, fig)
        summary = eviction_summary(result, time.perf_counter() - t0, record)
        run.summary(summary)
        run.report(eviction_report(result, summary, model, task))
    log(str(run.path))
    return run.path


def eviction_estimate(
    model: str,
    task: str,
    shots: int,
    prompts: int,
    lengths: Sequence[int],
    seed: int,
    kv_keys: str,
    methods: Sequence[str],
    rates: Sequence[float],
    gate: bool,
    chunk: int = 8,
    workers: int = 1,
):
    """What the evaluation of :func:`run_eviction` will cost per worker
    (:class:`~interp.patching.memory.WorkEstimate`), from the tokenizer, the config and the
    prompts alone: the chunks are the evaluation's own (:meth:`~circuits.eviction.evaluate.
    EvictionChunks.spans`), each one prefill (two passes: the scores, the context's cache) and
    one decode of the final rows per variant."""
    from transformers import AutoConfig, AutoTokenizer

    from circuits.eviction.evaluate import EvictionChunks, prompt_floats, variant_count
    from interp.models import resolve_spec
    from interp.models.interface import ModelConfig
    from interp.patching.memory import estimate_work, weights_gb

    folder, _ = resolve_spec(model)
    cfg = ModelConfig.from_hf(model, AutoConfig.from_pretrained(folder))
    builder = eviction_builder(AutoTokenizer.from_pretrained(folder), folder, cfg.n_ctx)
    settings = eviction_settings(builder, task, shots, prompts, lengths, seed, kv_keys)
    spans = EvictionChunks(folder, settings, EvictionEval(chunk=chunk)).spans()
    sizes = [(min(step, len(settings[s]) - i), settings[s].tokens.shape[1]) for s, i, step in spans]
    variants = variant_count(methods, rates, gate)
    return estimate_work(
        sizes,
        lambda n_pos: prompt_floats(cfg, n_pos, variants),
        2 + variants,
        f"per chunk: a prefill in two passes and {variants} decodes of the final rows",
        weights_gb(folder),
        "every layer's attention pattern, batch x heads x pos^2, and its keys and values",
        "--chunk (prompts per prefill at 512 tokens; longer prompts take fewer)",
        workers,
    )


def eviction_summary(result: EvictionResult, seconds: float, record: dict | None) -> dict:
    """The summary keys: ``accuracy_full``, ``by_method`` (method -> rate -> accuracy), pooled
    over settings by prompt; ``gate_rate``/``gate_accuracy`` at the gate's own threshold."""
    c = result.curves
    pooled = c.assign(hits=c.accuracy * c.prompts).groupby(["method", "rate"])
    acc = (pooled.hits.sum() / pooled.prompts.sum()).reset_index(name="acc")
    full = acc.query("method == 'full'").acc
    by_method: dict = {}
    for row in acc.query("method != 'full'").itertuples():
        by_method.setdefault(row.method, {})[str(row.rate)] = round(float(row.acc), 4)
    g = result.gate
    n = {s: int(c.query("setting == @s and method == 'full'").prompts.iloc[0]) for s in g}
    pool = lambda key: sum(g[s][key] * n[s] for s in g) / sum(n.values()) if g else None  # noqa: E731
    by_setting = {
        s: {
            m: {str(r): round(float(a), 4) for r, a in zip(d.rate, d.accuracy)}
            for m, d in c.query("setting == @s").groupby("method")
        }
        for s in c.setting.unique()
    }
    return dict(
        accuracy_full=round(float(full.iloc[0]), 4),
        by_method=by_method,
        gate_rate=None if not g else round(pool("rate"), 4),
        gate_accuracy=None if not g else round(pool("accuracy"), 4),
        by_setting=by_setting,
        gate_by_setting=g or None,
        gate_training=None
        if record is None
        else {
            k: record[k]
            for k in (
                "objective",
                "target_rate",
                "epochs_run",
                "prompts",
                "seconds",
                "total_seconds",
            )
        },
        seconds=round(seconds, 1),
    )


def eviction_figures(result: EvictionResult) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    c = result.curves
    curves = c.query("method != 'full'")
    figs["accuracy_vs_rate"] = px.line(
        curves,
        x="rate",
        y="accuracy",
        color="method",
        facet_col="setting",
        markers=True,
        title="Accuracy against eviction rate (dashed: every key kept)",
        range_y=[0, 1.02],
    )
    for row in c.query("method == 'full'").itertuples():
        col = list(c.setting.unique()).index(row.setting) + 1
        figs["accuracy_vs_rate"].add_hline(y=row.accuracy, line_dash="dash", col=col, row=1)
    heads = result.by_head
    mid = sorted(r for r in heads.rate.dropna().unique())
    mid = mid[len(mid) // 2] if mid else None
    first = heads.setting.iloc[0] if len(heads) else None
    for method, d in heads[(heads.setting == first) & (heads.rate == mid)].groupby("method"):
        figs[f"heads_{method}"] = px.imshow(
            d.pivot(index="layer", columns="head", values="attention_lost"),
            origin="lower",
            aspect="auto",
            zmin=0,
            zmax=1,
            color_continuous_scale="Reds",
            title=f"{method} at rate {mid}: share of the final rows' attention on evicted keys",
        )
    gate = heads[(heads.method == GATE) & heads.rate.isna() & (heads.setting == first)]
    if len(gate):
        figs["heads_gate_evicted"] = px.imshow(
            gate.pivot(index="layer", columns="head", values="evicted"),
            origin="lower",
            aspect="auto",
            zmin=0,
            zmax=1,
            color_continuous_scale="Blues",
            title="Gate at its threshold: share of context evicted per layer and head",
        )
    t = result.tokens
    if len(t):
        t = t.query("setting == @t.setting.iloc[0]")
        grid = t.pivot(index="method", columns="pos", values="kept")
        words = t.pivot(index="method", columns="pos", values="token")
        figs["tokens_kept"] = go.Figure(
            go.Heatmap(
                z=grid.values,
                x=[repr(w) for w in words.iloc[0]],
                y=grid.index,
                zmin=0,
                zmax=1,
                text=words.values,
                hovertemplate="%{y} %{text}: kept by %{z:.2f} of heads",
                colorscale="Greens",
            )
        )
        figs["tokens_kept"].update_layout(
            title="First prompt: share of (layer, head) keeping each token, at the middle rate"
        )
    return figs


def eviction_report(result: EvictionResult, summary: dict, model: str, task: str) -> str:
    c = result.curves
    rates = sorted(r for r in c.rate.unique() if r > 0)
    lines = [
        f"# KV-cache eviction: {model} on `{task}`",
        "",
        f"Eviction simulated after the prefill: the query line's rows lose the evicted "
        f"keys, every earlier row saw every key. {summary['seconds']:.0f} s.",
        "",
    ]
    for setting, d in c.groupby("setting", sort=False):
        full = float(d.query("method == 'full'").accuracy.iloc[0])
        n = int(d.prompts.iloc[0])
        lines += [
            f"## {setting} ({n} prompts)",
            "",
            f"Every key kept: {full:.3f}.",
            "",
            "| method | " + " | ".join(f"evict {r:g}" for r in rates) + " |",
            "|---" * (len(rates) + 1) + "|",
        ]
        for method, m in d.query("method != 'full'").groupby("method"):
            acc = dict(zip(m.rate, m.accuracy))
            lines.append(
                f"| {method} | "
                + " | ".join(f"{acc.get(r, float('nan')):.3f}" for r in rates)
                + " |"
            )
        g = result.gate.get(setting)
        if g:
            lines += [
                "",
                f"Gate at its threshold: evicts {g['rate']:.3f} of the context, "
                f"accuracy {g['accuracy']:.3f}.",
            ]
        lines.append("")
    lines += _verdict(summary)
    return "\n".join(lines) + "\n"


def _verdict(summary: dict) -> list[str]:
    """Where each gate variant stands against full attention and the best training-free
    method at each rate, as measured; nothing is claimed that the numbers do not show."""
    by = summary["by_method"]
    gates = [g for g in (GATE, GATE_WINDOW) if g in by]
    if not gates:
        return ["No gate in this run."]
    out = ["## The gate against the baselines", ""]
    free = {m: v for m, v in by.items() if m not in gates}
    for gate in gates:
        for rate, acc in sorted(by[gate].items()):
            others = {m: v[rate] for m, v in free.items() if rate in v}
            best = max(others, key=others.get)
            verdict = "ahead or level" if acc >= others[best] else "behind"
            out.append(
                f"- {gate}, evict {rate}: {acc:.3f} (full minus it "
                f"{summary['accuracy_full'] - acc:+.3f}); best training-free {best} "
                f"{others[best]:.3f}: the gate is {verdict}"
            )
    return out
