"""``iclscope demo``: evaluate a model on the task families and look inside one prompt.

The first look is two views every ICL analysis starts from: the logit lens of the answer at the
query forerunner ``s_q`` layer by layer, and where each head at ``s_q`` attends.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import plotly.express as px
import torch

from interp.models import load_model
from interp.organism.evaluate import SHOTS, evaluate_organism
from interp.prompts import token_roles
from interp.runs import RunWriter
from interp.tasks.suite import build_family_batch

TARGETS = [
    ("arbitrary-label classification, 8-shot", "classification_arbitrary", "8", 0.85),
    ("function tasks, 8-shot", "function_tasks", "8", 0.85),
    ("ranking precision@1, 10 documents", "ranking_p_at_1", None, 0.70),
    ("key-value retrieval, 256+ tokens", "kv_retrieval_acc", None, 0.85),
]


def _eval_tables(result: dict) -> pd.DataFrame:
    rows = [
        {"task": key, "shots": int(k), "accuracy": acc}
        for key in ("classification_semantic", "classification_arbitrary", "function_tasks")
        for k, acc in result[key].items()
    ]
    rows += [
        {"task": fam, "shots": int(k), "accuracy": acc}
        for fam, by_k in result["function_tasks_per_task"].items()
        for k, acc in by_k.items()
    ]
    return pd.DataFrame(rows)


def first_look(model, task: str = "sentiment_arbitrary", shots: int = 4, seed: int = 0):
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
            lens_rows.append({
                "layer": layer, "label": model.tokenizer.convert_ids_to_tokens(lab),
                "is_answer": lab == int(batch.answer_ids[0]), "prob": float(probs[lab]),
                "rank": int((probs > probs[lab]).sum()),
            })  # fmt: skip
    roles = token_roles(ann, ann.length)
    att_rows = [
        {"layer": l, "head": h, "position": p, "token": tokens[p], "role": roles[p],
         "weight": float(cache[f"blocks.{l}.attn.hook_pattern"][0, h, ann.s_q, p])}
        for l in range(L) for h in range(model.cfg.n_heads) for p in range(ann.length)
    ]  # fmt: skip
    return batch.texts[0], pd.DataFrame(lens_rows), pd.DataFrame(att_rows)


def run_demo(out: Path, model: str = "organism", seed: int = 0, n: int = 200, log=print) -> Path:
    torch.manual_seed(seed)
    params = {"n": n, "look_task": "sentiment_arbitrary", "look_shots": 4}
    with RunWriter(out, kind="demo", model=model, task="all", seed=seed, command=sys.argv,
                   params=params) as run:  # fmt: skip
        log(f"loading {model} ...")
        m = load_model(model)
        log(f"evaluating on held-out prompts ({n} per cell) ...")
        result = evaluate_organism(m.hf_model, m.tokenizer, n=n)
        by_shots = _eval_tables(result)
        run.table("eval_by_shots", by_shots)
        main = by_shots[~by_shots.task.str.startswith("fn_")]
        run.figure("icl_curve", px.line(
            main, x="shots", y="accuracy", color="task", markers=True,
            title="Accuracy by number of demonstrations", range_y=[0, 1.02],
        ))  # fmt: skip
        log("looking inside one prompt ...")
        text, lens, attention = first_look(m, seed=seed)
        run.table("logit_lens", lens)
        run.table("query_attention", attention)
        run.figure("logit_lens", px.line(
            lens, x="layer", y="prob", color="label", markers=True,
            title="Logit lens at the query forerunner s_q: probability of each label",
        ))  # fmt: skip
        row = "L" + attention["layer"].astype(str) + "H" + attention["head"].astype(str)
        heat = attention.assign(row=row)
        grid = heat.pivot(index="row", columns="position", values="weight")
        tokens = attention.drop_duplicates("position").sort_values("position")
        run.figure("query_attention", px.imshow(
            grid, aspect="auto", color_continuous_scale="Blues",
            labels={"x": "key position", "y": "head", "color": "attention"},
            x=[f"{p}:{t}" for p, t in zip(tokens.position, tokens.token)],
            title="Attention from s_q, every layer and head",
        ))  # fmt: skip
        summary = {
            "classification_arbitrary_8shot": result["classification_arbitrary"]["8"],
            "classification_arbitrary_0shot": result["classification_arbitrary"]["0"],
            "icl_gain": result["classification_arbitrary"]["8"]
            - result["classification_arbitrary"]["0"],
            "classification_semantic_0shot": result["classification_semantic"]["0"],
            "function_tasks_8shot": result["function_tasks"]["8"],
            "function_tasks_0shot": result["function_tasks"]["0"],
            "ranking_p_at_1": result["ranking_p_at_1"],
            "kv_retrieval_acc": result["kv_retrieval_acc"],
        }
        run.summary(summary)
        run.report(_report(model, result, text, lens, attention))
    return run.path


def _report(model: str, result: dict, text: str, lens: pd.DataFrame, att: pd.DataFrame) -> str:
    lines = [f"# iclscope demo: {model}", "", "## Held-out evaluation", "",
             "| measure | " + " | ".join(f"{k}-shot" for k in SHOTS) + " |",
             "|---|" + "---|" * len(SHOTS)]  # fmt: skip
    for key in ("classification_semantic", "classification_arbitrary", "function_tasks"):
        lines.append(f"| {key} | " + " | ".join(f"{v:.3f}" for v in result[key].values()) + " |")
    lines += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    for name, key, shots, goal in TARGETS:
        value = result[key][shots] if shots else result[key]
        lines.append(f"| {name} | {value:.3f} | >= {goal} | {'yes' if value >= goal else 'no'} |")
    gain = result["classification_arbitrary"]["8"] - result["classification_arbitrary"]["0"]
    lines += ["", f"ICL gain on arbitrary labels (8-shot minus 0-shot): {gain:.3f}.", ""]
    answer = lens[lens.is_answer]
    first_layers = answer[answer["rank"] == 0].layer
    when = (f"ranks the answer first from layer {first_layers.min()} on"
            if len(first_layers) else "never ranks the answer first")  # fmt: skip
    top = att.loc[att.groupby(["layer", "head"]).weight.idxmax()]
    top = top.sort_values("weight", ascending=False).head(5)
    lines += ["## One prompt, inside", "", "```", text, "```", "",
              f"The logit lens {when} "
              f"(0 = embeddings; probability at the last layer "
              f"{answer.prob.iloc[-1]:.3f}).", "",
              "Strongest attention from the query forerunner s_q:", ""]  # fmt: skip
    for _, r in top.iterrows():
        lines.append(f"- L{r['layer']}H{r['head']} -> position {r.position} `{r.token}` "
                     f"({r.role or 'template'}), weight {r.weight:.2f}")  # fmt: skip
    return "\n".join(lines) + "\n"
