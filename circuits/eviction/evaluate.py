"""Accuracy against eviction rate: every method, every rate, from one prefill per chunk.

For each left-padded chunk of prompts: one prefill (:func:`~circuits.eviction.apply.prefill`),
every method scores the keys once per layer, and each (method, rate) decodes only the final rows
against the context cache with its flags. Accuracy is the family's own: argmax over the label
words for classification, over the vocabulary (the answer's first token) otherwise.

Tables (pandas, tidy):

* ``curves``: setting, method, rate, accuracy, measured eviction rate, prompts;
* ``by_head``: setting, method, rate, layer, head, evicted share and the share of the final
  rows' full attention that fell on evicted keys (``attention_lost``);
* ``tokens``: for the first prompt, per method at the middle rate, each token and the share of
  (layer, head) pairs that keep it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from circuits.eviction.apply import Prefill, decode, prefill
from circuits.eviction.gate import GateStack
from circuits.eviction.methods import METHODS, EvictionMethod
from circuits.eviction.train import final_start
from interp.prompts import PromptBatch

FULL = "full"
GATE = "gate"
GATE_WINDOW = "gate_window"
"""The gate's top budget after the last ``window`` context tokens (SnapKV's window)."""
GATE_POOLED = "gate_pooled"
"""The gate's top keys over all layers and heads together (its own split between heads)."""


def predictions(logits: Float[Tensor, "batch d_vocab"], label_ids: list[list[int]]) -> Tensor:
    """Argmax over each row's label words where it has some, else over the vocabulary."""
    preds = logits.argmax(-1)
    for i, labels in enumerate(label_ids):
        if labels:
            preds[i] = labels[int(logits[i, labels].argmax())]
    return preds


def method_flags(method: EvictionMethod, pre: Prefill, rates, n_heads: int) -> dict:
    """``{rate: (layer, batch, head, pos) flags}`` from one score per layer."""
    scores = []
    for layer, pattern in enumerate(pre.patterns):
        seen = pattern if method.needs_attention else _heads(pre, n_heads)
        scores.append(method.score(seen, pre.queries, pre.context, layer))
    return {
        r: torch.stack([method.keep(s, pre.context, r, n_heads) for s in scores]) for r in rates
    }


def _heads(pre: Prefill, n_heads: int):
    """A stand-in pattern for methods that read none (only its head count is used)."""
    return torch.zeros(pre.tokens.shape[0], n_heads, 1, 1)


@dataclass
class EvictionResult:
    curves: pd.DataFrame
    by_head: pd.DataFrame
    tokens: pd.DataFrame
    gate: dict = field(default_factory=dict)  # setting -> {rate, accuracy}
    gate_rows: dict = field(default_factory=dict)  # setting -> each prompt's measured rate


