"""KV-cache eviction as a registered analysis (kind ``eviction``): its config, its run, the
cost estimate of its evaluation, and the attention gate trained and saved with its record.

Eviction is simulated after the prefill: the final rows (the query line, from the query's first
token) are decoded against the cache with the evicted keys masked; every earlier row was
computed with every key. The rate counts context tokens (real tokens before the final rows).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from circuits.eviction.evaluate import EvictionEval
from circuits.eviction.gate import GateStack
from circuits.eviction.gate_folder import train_gate_folder, training_examples
from circuits.eviction.joint import JointConfig
from circuits.eviction.methods import METHODS
from circuits.eviction.prompts import eviction_builder, eviction_settings, load_eager
from circuits.eviction.report import EvictionRun
from interp.analysis import Analysis, AnalysisConfig, CostEstimate
from interp.analysis.base import Log


@dataclass
class EvictionConfig(AnalysisConfig):
    """``shots`` demonstrations, ``prompts`` evaluation prompts (key-value: at each of
    ``lengths`` tokens, keys ``kv_keys``); every method of ``methods`` at every rate of
    ``rates``; the gate loaded from ``gate``, or (``train``) trained here with ``objective`` on
    ``gate_prompts`` prompts for ``gate_epochs`` epochs; ``chunk`` prompts per prefill. With
    ``objective="joint"`` that gate is distilled, and a second one is trained from it jointly
    with LoRA adapters (``joint``) on the same prompts and evaluated on its adapted model."""

    shots: int = 16
    prompts: int = 32
    rates: tuple[float, ...] = (0.25, 0.5, 0.75)
    methods: tuple[str, ...] = tuple(METHODS)
    lengths: tuple[int, ...] = (512, 1024)
    gate: str | None = None
    train: bool = True
    objective: str = "distill"
    gate_prompts: int = 48
    gate_epochs: int = 40
    kv_keys: str = "words"
    chunk: int = 8
    joint: JointConfig = field(default_factory=JointConfig)


class EvictionAnalysis(Analysis):
    """Accuracy against eviction rate for StreamingLLM, H2O, SnapKV, TOVA, random and the
    attention gate (see the eviction page of the docs). It runs on the eager Hugging Face
    model, whose attention modules the eviction masks replace."""

    kind = "eviction"
    score = "accuracy by the first token of each answer (argmax over the vocabulary)"
    config_type = EvictionConfig

    def load(self, model: str, config: EvictionConfig):
        """The eager Hugging Face model, its tokenizer and prompt builder; the name is kept
        for the report and the gate's record, which the loaded model does not carry."""
        self.model_name = model
        return load_eager(model)

    def estimate(self, model, task, config: EvictionConfig, workers=1, loaded=None):
        with_gate = config.gate is not None or config.train
        costs = eviction_estimate(
            model,
            task,
            config.shots,
            config.prompts,
            config.lengths,
            config.seed,
            config.kv_keys,
            config.methods,
            config.rates,
            with_gate,
            config.chunk,
            workers,
        )
        notes = ()
        if config.gate is None and config.train:
            trained = f"{config.gate_prompts} prompts prefilled, {config.gate_epochs} epochs"
            notes = (f"besides: the gate's training here ({trained})",)
        if config.objective == "joint":
            notes += (
                f"besides: joint training with LoRA adapters ({config.joint.epochs} epochs, a "
                "forward and backward pass per chunk), then three evaluations of its model",
            )
        return CostEstimate(costs, "", notes)

    def run(self, model, task: str, config: EvictionConfig, executor, *, log: Log = print):
        t0 = time.perf_counter()
        hf, tokenizer, builder = model
        name = self.model_name
        settings = eviction_settings(
            builder, task, config.shots, config.prompts, config.lengths, config.seed, config.kv_keys
        )
        stack, record, examples = None, None, None
        joint = config.objective == "joint"
        rates = config.rates
        rate = rates[len(rates) // 2]
        if config.gate is not None:
            stack = GateStack.load(config.gate)
        elif config.train:
            if joint:  # prefilled once, for the distilled gate and the joint one
                gate_settings = eviction_settings(
                    builder,
                    task,
                    config.shots,
                    config.gate_prompts,
                    config.lengths[:1],
                    config.seed + 1,
                    config.kv_keys,
                )
                examples = training_examples(hf, gate_settings, rate, log)
            stack, record = train_gate_folder(
                self.run_dir / "gate",
                name,
                task,
                "distill" if joint else config.objective,
                rate,
                config.shots,
                config.gate_prompts,
                config.lengths[:1],
                config.gate_epochs,
                seed=config.seed + 1,
                kv_keys=config.kv_keys,
                log=log,
                loaded=model,
                examples=examples,
            )
        evaluation = EvictionEval(tuple(config.methods), tuple(config.rates), config.chunk)
        result = evaluation.run(hf, settings, tokenizer, stack, log=log, executor=executor)
        joint_result = None
        if joint:
            joint_result = self._joint(
                model, task, config, stack, examples, settings, executor, log
            )
        return EvictionRun(result, time.perf_counter() - t0, record, name, task, joint_result)

    def _joint(self, model, task, config: EvictionConfig, warm, examples, settings, executor, log):
        """The jointly trained gate: trained from ``warm`` on the gate's prompts (a copy of
        the model takes the adapters), saved in ``joint/``, evaluated on ``settings``."""
        from circuits.eviction.joint_run import evaluate_joint, train_joint_folder

        hf, tokenizer, _ = model
        rates = config.rates
        folder = self.run_dir / "joint"
        adapted, gate, record = train_joint_folder(
            folder,
            self.model_name,
            task,
            rates[len(rates) // 2],
            config.shots,
            config.gate_prompts,
            config.lengths[:1],
            config.joint,
            config.seed + 1,
            warm=warm,
            log=log,
            loaded=model,
            kv_keys=config.kv_keys,
            examples=examples,
        )
        return evaluate_joint(
            hf, adapted, tokenizer, gate, settings, folder, record, config.chunk, executor, log
        )


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
    (:class:`~interp.engine.memory.WorkEstimate`), from the tokenizer, the config and the
    prompts alone: the chunks are the evaluation's own (:meth:`~circuits.eviction.evaluate.
    EvictionChunks.spans`), each one prefill (two passes: the scores, the context's cache) and
    one decode of the final rows per variant."""
    from transformers import AutoConfig, AutoTokenizer

    from circuits.eviction.evaluate import EvictionChunks, prompt_floats, variant_count
    from interp.engine.memory import estimate_work, weights_gb
    from interp.models import resolve_spec
    from interp.models.interface import ModelConfig

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
