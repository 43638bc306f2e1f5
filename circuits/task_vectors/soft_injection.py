"""Soft injection of task embeddings into attention heads (Park & Rhee, 2025).

At the last prompt token, before each layer's output projection, every head's output is
pulled towards that task's embedding by a learned weight:

    z'[l, h, last] = (1 - alpha[l, h]) * z[l, h, last] + alpha[l, h] * te[l, h]
    alpha = sigmoid(theta),  theta: (layer, head), initialised at 0 (alpha = 0.5)

Only ``theta`` is trained (Adam; the model is frozen), on 0-shot prompts, with the
cross-entropy of the answer's first token. ``alpha`` can be learned per task or shared by
several tasks (each prompt then injects its own task's ``te`` with the shared weights).

The seed: with theta at 0 (the paper's start) every fit begins at the same point, so the seed
reaches a fit only through the order in which training prompts are drawn into batches; when a
batch holds every training prompt it has no effect beyond the order of rows in the batch
(float rounding, which Adam can amplify on heads whose gradient is ~0). ``init_std`` > 0 draws
theta's start from N(0, init_std^2) with the seed as well (not the paper's setting).

Learned alpha saturates (many heads end near 0 or 1), so a ranking by alpha from one fit says
little; :func:`stable_heads` and :func:`mean_jaccard` judge which heads stay above a threshold
across fits at other learning rates and seeds.

The injection point is ``blocks.{l}.attn.hook_task_inject``. Training runs the model's own
modules with a differentiable pre-hook on each output projection (gradients flow to ``theta``
through the injection alone) and reads logits only at the last token. Nothing before the last
token depends on ``alpha``, so a fit computes every training prompt's prefix once
(:class:`PrefixCache`) and each step runs the last token alone on its keys and values: the
same logits up to float rounding (~1e-6), about half the time per step on SmolLM2.
Evaluation writes the learned ``alpha`` as one :class:`~interp.engine.plan.InterventionPlan`
(a fractional ``Patch`` per head) that the engine applies with its mix kernel on either
backend; the tests check that both paths give the same logits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from circuits.task_vectors.function_vector import out_proj
from interp.engine.batched import Engine
from interp.engine.plan import InterventionPlan, Patch, PlanRow
from interp.models import HookedModel
from interp.prompts import PromptBatch

INJECT = "blocks.{layer}.attn.hook_task_inject"


def soft_inject(
    z: Float[Tensor, "batch pos head d_head"],
    last: Int[Tensor, " batch"],
    alpha: Float[Tensor, "*batch head"],
    te: Float[Tensor, "*batch head d_head"],
) -> Float[Tensor, "batch pos head d_head"]:
    """``z`` with each row's ``last`` position mixed towards ``te`` by ``alpha`` (per head;
    per row too when they carry a batch axis). Out of place, so gradients reach ``alpha``."""
    rows = torch.arange(z.shape[0], device=z.device)
    a = alpha.to(z.dtype)[..., None]
    mixed = (1 - a) * z[rows, last] + a * te.to(z.dtype)
    out = z.clone()
    out[rows, last] = mixed
    return out


def inject_hooks(
    alpha: Float[Tensor, "layer head"], te: Float[Tensor, "*batch layer head d_head"], last
) -> list[tuple[str, Callable]]:
    """Hooks on ``hook_task_inject`` of every layer, for :meth:`HookedModel.run_with_hooks`."""

    def at(layer: int):
        return lambda z, hook: soft_inject(z, last.to(z.device), alpha[layer], te[..., layer, :, :])

    return [(INJECT.format(layer=layer), at(layer)) for layer in range(alpha.shape[0])]


def injection_logits(
    model: HookedModel,
    tokens: Int[Tensor, "batch pos"],
    mask: Int[Tensor, "batch pos"],
    last: Int[Tensor, " batch"],
    alpha: Float[Tensor, "layer head"],
    te: Float[Tensor, "*batch layer head d_head"],
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at ``last`` with soft injection, differentiable in ``alpha``: the Hugging Face
    modules run with a pre-hook on each output projection (its input is ``z`` with the heads
    side by side), and only the last token's state reaches the unembedding."""
    hf = model.plain_model()  # the modules alone: no hook wrappers in the way of autograd
    with _injecting(model, hf, last, alpha, te):
        device = next(hf.parameters()).device
        hidden = hf.base_model(input_ids=tokens.to(device), attention_mask=mask.to(device))[0]
        rows = torch.arange(tokens.shape[0], device=device)
        return hf.get_output_embeddings()(hidden[rows, last.to(device)])