@dataclass
class EvictionEval:
    """Accuracy of each method at each eviction rate, eviction simulated after the prefill."""

    methods: tuple[str, ...] = tuple(METHODS)
    rates: tuple[float, ...] = (0.25, 0.5, 0.75)
    chunk: int = 8
    window: int = 32

    def run(
        self,
        hf,
        settings: dict[str, PromptBatch],
        tokenizer,
        gate: GateStack | None = None,
        log=print,
        executor=None,
        model: str | None = None,
    ) -> EvictionResult:
        """Every chunk of prompts through ``executor`` (:meth:`~interp.execution.
        LocalExecutor.map`; default: the enclosing ``using`` block's, else here on ``hf``).
        Ray workers load the model themselves, by ``model`` (its registry name or folder;
        default: the folder ``hf`` came from); the results come back in chunk order, so the
        tables are the local ones."""
        from interp.execution import default_executor

        executor = executor or default_executor()
        # the folder ``hf`` was loaded from, where the caller does not name the model
        work = EvictionChunks(model or hf.name_or_path, settings, self, gate)
        spans = work.spans()

        def done(index, _):
            setting, i, step = spans[index]
            n = len(settings[setting])
            log(f"{setting}: {min(i + step, n)}/{n} prompts")

        parts = executor.map(work, len(spans), loaded=(hf, tokenizer), done=done)
        curves, heads, tokens, gate_out, gate_rows = [], [], [], {}, {}
        for setting in settings:
            hits, rates_seen = defaultdict(list), defaultdict(list)
            lost, evicted = defaultdict(list), defaultdict(list)
            for (where, _, _), part in zip(spans, parts):
                if where != setting:
                    continue
                for key, h in part["hits"].items():
                    hits[key] += h
                for key, (r, e, a) in part["variants"].items():
                    rates_seen[key] += r
                    evicted[key].append(e)
                    lost[key].append(a)
                tokens += part["tokens"]
            for (name, rate), h in hits.items():
                row = dict(
                    setting=setting,
                    method=name,
                    rate=rate,
                    accuracy=sum(h) / len(h),
                    measured_rate=_mean(rates_seen.get((name, rate), [0.0])),
                    prompts=len(h),
                )
                if rate is None:
                    gate_out[setting] = dict(rate=row["measured_rate"], accuracy=row["accuracy"])
                    gate_rows[setting] = list(rates_seen.get((name, rate), []))
                    continue
                curves.append(row)
            for (name, rate), chunks in evicted.items():
                e = torch.stack(chunks).mean(0)
                a = torch.stack(lost[(name, rate)]).mean(0)
                for layer in range(e.shape[0]):
                    for head in range(e.shape[1]):
                        heads.append(
                            dict(
                                setting=setting,
                                method=name,
                                rate=rate,
                                layer=layer,
                                head=head,
                                evicted=float(e[layer, head]),
                                attention_lost=float(a[layer, head]),
                            )
                        )
        return EvictionResult(
            pd.DataFrame(curves), pd.DataFrame(heads), pd.DataFrame(tokens), gate_out, gate_rows
        )


def load_eager_model(model: str):
    """``(hf, tokenizer)`` as a Ray worker loads them for :class:`EvictionChunks`."""
    from circuits.eviction.prompts import load_eager

    hf, tokenizer, _ = load_eager(model)
    return hf, tokenizer


