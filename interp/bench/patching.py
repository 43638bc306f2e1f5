"""``iclscope bench patching``: our engine against TransformerLens and nnsight, in one process.

Two workloads on the same clean/corrupted prompts:

* **A**: every head of every layer, patched over all positions, on 8 prompt pairs (``pairs``);
* **B**: every head of every layer at each position separately, on 1 pair (thousands of
  components: the classic fine-grained sweep). ``positions=N`` keeps N positions spread evenly
  from the first to the last, so a 30-layer model's sweep fits in minutes on a CPU; the
  TransformerLens reference then runs the same cells through its ``index_df``.

Each runs four ways: ``transformer_lens.patching`` (one forward per component), the fastest
nnsight form we could write (all rows of a chunk stacked in one trace, each layer's patches one
indexed assignment), our engine without resuming, and our engine in full (resuming at the
earliest edited layer and position). Three plain Hugging Face forwards over the same rows, in
the same chunks, with the faster of SDPA and eager attention, set the scale:

* the **plain forward** (logits at every position, as the nnsight form computes them);
* the **read-out forward**, logits at the last position only: the engine with the same rows and
  no edits, against it, is the engine's overhead (``hook_overhead``);
* the **limit**, each row's suffix from its resume position only, attending to its prompt's
  cached prefix, logits at the last position: what the engine would cost if it skipped the
  reused prefix and nothing else (``limit_ratio`` is engine / limit; below 1, the engine also
  skips the layers before each row's first edit).

All of them are timed in turns, after a warm-up call each, so the drifts of a shared machine hit
every contender alike; times are medians over repeats; results are compared element-wise.
"""

from __future__ import annotations

from unittest import mock

import torch

from interp.bench.timing import interleaved
from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, PlanRow
from interp.engine.sweeps import head_sweep
from interp.models import load_model
from interp.models.fast_path import engine_path
from interp.tasks.suite import build_pair_batches, default_family, label_mode

BENCH_FAMILIES = ("nl_kind_natural", "sentiment_semantic")
"""The model's own suite: short natural prompts on a real model, the organism's otherwise."""


@torch.no_grad()
def _nnsight_heads(nn, clean_z, tokens, rows, s_q, good, bad, chunk):
    """Fastest nnsight form: per chunk, one trace; per layer, one indexed assignment into the
    output projection's input for every row patching that layer."""
    cfg = nn.cfg
    out = []
    layers = nn.nn.model.layers
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        prompt = torch.tensor([r[0] for r in part])
        per_layer = []
        for layer in range(cfg.n_layers):
            sel = [(i, r) for i, r in enumerate(part) if r[1] == layer]
            idx = torch.tensor([i for i, _ in sel], dtype=torch.long)
            per_layer.append((idx, [r for _, r in sel]))
        result = {}
        with nn.nn.trace(tokens[prompt]):
            for layer in range(cfg.n_layers):
                idx, sel = per_layer[layer]
                if len(sel) == 0:
                    continue
                z = layers[layer].self_attn.o_proj.input
                heads = z.view(*z.shape[:2], cfg.n_heads, cfg.d_head)
                src = clean_z[layer]
                for pos in {r[3] for r in sel}:
                    keep = [k for k, r in enumerate(sel) if r[3] == pos]
                    rows_k = idx[keep]
                    head_k = torch.tensor([sel[k][2] for k in keep])
                    prom_k = torch.tensor([sel[k][0] for k in keep])
                    if pos is None:
                        heads[rows_k, :, head_k] = src[prom_k, :, head_k]
                    else:
                        heads[rows_k, pos, head_k] = src[prom_k, pos, head_k]
            result["logits"] = nn.nn.lm_head.output
        logits = result["logits"][torch.arange(len(part)), s_q[prompt]]
        out.append(
            logits.gather(1, good[prompt, None])[:, 0] - logits.gather(1, bad[prompt, None])[:, 0]
        )
    return torch.cat(out)


def spread_positions(n_pos: int, keep: int | None) -> list[int]:
    """``keep`` positions spread evenly over ``range(n_pos)``, first and last included."""
    if keep is None or keep >= n_pos:
        return list(range(n_pos))
    if keep == 1:
        return [n_pos - 1]
    return sorted({round(i * (n_pos - 1) / (keep - 1)) for i in range(keep)})


