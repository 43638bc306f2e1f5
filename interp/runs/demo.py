"""``iclscope demo``: the main job on one model, written as one run directory.

It does what a researcher does first with a model: score a few task families by number of
demonstrations (does it learn in context at all?), look inside one prompt (the logit lens of
the answer at the query forerunner ``s_q``, and where each head at ``s_q`` attends), then run
the ICL inference circuit (Cho et al.) on a classification family. The report puts the three
together; every sentence in it is written from the measured numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import plotly.express as px
import torch
from tqdm.auto import tqdm

from interp.models import load_model
from interp.prompts import token_roles
from interp.runs.circuit import circuit_report, write_circuit
from interp.runs.reports import export_static, integer_axes
from interp.runs.store import RunWriter
from interp.tasks.evaluate import evaluate_model
from interp.tasks.suite import build_family_batch, family_support, get_family

DEMO_FAMILIES = {
    "natural": (
        "nl_capital",
        "nl_antonym",
        "nl_verb_past",
        "nl_sentiment_natural",
        "nl_kind_arbitrary",
    ),
    "organism": ("sentiment_semantic", "sentiment_arbitrary", "fn_copy_first", "fn_class_last"),
}
CIRCUIT_TASK = {"natural": "nl_sentiment_natural", "organism": "sentiment_arbitrary"}
SHOTS = (0, 1, 2, 4, 8)


def demo_suite(tokenizer) -> str:
    """``natural`` where the tokenizer builds the English suite (real models), else
    ``organism`` (the organism and the tiny test models share its word vocabulary)."""
    ok = all(family_support(get_family(f), tokenizer) is None for f in DEMO_FAMILIES["natural"])
    return "natural" if ok else "organism"


def first_look(model, task: str, shots: int = 4, seed: int = 0):
    """Logit lens of the answer and attention from ``s_q`` for one prompt, as tidy tables."""
    batch = build_family_batch(model.prompt_builder(), task, 1, shots, seed)
    ann, L = batch.annotations[0], model.cfg.n_layers
    names = [f"blocks.{l}.hook_resid_post" for l in range(L)] + ["blocks.0.hook_resid_pre"]
    names += [f"blocks.{l}.attn.hook_pattern" for l in range(L)]
    _, cache = model.run_with_cache(batch.tokens, names, batch.attention_mask)
    tokens = model.tokenizer.convert_ids_to_tokens(batch.tokens[0, : ann.length].tolist())
    labels = batch.label_ids[0] or [int(batch.answer_ids[0])]
    resid = [cache["blocks.0.hook_resid_pre"]] + [
        cache[f"blocks.{l}.hook_resid_post"] for l in range(L)
    ]
    lens_rows = []
    for layer, r in enumerate(resid):
        probs = torch.softmax(model.logit_lens(r[0, ann.s_q]).float(), -1)
        for lab in labels:
            lens_rows.append(
                {
                    "layer": layer,
                    "label": model.tokenizer.convert_ids_to_tokens(lab),
                    "is_answer": lab == int(batch.answer_ids[0]),
                    "prob": float(probs[lab]),
                    "rank": int((probs > probs[lab]).sum()),
                }
            )
    roles = token_roles(ann, ann.length)
    att_rows = [
        {
            "layer": l,
            "head": h,
            "position": p,
            "token": tokens[p],
            "role": roles[p],
            "weight": float(cache[f"blocks.{l}.attn.hook_pattern"][0, h, ann.s_q, p]),
        }
        for l in range(L)
        for h in range(model.cfg.n_heads)
        for p in range(ann.length)
    ]
    return batch.texts[0], pd.DataFrame(lens_rows), pd.DataFrame(att_rows)


def run_demo(
    out: Path,
    model: str = "smollm2",
    seed: int = 0,
    n: int = 32,
    circuit: bool = True,
    circuit_prompts: int = 128,
    ablation_prompts: int = 32,
    log=print,
) -> Path:
    """Evaluate, look inside one prompt and (with ``circuit``) run the ICL circuit."""
    torch.manual_seed(seed)
    params = {
        "n": n,
        "shots": list(SHOTS),
        "circuit": circuit,
        "circuit_prompts": circuit_prompts,
        "ablation_prompts": ablation_prompts,
    }
    with RunWriter(
        out, kind="demo", model=model, task="demo", seed=seed, command=sys.argv, params=params
    ) as run:
        log(f"loading {model} ...")
        m = load_model(model)
        suite = demo_suite(m.tokenizer)
        families, task = DEMO_FAMILIES[suite], CIRCUIT_TASK[suite]
        run.params({"suite": suite, "families": list(families), "circuit_task": task})
        log(f"evaluating {len(families)} families at {SHOTS} shots ({n} prompts per cell) ...")
        bos = m.prompt_builder().prepend_bos
        with tqdm(total=len(families) * len(SHOTS), desc="evaluating", unit="cell") as bar:
            # a bar with the cell being scored and the time left: this step takes minutes

            def step(what: str) -> None:  # called as each cell starts: count the one before
                bar.update(1 if bar.postfix else 0)
                bar.set_postfix_str(what)

            result = evaluate_model(
                m.hf_model,
                m.tokenizer,
                families,
                SHOTS,
                n,
                seed=10_007 + seed,
                prepend_bos=bos,
                progress=step,
            )
            bar.update()
        by_shots = pd.DataFrame(
            [
                {"task": fam, "kind": r["kind"], "shots": int(k), "accuracy": acc}
                for fam, r in result["families"].items()
                for k, acc in r["shots"].items()
            ]
        )
        run.table("eval_by_shots", by_shots)
        run.figure(
            "icl_curve",
            integer_axes(
                px.line(
                    by_shots,
                    x="shots",
                    y="accuracy",
                    color="task",
                    markers=True,
                    title="Accuracy by number of demonstrations",
                    range_y=[0, 1.02],
                )
            ),
        )
        log("looking inside one prompt ...")
        text, lens, attention = first_look(m, task, seed=seed)
        run.table("logit_lens", lens)
        run.table("query_attention", attention)
        for name, fig in _look_figures(lens, attention).items():
            run.figure(name, integer_axes(fig))
        summary = _eval_summary(by_shots)
        report = _report(model, by_shots, text, lens, attention)
        if circuit:
            from circuits.icl_circuit import IclCircuit

            log(f"the ICL circuit on {task} ({circuit_prompts} prompts) ...")
            analysis = IclCircuit(
                shots=4,
                prompts=circuit_prompts,
                seed=seed,
                ablation_prompts=min(ablation_prompts, circuit_prompts),
            )
            found = analysis.run(m, task, log=log)
            write_circuit(run, found)
            circuit_summary = found.summary()
            summary.update({f"circuit_{k}": v for k, v in circuit_summary.items()})
            report += "\n" + circuit_report(
                found,
                circuit_summary,
                model,
                task,
                4,
                circuit_prompts,
                analysis.summarize.m,
                level=2,
            )
        run.summary(summary)
        run.report(report)
        export_static(run.path, log=log)
    return run.path


def _eval_summary(by_shots: pd.DataFrame) -> dict:
    """Per family: 0-shot and 8-shot accuracy and the gain between them."""
    out = {}
    for fam, rows in by_shots.groupby("task", sort=False):
        acc = dict(zip(rows.shots, rows.accuracy))
        lo, hi = acc.get(0), acc.get(max(acc))
        out[f"{fam}_0shot"], out[f"{fam}_{max(acc)}shot"] = lo, hi
        out[f"{fam}_icl_gain"] = hi - lo
    return out


def _look_figures(lens: pd.DataFrame, attention: pd.DataFrame) -> dict:
    row = "L" + attention["layer"].astype(str) + "H" + attention["head"].astype(str)
    grid = attention.assign(row=row).pivot(index="row", columns="position", values="weight")
    tokens = attention.drop_duplicates("position").sort_values("position")
    return {
        "logit_lens": px.line(
            lens,
            x="layer",
            y="prob",
            color="label",
            markers=True,
            title="Logit lens at the query forerunner s_q: probability of each label",
        ),
        "query_attention": px.imshow(
            grid,
            aspect="auto",
            color_continuous_scale="Blues",
            labels={"x": "key position", "y": "head", "color": "attention"},
            x=[f"{p}:{t}" for p, t in zip(tokens.position, tokens.token)],
            title="Attention from s_q, every layer and head",
        ),
    }


def _report(
    model: str, by_shots: pd.DataFrame, text: str, lens: pd.DataFrame, att: pd.DataFrame
) -> str:
    shots = sorted(by_shots.shots.unique())
    lines = [
        f"# iclscope demo: {model}",
        "",
        "## Held-out evaluation",
        "",
        "Accuracy of the first answer token, by number of demonstrations "
        "(classification: argmax over the prompt's label words).",
        "",
        "| family | kind | " + " | ".join(f"{k}-shot" for k in shots) + " |",
        "|---|---|" + "---|" * len(shots),
    ]
    for fam, rows in by_shots.groupby("task", sort=False):
        cells = " | ".join(f"{a:.3f}" for a in rows.sort_values("shots").accuracy)
        lines.append(f"| {fam} | {rows.kind.iloc[0]} | {cells} |")
    gains = by_shots.pivot(index="task", columns="shots", values="accuracy")
    gains = (gains[max(shots)] - gains[min(shots)]).sort_values(ascending=False)
    learned = [f for f, g in gains.items() if g >= 0.2]
    lines += [
        "",
        (
            f"Learned in context (a gain of 0.2 or more from {min(shots)} to "
            f"{max(shots)} shots): {', '.join(learned)}."
            if learned
            else "No family gains 0.2 or more from its demonstrations."
        ),
    ]
    answer = lens[lens.is_answer]
    first_layers = answer[answer["rank"] == 0].layer
    when = (
        f"ranks the answer first from layer {first_layers.min()} on"
        if len(first_layers)
        else "never ranks the answer first"
    )
    top = att.loc[att.groupby(["layer", "head"]).weight.idxmax()]
    top = top.sort_values("weight", ascending=False).head(5)
    lines += [
        "",
        "## One prompt, inside",
        "",
        "```",
        text,
        "```",
        "",
        f"The logit lens {when} "
        f"(0 = embeddings; probability at the last layer "
        f"{answer.prob.iloc[-1]:.3f}).",
        "",
        "Strongest attention from the query forerunner s_q:",
        "",
    ]
    for _, r in top.iterrows():
        lines.append(
            f"- L{r['layer']}H{r['head']} -> position {r.position} `{r.token}` "
            f"({r.role or 'template'}), weight {r.weight:.2f}"
        )
    return "\n".join(lines) + "\n"