@dataclass
class EvictionChunks:
    """:class:`EvictionEval`'s chunks of prompts as :class:`~interp.execution.Work`:
    chunk ``index`` is one prefill and every (method, rate)'s decode of a slice of one
    setting's prompts; its result holds the hits, measured rates and per-head shares that
    :meth:`EvictionEval.run` adds up (and the first slice's token rows)."""

    model: str
    settings: dict[str, PromptBatch]
    evaluation: EvictionEval
    gate: GateStack | None = None

    @property
    def key(self):
        return ("eager", self.model)

    def load(self):
        return load_eager_model(self.model)

    def spans(self) -> list[tuple[str, int, int]]:
        """``(setting, first prompt, prompts)`` of each chunk, in order."""
        out = []
        for setting, batch in self.settings.items():
            # the prefill keeps every layer's attention: fewer long prompts at a time
            chunk = self.evaluation.chunk
            step = max(1, min(chunk, chunk * 512 // batch.tokens.shape[1]))
            out += [(setting, i, step) for i in range(0, len(batch), step)]
        return out

    @torch.no_grad()
    def __call__(self, loaded, index: int) -> dict:
        hf, tokenizer = loaded
        ev, gate = self.evaluation, self.gate
        setting, i, step = self.spans()[index]
        sub = _slice(self.settings[setting], i, i + step)
        n_heads = hf.config.num_attention_heads
        pre = prefill(hf, sub.tokens, sub.attention_mask, final_start(sub))

        def correct(logits) -> list:
            return (predictions(logits, sub.label_ids) == sub.answer_ids).tolist()

        hits = {(FULL, 0.0): correct(pre.full_logits)}
        variants = {}
        for name in ev.methods:
            for r, f in method_flags(METHODS[name](), pre, ev.rates, n_heads).items():
                variants[(name, r)] = f
        if gate is not None:
            for r in ev.rates:
                variants[(GATE, r)] = gate.keep(pre.hidden, pre.context, r, pre.queries)
                variants[(GATE_WINDOW, r)] = gate.keep(
                    pre.hidden, pre.context, r, pre.queries, window=ev.window
                )
                variants[(GATE_POOLED, r)] = gate.keep_pooled(
                    pre.hidden, pre.context, r, pre.queries
                )
            variants[(GATE, None)] = gate.flags(pre.hidden, pre.context, pre.queries)
        out, tokens = {}, []
        for key, flags in variants.items():
            flags = flags.detach()
            hits[key] = correct(decode(hf, pre, flags))
            out[key] = (_row_rates(flags, pre).tolist(), *_per_head(flags, pre))
            if i == 0 and ev.rates and key[1] == ev.rates[len(ev.rates) // 2]:
                tokens += _token_rows(setting, key[0], flags, pre, tokenizer)
        return {"hits": hits, "variants": out, "tokens": tokens}


def variant_count(methods, rates, gate: bool) -> int:
    """Decodes per chunk: each (method, rate), and with a gate its top budget per head, its
    windowed budget and its pooled budget at each rate, and its own threshold."""
    return len(methods) * len(rates) + (3 * len(rates) + 1 if gate else 0)


def prompt_floats(cfg, n_pos: int, variants: int) -> int:
    """Floats one prompt of a chunk holds at its peak (what ``--dry-run`` sizes a chunk by):
    the prefill keeps every layer's attention pattern (layers x heads x pos^2, the big one,
    kept for the methods) and input (layers x pos x d_model), the context's keys and values
    twice (the cache and one decode's copy), every variant's flags (layers x heads x pos
    each), on top of one layer's live activations (:func:`~interp.engine.batched.
    row_floats`, at most: the prefill reads out the last position only)."""
    from interp.engine.batched import row_floats

    kv = 2 * cfg.n_layers * n_pos * cfg.n_kv_heads * cfg.d_head
    kept = cfg.n_layers * (cfg.n_heads * n_pos * n_pos + n_pos * cfg.d_model)
    flags = variants * cfg.n_layers * cfg.n_heads * n_pos
    return kept + 2 * kv + flags + row_floats(cfg, n_pos)


def _slice(batch: PromptBatch, a: int, b: int) -> PromptBatch:
    return PromptBatch(
        batch.tokens[a:b],
        batch.attention_mask[a:b],
        batch.annotations[a:b],
        batch.answer_ids[a:b],
        batch.label_ids[a:b],
        batch.texts[a:b],
        batch.padding_side,
    )


def _mean(xs) -> float:
    return float(sum(xs) / len(xs)) if len(xs) else 0.0


def _row_rates(flags, pre: Prefill) -> Tensor:
    """Measured eviction rate per row: evicted context keys over all (layer, head)."""
    ctx = pre.context[None, :, None].float()
    per_row = ctx.sum((0, 2, 3)) * flags.shape[0] * flags.shape[2]
    return ((1 - flags) * ctx).sum((0, 2, 3)) / per_row


def _per_head(flags, pre: Prefill) -> tuple[Tensor, Tensor]:
    """(layer, head) means over the chunk: evicted share of the context, and the share of the
    final rows' full attention that lands on evicted keys."""
    ctx = pre.context[None, :, None].float()
    evicted = ((1 - flags) * ctx).sum(-1) / ctx.sum(-1)  # (layer, batch, head)
    future = torch.stack([p[:, :, pre.start :].mean(-2) for p in pre.patterns])
    lost = ((1 - flags) * ctx * future).sum(-1)
    return evicted.mean(1), lost.mean(1)


def _token_rows(setting, method, flags, pre: Prefill, tokenizer) -> list[dict]:
    """The first prompt's tokens with the share of (layer, head) pairs keeping each."""
    kept = flags[:, 0].float().mean((0, 1))
    rows = []
    for pos in range(pre.tokens.shape[1]):
        if not pre.queries[0, pos]:
            continue
        rows.append(
            dict(
                setting=setting,
                method=method,
                pos=pos,
                token=tokenizer.decode([int(pre.tokens[0, pos])]),
                kept=float(kept[pos]),
                context=bool(pre.context[0, pos]),
            )
        )
    return rows