def _transformer_lens(tl, clean, corrupted, per_position: bool, positions: list[int]):
    import pandas as pd
    from transformer_lens import patching

    s_q = clean.s_q
    rows = torch.arange(len(clean))

    def metric(logits):
        at = logits[rows, s_q]
        return (at[rows, clean.answer_ids] - at[rows, corrupted.answer_ids]).mean()

    _, cache = tl.bridge.run_with_cache(clean.tokens)
    cfg = tl.cfg
    # its progress bar off, as ours is: the bar would interleave with the results
    with mock.patch.object(patching, "tqdm", lambda items, **_: items):
        if not per_position:
            return patching.get_act_patch_attn_head_out_all_pos(
                tl.bridge, corrupted.tokens, cache, metric
            )
        # the same (layer, pos, head) cells as ours, in TransformerLens's own order
        cells = [
            (layer, pos, head)
            for layer in range(cfg.n_layers)
            for pos in positions
            for head in range(cfg.n_heads)
        ]
        return patching.get_act_patch_attn_head_out_by_pos(
            tl.bridge,
            corrupted.tokens,
            cache,
            metric,
            index_axis_names=None,
            index_df=pd.DataFrame(cells, columns=["layer", "pos", "head"]),
        )


def _plain(hf, tokens, chunk, keep: int = 0):
    """A plain forward over ``tokens`` in chunks; ``keep``: logits at the last ``keep``
    positions only (0: every position)."""
    with torch.no_grad():
        for start in range(0, tokens.shape[0], chunk):
            hf(input_ids=tokens[start : start + chunk], logits_to_keep=keep)


def _fastest_attention(hf, run) -> dict:
    """``run`` under SDPA and under eager attention: {implementation: callable}."""

    def under(impl):
        def go():
            before = hf.config._attn_implementation
            hf.set_attn_implementation(impl)
            try:
                run()
            finally:
                hf.set_attn_implementation(before)

        return go

    return {impl: under(impl) for impl in ("sdpa", "eager")}


def _suffix_groups(hf, tokens, prompts: list[int], starts: list[int], chunk: int):
    """For the limit: rows grouped by (prompt, resume position), each group's prefix keys and
    values computed once, beforehand (they are the reused part)."""
    from itertools import groupby

    groups = []
    keyed = sorted(zip(prompts, starts))
    with torch.no_grad():
        for (prompt, start), same in groupby(keyed):
            n = len(list(same))
            prefix = None
            if start:
                prefix = hf(input_ids=tokens[prompt : prompt + 1, :start], use_cache=True).cache
            for lo in range(0, n, chunk):
                groups.append((prompt, start, min(chunk, n - lo), prefix))
    return groups


def _limit(hf, tokens, groups):
    """Each row's suffix alone, attending to its prompt's cached prefix; logits at the end."""
    from transformers import DynamicCache

    with torch.no_grad():
        for prompt, start, rows, prefix in groups:
            cache = None
            if prefix is not None:
                cache = DynamicCache(
                    ddp_cache_data=[
                        (layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1))
                        for layer in prefix.layers
                    ]
                )
            suffix = tokens[prompt : prompt + 1, start:].expand(rows, -1)
            hf(input_ids=suffix, cache=cache, logits_to_keep=1)


def bench_patching(
    model: str = "organism",
    repeats: int = 3,
    shots: int = 4,
    positions: int | None = None,
    pairs: int = 8,
    log=print,
    task: str | None = None,
) -> dict:
    """Measure workloads A and B four ways; returns the benchmark's JSON object.
    ``pairs``: workload A's prompt pairs; ``positions`` caps workload B's positions (spread
    evenly; ``None``: every position); ``task``: a classification family [the model's own
    sentiment family]."""
    tl = load_model(model)
    nn = load_model(model, backend="nnsight")
    family = task or default_family(tl.tokenizer, *BENCH_FAMILIES)
    return {
        name: _workload(tl, nn, name, family, n_pairs, per_position, shots, repeats, positions, log)
        for name, n_pairs, per_position in (("A", pairs, False), ("B", 1, True))
    }