@contextmanager
def _injecting(model: HookedModel, hf, at: Tensor, alpha: Tensor, te: Tensor) -> Iterator[None]:
    """A pre-hook on each layer's output projection (its input is ``z`` with the heads side by
    side) that soft-injects ``te`` at positions ``at``, removed on leaving."""
    n_heads, d_head = model.cfg.n_heads, model.cfg.d_head

    def pre(layer: int):
        def hook(module, args):
            (x,) = args
            z = x.view(*x.shape[:2], n_heads, d_head)
            out = soft_inject(z, at.to(x.device), alpha[layer], te[..., layer, :, :])
            return (out.reshape(x.shape),)

        return hook

    handles = [
        out_proj(hf, layer).register_forward_pre_hook(pre(layer))
        for layer in range(model.cfg.n_layers)
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass
class PrefixCache:
    """Keys and values of every position before each training prompt's last token.

    Soft injection edits only the last prompt token, and attention is causal, so every earlier
    position is the unedited run's whatever ``alpha`` is. A fit computes those positions once
    (:meth:`build`, no gradient) and each training step runs the last token alone on top of
    them (:func:`cached_injection_logits`): one position per prompt forward and backward
    instead of the whole prompt. Rows are the items of :meth:`SoftInjection.fit` in order."""

    keys: list[Tensor]
    """Per layer ``(item, kv_head, prefix, d_head)``."""
    values: list[Tensor]
    mask: Int[Tensor, "item prefix"]
    """1 where a prefix position is a real token before the item's last token."""
    token: Int[Tensor, " item"]
    """The last prompt token of each item."""
    last: Int[Tensor, " item"]

    @classmethod
    @torch.no_grad()
    def build(
        cls, model: HookedModel, tokens: Tensor, mask: Tensor, last: Tensor, chunk: int = 64
    ) -> PrefixCache:
        """``tokens`` / ``mask``: right-padded prompts; ``last``: each one's last token."""
        hf = model.plain_model()
        device = next(hf.parameters()).device
        width = max(1, int(last.max()))
        before = (torch.arange(width)[None] < last[:, None]) & mask[:, :width].bool()
        keys: list[list[Tensor]] = []
        values: list[list[Tensor]] = []
        for lo in range(0, len(tokens), chunk):
            out = hf.base_model(
                input_ids=tokens[lo : lo + chunk, :width].to(device),
                attention_mask=before[lo : lo + chunk].long().to(device),
                use_cache=True,
            )
            cache = out[1]
            for layer, kv in enumerate(cache.layers):
                if lo == 0:
                    keys.append([])
                    values.append([])
                keys[layer].append(kv.keys)
                values[layer].append(kv.values)
        rows = torch.arange(len(tokens))
        return cls(
            [torch.cat(k) for k in keys],
            [torch.cat(v) for v in values],
            before.long(),
            tokens[rows, last],
            last.clone(),
        )


def cached_injection_logits(
    model: HookedModel,
    prefix: PrefixCache,
    rows: Int[Tensor, " batch"],
    alpha: Float[Tensor, "layer head"],
    te: Float[Tensor, "*batch layer head d_head"],
) -> Float[Tensor, "batch d_vocab"]:
    """:func:`injection_logits` for the items ``rows`` of ``prefix``, computing only their last
    token (the prefix's keys and values stand in for the earlier positions); the same logits
    up to float rounding, differentiable in ``alpha``."""
    from transformers import DynamicCache

    hf = model.plain_model()
    device = next(hf.parameters()).device
    cache = DynamicCache(config=hf.config)
    for layer, (k, v) in enumerate(zip(prefix.keys, prefix.values)):
        cache.update(k[rows], v[rows], layer)
    mask = torch.cat([prefix.mask[rows], torch.ones(len(rows), 1, dtype=torch.long)], 1)
    zero = torch.zeros(len(rows), dtype=torch.long)
    with _injecting(model, hf, zero, alpha, te):
        hidden = hf.base_model(
            input_ids=prefix.token[rows, None].to(device),
            attention_mask=mask.to(device),
            position_ids=prefix.last[rows, None].to(device),
            use_cache=True,
            **{_cache_kwarg(hf): cache},
        )[0]
        return hf.get_output_embeddings()(hidden[:, 0])


def _cache_kwarg(hf) -> str:
    """The name Hugging Face's forward takes a cache by (``cache`` from 5.x on, before that
    ``past_key_values``)."""
    import inspect

    params = inspect.signature(hf.base_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def injection_loss(model, batch: PromptBatch, theta: Tensor, te: Tensor) -> Tensor:
    """Cross-entropy of the answers' first tokens, injecting with ``alpha = sigmoid(theta)``."""
    logits = injection_logits(
        model, batch.tokens, batch.attention_mask, batch.s_q, torch.sigmoid(theta), te
    )
    return _cross_entropy(logits, batch.answer_ids)


def _cross_entropy(logits: Tensor, answers: Tensor) -> Tensor:
    """Cross-entropy in at least float32 (float64 stays float64: the gradient test needs it)."""
    wide = logits if logits.dtype == torch.float64 else logits.float()
    return F.cross_entropy(wide, answers.to(logits.device))


@dataclass
class SoftInjection:
    """Learn ``alpha = sigmoid(theta)`` over (layer, head) for one task or shared by several."""

    steps: int = 400
    lr: float = 0.2
    batch: int = 16
    seed: int = 0
    init_std: float = 0.0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def fit(
        self,
        model: HookedModel,
        tasks: dict[str, tuple[Float[Tensor, "layer head d_head"], PromptBatch]],
        log: Callable[[str], object] = lambda _: None,
    ) -> Float[Tensor, "layer head"]:
        """``tasks``: name -> (task embedding, 0-shot training prompts). More than one task
        trains one shared ``alpha``; each prompt injects its own task's embedding."""
        cfg = model.cfg
        for p in model.plain_model().parameters():  # frozen: no gradient is kept for weights
            p.requires_grad_(False)
        items = [(name, i) for name, (_, b) in tasks.items() for i in range(len(b))]
        width = max(b.tokens.shape[1] for _, b in tasks.values())
        rng = random.Random(f"soft-injection:{self.seed}")
        theta = torch.zeros(cfg.n_layers, cfg.n_heads)
        if self.init_std:
            gen = torch.Generator().manual_seed(self.seed)
            theta += self.init_std * torch.randn(theta.shape, generator=gen)
        theta.requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=self.lr)
        self.losses, t0 = [], time.monotonic()
        # every training prompt's positions before its last token, once: no step changes them
        tokens, mask, last, answers, te = _stack(tasks, items, width)
        prefix = PrefixCache.build(model, tokens, mask, last)
        index = {item: i for i, item in enumerate(items)}
        for step in range(self.steps):
            pick = rng.sample(items, min(self.batch, len(items)))
            rows = torch.tensor([index[item] for item in pick])
            alpha = torch.sigmoid(theta)
            logits = cached_injection_logits(model, prefix, rows, alpha, te[rows])
            loss = _cross_entropy(logits, answers[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.losses.append(float(loss.detach()))
            if step % 25 == 0 or step == self.steps - 1:
                log(f"  soft injection step {step + 1}/{self.steps}: loss {self.losses[-1]:.3f}")
        self.seconds = time.monotonic() - t0
        return torch.sigmoid(theta.detach())

    @staticmethod
    def plan(
        alpha: Float[Tensor, "layer head"],
        te: Float[Tensor, "layer head d_head"],
        batch: PromptBatch,
    ) -> InterventionPlan:
        """One row per prompt: a fractional patch of every head's ``hook_task_inject`` at the
        last token towards ``te`` (weights rounded to float32, as the kernel reads them)."""
        n_layers, n_heads = alpha.shape
        weights = alpha.float().clamp(0, 1).tolist()
        rows = []
        for p, last in enumerate(batch.s_q.tolist()):
            edits = tuple(
                Patch(
                    INJECT.format(layer=layer),
                    "tensor",
                    positions=(last,),
                    heads=(head,),
                    alpha=weights[layer][head],
                    tensor=f"te{layer}",
                )
                for layer in range(n_layers)
                for head in range(n_heads)
            )
            rows.append(PlanRow(p, edits))
        tensors = {f"te{layer}": te[layer] for layer in range(n_layers)}
        return InterventionPlan(rows, base="clean", tensors=tensors)

    def evaluate(
        self,
        model: HookedModel,
        alpha,
        te,
        batch: PromptBatch,
        engine: Engine | None = None,
        metric: str = "acc",
    ):
        """Per prompt, ``metric`` with the injection applied, through the engine."""
        engine = engine or Engine(model)
        table = engine.run(self.plan(alpha, te, batch), batch, metric=metric, progress=False)
        return torch.tensor(table.metric.to_numpy())


def above(alpha: Float[Tensor, "layer head"], threshold: float = 0.9) -> set[tuple[int, int]]:
    """The (layer, head) pairs whose alpha exceeds ``threshold``."""
    return {(int(layer), int(head)) for layer, head in (alpha > threshold).nonzero().tolist()}


def stable_heads(
    alphas: list[Float[Tensor, "layer head"]], threshold: float = 0.9
) -> list[tuple[int, int]]:
    """Heads above ``threshold`` in every fit, sorted: the ones a single saturated fit's
    ranking cannot single out, but that no learning rate or seed tried drops."""
    common = set.intersection(*(above(a, threshold) for a in alphas))
    return sorted(common)


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 1 when both are empty (two fits that agree no head is high)."""
    return len(a & b) / len(a | b) if a | b else 1.0


def mean_jaccard(alphas: list[Float[Tensor, "layer head"]], threshold: float = 0.9) -> float | None:
    """Mean Jaccard index of the above-``threshold`` sets over every pair of fits (None for
    fewer than two fits: there is nothing to agree with)."""
    sets = [above(a, threshold) for a in alphas]
    pairs = [jaccard(x, y) for i, x in enumerate(sets) for y in sets[i + 1 :]]
    return sum(pairs) / len(pairs) if pairs else None


def _stack(tasks, pick, width):
    """Tokens, mask, last positions, answers and per-row task embeddings for picked items,
    right-padded to ``width``."""
    toks, masks, last, answers, te = [], [], [], [], []
    for name, i in pick:
        emb, b = tasks[name]
        pad = width - b.tokens.shape[1]
        toks.append(F.pad(b.tokens[i], (0, pad), value=int(b.tokens[i, -1])))
        masks.append(F.pad(b.attention_mask[i], (0, pad), value=0))
        last.append(int(b.s_q[i]))
        answers.append(int(b.answer_ids[i]))
        te.append(emb)
    return (
        torch.stack(toks),
        torch.stack(masks),
        torch.tensor(last),
        torch.tensor(answers),
        torch.stack(te),
    )
