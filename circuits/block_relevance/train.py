"""BlockRank fine-tuning: make a middle layer's attention rank the documents.

The paper trains the whole model with the block-sparse mask, the answer loss and an auxiliary
contrastive loss on the attention from the query tokens to the documents at a middle layer
``l*``. Here the model is adapted cheaply enough for two CPU cores:

* LoRA adapters (peft, rank ``rank``; :mod:`~circuits.block_relevance.adapters`) on the
  attention projections q, k, v, o of the layers from ``cut`` up; every original weight is
  frozen, so the layers below ``cut`` build no autograd graph at all (they run as if under
  ``no_grad``);
* the loss is ``answer + aux_weight * contrastive``. The answer loss is the cross-entropy of
  the gold ID at the last prompt token. The contrastive loss is InfoNCE over the documents
  with the block relevance as the similarity: ``-log r_gold``, where ``r_d`` is layer ``l*``'s
  attention from the last ``rows`` query tokens, renormalised over document tokens (the same
  as re-softmaxing the pre-softmax scores over them), summed per block and averaged over heads
  and rows, exactly what :func:`~circuits.block_relevance.relevance.document_relevance` reads;
* every forward runs under the block-sparse mask (an explicit 4-D mask, eager attention).

After training the adapters are merged into the weights (peft's ``merge_and_unload``) and the
model is saved as a plain Hugging Face folder (with the tokenizer, the base model's BOS choice
and a training record ``blockrank.json``; :mod:`~circuits.block_relevance.folder`), which
``--model DIR`` loads like any other.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from circuits.block_relevance.adapters import adapter_parameters, add_lora, merge_lora
from circuits.block_relevance.documents import UNSEEN_SHARE, DocumentSplit, check_split
from circuits.block_relevance.folder import RECORD, save_folder, training_split
from circuits.block_relevance.mask import block_sparse_mask
from circuits.block_relevance.relevance import doc_of_token, query_rows, relevance_from_pattern
from interp.errors import IclscopeError, Interrupted
from interp.prompts import PromptBatch, PromptBuilder
from interp.stops import deferred_stops, layer_modules, stop_points
from interp.tasks.suite import get_family

__all__ = [
    "RECORD",
    "BlockRankTrainer",
    "batch_rows",
    "relevance_from_pattern",
    "save_folder",
    "train_blockrank",
    "training_split",
]

SPLIT_FIELDS = ("unseen_share", "split_seed")
"""How a bad split names its values when the trainer is used from Python."""


@dataclass
class BlockRankTrainer:
    """BlockRank fine-tuning with LoRA above a cut (see the module docstring).

    ``layer`` [60% of depth] the layer whose attention is trained (``l*``); ``cut`` [``layer``
    - 4] the first adapted layer; ``rank``/``alpha`` the LoRA size; ``steps`` optimiser steps
    of ``batch`` prompts of ``docs`` documents; ``micro_batch`` [``batch``] prompts per forward
    and backward, their gradients accumulated into the same step (less memory, and a stop
    waits for a smaller backward); ``aux_weight`` the contrastive loss's weight;
    ``max_minutes`` stops early (the adapters trained so far are kept); ``seed`` draws the
    training prompts from their own stream (``train:<seed>``), apart from any evaluation's.
    ``unseen_share`` [0.25] of the family's document pool is kept out of training, split by
    ``split_seed`` (:class:`~circuits.block_relevance.documents.DocumentSplit`): the training
    prompts draw only the other documents, and the record names the unseen ones, so block
    relevance can measure precision@1 on documents the model never trained on (``None``:
    train on the whole pool, as a family with no known pool always does).

    ``status`` says how training ended: ``complete``, ``time limit`` or ``interrupted``
    (Ctrl-C or SIGTERM, then ``stopped`` says which and at which step).
    """

    layer: int | None = None
    cut: int | None = None
    rank: int = 8
    alpha: float = 16.0
    lr: float = 2e-3
    steps: int = 60
    batch: int = 4
    micro_batch: int | None = None
    docs: int = 10
    rows: int = 2
    aux_weight: float = 1.0
    seed: int = 0
    max_minutes: float | None = None
    unseen_share: float | None = UNSEEN_SHARE
    split_seed: int = 0
    history: list[dict] = field(default_factory=list)
    status: str = "not started"
    stopped: dict | None = None

    def resolve(self, n_layers: int) -> tuple[int, int]:
        layer = round(0.6 * n_layers) if self.layer is None else self.layer
        cut = max(0, layer - 4) if self.cut is None else self.cut
        if not 0 <= cut <= layer < n_layers:
            raise IclscopeError(
                f"cut {cut} and layer {layer} must satisfy 0 <= cut <= layer < {n_layers}",
                fix="pick a trained layer inside the model and a cut at or below it",
            )
        return layer, cut

    def documents(self, family: str) -> DocumentSplit | None:
        """The split of ``family``'s documents into training and unseen ones, or ``None``
        (no share kept out, or a family with no known pool)."""
        if self.unseen_share is None:
            return None
        return DocumentSplit.of(family, self.split_seed, self.unseen_share)

    def prompts(self, builder: PromptBuilder, family: str, step: int) -> PromptBatch:
        """Step ``step``'s prompts, drawn from the training documents only."""
        fam = get_family(family)
        rng = random.Random(f"train:{family}:{self.seed}:{step}")
        split = self.documents(family)
        if split is None:
            episodes = [fam.sample(rng, self.docs) for _ in range(self.batch)]
        else:
            episodes = [split.sample("train", rng, self.docs) for _ in range(self.batch)]
        return builder.build(fam.template, episodes)

    def loss(self, model, batch: PromptBatch, layer: int) -> tuple[Tensor, dict]:
        """The answer loss plus the contrastive loss on ``layer``'s relevance, one forward."""
        length = batch.tokens.shape[1]
        mask = block_sparse_mask(
            batch.annotations, length, causal=True, attention_mask=batch.attention_mask
        )
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        seen: dict[str, Tensor] = {}
        attn = model.model.layers[layer].self_attn
        handle = attn.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o[1]))
        try:
            out = model(
                input_ids=batch.tokens,
                attention_mask=mask,
                position_ids=positions,
                logits_to_keep=1,
            )
        finally:
            handle.remove()
        answer = nn.functional.cross_entropy(out.logits[:, -1].float(), batch.answer_ids)
        n_docs = max(len(a.blocks) for a in batch.annotations)
        rel = relevance_from_pattern(
            seen["a"],
            query_rows(batch.annotations, self.rows),
            doc_of_token(batch.annotations, length),
            n_docs,
        )
        gold = torch.tensor([a.gold_block for a in batch.annotations])
        r_gold = rel[torch.arange(len(gold)), gold]
        aux = -torch.log(r_gold.clamp_min(1e-12)).mean()
        p1 = (rel.argmax(-1) == gold).float().mean()
        stats = {
            "answer": answer.item(),
            "aux": aux.item(),
            "r_gold": r_gold.mean().item(),
            "p_at_1": p1.item(),
        }
        return answer + self.aux_weight * aux, stats

    def step(self, model, opt, batch: PromptBatch, layer: int) -> tuple[float, dict]:
        """One optimiser step on ``batch``, in micro-batches of ``micro_batch`` prompts. Each
        micro-batch's loss is weighted by its share of the batch, so the accumulated gradient
        is the whole batch's (both losses are means over prompts); the rows keep the batch's
        padding, so each prompt's forward is the same as in the whole batch."""
        opt.zero_grad()
        size = len(batch)
        micro = min(self.micro_batch or size, size)
        loss_sum, sums = 0.0, {}
        for i in range(0, size, micro):
            part = batch_rows(batch, i, min(i + micro, size))
            loss, stats = self.loss(model, part, layer)
            share = len(part) / size
            (loss * share).backward()
            loss_sum += loss.item() * share
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value * share
        with deferred_stops():  # never half the parameters updated
            opt.step()
        return loss_sum, sums

    def train(self, model, tokenizer, family: str, prepend_bos: bool, log=lambda _: None):
        """Adapt ``model`` (a Hugging Face Llama-family model with eager attention) in place:
        peft LoRA adapters are trained, then merged into its weights and taken out, so
        ``model`` leaves as a plain model (also when stopped). On Ctrl-C or SIGTERM the steps
        done so far stand (``status`` and ``stopped`` say where it stopped) and
        :class:`~interp.errors.Interrupted` is raised again; a stop waits for at most one
        layer's backward (:func:`~interp.stops.stop_points`)."""
        fam = get_family(family)
        if fam.kind != "ranking":
            raise IclscopeError(
                f"BlockRank trains on ranking families, not {family!r}",
                fix="use nl_ranking_lexical or nl_ranking_semantic",
            )
        layer, cut = self.resolve(model.config.num_hidden_layers)
        if self.unseen_share is not None:
            check_split(family, self.unseen_share, self.split_seed, self.docs, *SPLIT_FIELDS)
        torch.manual_seed(self.seed)
        adapted = add_lora(model, cut, self.rank, self.alpha, self.seed)
        opt = torch.optim.AdamW(adapter_parameters(adapted), lr=self.lr, weight_decay=0.0)
        builder = PromptBuilder(tokenizer, prepend_bos=prepend_bos, padding_side="left")
        model.train()
        self.status = "running"
        start = time.perf_counter()
        try:
            with stop_points(layer_modules(model)):
                self._loop(model, opt, builder, family, layer, start, log)
        except Interrupted as stop:
            self.status = "interrupted"
            self.stopped = {
                "signal": stop.name,
                "steps_done": len(self.history),
                "in_step": len(self.history) + 1,
                "seconds": round(time.perf_counter() - start, 2),
            }
            raise
        finally:
            model.eval()
            with deferred_stops():  # never a model half merged
                merge_lora(adapted)
        return layer, cut

    def _loop(self, model, opt, builder, family: str, layer: int, start: float, log) -> None:
        for step in range(self.steps):
            batch = self.prompts(builder, family, step)
            loss, stats = self.step(model, opt, batch, layer)
            seconds = time.perf_counter() - start
            self.history.append({"step": step, "loss": loss, **stats, "seconds": round(seconds, 2)})
            log(
                f"step {step + 1}/{self.steps}  loss {loss:.3f}  answer "
                f"{stats['answer']:.3f}  contrastive {stats['aux']:.3f}  r_gold "
                f"{stats['r_gold']:.3f}  p@1 {stats['p_at_1']:.2f}  {seconds:.0f}s"
            )
            if self.max_minutes is not None and seconds > 60 * self.max_minutes:
                log(f"stopping after {step + 1} steps: --max-minutes {self.max_minutes} reached")
                self.status = "time limit"
                return
        self.status = "complete"

    def record(self, base: str, family: str, layer: int, cut: int) -> dict:
        params = {
            k: v for k, v in asdict(self).items() if k not in ("history", "status", "stopped")
        }
        split = self.documents(family)
        return {
            "method": "BlockRank (LoRA above a cut)",
            "base_model": base,
            "task": family,
            **params,
            "layer": layer,
            "cut": cut,
            "status": self.status,
            "steps_done": len(self.history),
            "stopped": self.stopped,
            "documents": None if split is None else split.record(),
            "history": self.history,
            "seconds": self.history[-1]["seconds"] if self.history else 0.0,
        }