def _workload(
    tl, nn, name, family, n_pairs, per_position, shots, repeats, keep_positions, log
) -> dict:
    cfg = tl.cfg
    builder = tl.prompt_builder(labels=label_mode(family))
    clean, corrupted = build_pair_batches(builder, family, n_pairs, shots, seed=1)
    n_pos = clean.tokens.shape[1]
    positions = spread_positions(n_pos, keep_positions)
    plan = head_sweep(cfg, range(n_pairs), n_pos=n_pos if per_position else None)
    if per_position:
        plan = InterventionPlan(
            [r for r in plan.rows if dict(r.labels)["position"] in positions], base=plan.base
        )
    engine = Engine(tl)
    chunk = engine.rows_per_chunk(n_pos)
    # the same rows, no edits, no resuming: the engine's own cost over a plain forward
    unedited = InterventionPlan([PlanRow(r.prompt, (), r.labels) for r in plan.rows])
    log(
        f"workload {name}: {len(plan)} rows, {n_pos} tokens"
        + (f" ({len(positions)} positions patched)" if per_position else "")
        + f", chunks of {chunk}"
    )
    run = lambda resume: engine.run(plan, clean, corrupted, resume=resume, progress=False)
    row_tokens = corrupted.tokens[torch.tensor([r.prompt for r in plan.rows])]
    hf = tl.plain_model()
    starts = [pos for pos, _ in engine.layout(plan, clean, corrupted).starts]
    groups = _suffix_groups(hf, corrupted.tokens, [r.prompt for r in plan.rows], starts, chunk)
    plain = _fastest_attention(hf, lambda: _plain(hf, row_tokens, chunk))
    read_out = _fastest_attention(hf, lambda: _plain(hf, row_tokens, chunk, keep=1))
    limit = _fastest_attention(hf, lambda: _limit(hf, corrupted.tokens, groups))
    _, clean_cache = tl.run_with_cache(
        clean.tokens, [f"blocks.{l}.attn.hook_z" for l in range(cfg.n_layers)]
    )
    clean_z = [clean_cache[f"blocks.{l}.attn.hook_z"] for l in range(cfg.n_layers)]
    nn_rows = [
        (r.prompt, dict(r.labels)["layer"], dict(r.labels)["head"], dict(r.labels).get("position"))
        for r in plan.rows
    ]
    # every contender in the same rounds; the floor is a plain forward with the faster of its
    # SDPA and eager attention
    times, outs = interleaved(
        {
            "engine": lambda: run(True),
            "engine_no_reuse": lambda: run(False),
            "engine_no_edits": lambda: engine.run(
                unedited, clean, corrupted, resume=False, progress=False
            ),
            **{f"plain_{k}": f for k, f in plain.items()},
            **{f"read_out_{k}": f for k, f in read_out.items()},
            **{f"limit_{k}": f for k, f in limit.items()},
            "transformer_lens": lambda: _transformer_lens(
                tl, clean, corrupted, per_position, positions
            ),
            "nnsight": lambda: _nnsight_heads(
                nn,
                clean_z,
                corrupted.tokens,
                nn_rows,
                clean.s_q,
                clean.answer_ids,
                corrupted.answer_ids,
                chunk,
            ),
        },
        repeats,
    )
    t_full, t_noreuse = times["engine"], times["engine_no_reuse"]
    ours, ours_noreuse = outs["engine"], outs["engine_no_reuse"]
    fastest = lambda kind: min(times[f"{kind}_sdpa"], times[f"{kind}_eager"])
    t_plain, t_read, t_limit = fastest("plain"), fastest("read_out"), fastest("limit")
    t_tl, ref = times["transformer_lens"], outs["transformer_lens"]
    t_nn, nn_values = times["nnsight"], outs["nnsight"]
    keys = ["layer", "position", "head"] if per_position else ["layer", "head"]
    ref_grid = ref.flatten().double()
    grids = [
        torch.tensor(t.groupby(keys).metric.mean().values)
        for t in (ours, ours_noreuse, ours.assign(metric=nn_values.detach().numpy()))
    ]

    result = {
        "engine_path": engine_path(hf.config) if engine.uses_native(plan) else "hooked",
        "rows": len(plan),
        "pairs": n_pairs,
        "tokens": n_pos,
        **({"positions": positions} if per_position else {}),
        "seconds": {
            "transformer_lens": t_tl,
            "nnsight": t_nn,
            "engine_no_reuse": t_noreuse,
            "engine": t_full,
            "engine_no_edits": times["engine_no_edits"],
            "plain_forward": t_plain,
            "read_out_forward": t_read,
            "limit": t_limit,
        },
        "speedup_vs_transformer_lens": t_tl / t_full,
        "speedup_vs_nnsight": t_nn / t_full,
        "hook_overhead": times["engine_no_edits"] / t_read,
        "limit_ratio": t_full / t_limit,
        "reuse_gain": t_noreuse / t_full,
        "max_abs_diff": max(float((g - ref_grid).abs().max()) for g in grids),
    }
    log(f"  {result}")
    return result