def batch_rows(batch: PromptBatch, start: int, stop: int) -> PromptBatch:
    """Rows ``start:stop`` of ``batch``, with the batch's padding kept."""
    if start == 0 and stop == len(batch):
        return batch
    return replace(
        batch,
        tokens=batch.tokens[start:stop],
        attention_mask=batch.attention_mask[start:stop],
        annotations=batch.annotations[start:stop],
        answer_ids=batch.answer_ids[start:stop],
        label_ids=batch.label_ids[start:stop],
        texts=batch.texts[start:stop],
    )


def train_blockrank(
    model: str, family: str, out: str | Path, trainer: BlockRankTrainer, log=print
) -> Path:
    """Load ``model`` (a name or folder), fine-tune it with ``trainer`` on ``family`` and save
    the adapted model folder at ``out``; the training record is ``out/blockrank.json``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.models.gguf_cache import prepend_bos
    from interp.models.loader import resolve_spec

    folder, _ = resolve_spec(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(
        folder, attn_implementation="eager", dtype=torch.float32
    )
    if not hasattr(getattr(hf, "model", None), "layers"):
        raise IclscopeError(
            f"BlockRank training adapts Llama-family models, not {hf.config.model_type!r}",
            fix="train smollm2 or another Llama-family folder",
        )
    log(f"training {model} on {family}: {trainer.steps} steps of {trainer.batch} prompts")
    try:
        layer, cut = trainer.train(hf, tokenizer, family, prepend_bos(folder), log)
    except Interrupted:
        if trainer.stopped is not None:  # stopped while training: keep the steps done
            layer, cut = trainer.resolve(hf.config.num_hidden_layers)
            record = trainer.record(model, family, layer, cut)
            save_folder(hf, tokenizer, Path(out), folder, record)
            log(
                f"interrupted ({trainer.stopped['signal']}) in step {trainer.stopped['in_step']}: "
                f"{record['steps_done']} steps done, saved with status 'interrupted' in {out}"
            )
        raise
    record = trainer.record(model, family, layer, cut)
    path = save_folder(hf, tokenizer, Path(out), folder, record)
    log(
        f"saved the adapted model to {path} (layer {layer}, LoRA on layers {cut}-"
        f"{hf.config.num_hidden_layers - 1})"
    )
    return path
