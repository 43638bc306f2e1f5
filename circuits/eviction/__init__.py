"""KV-cache eviction flags: training-free methods, the attention gate (docs/analyses/eviction.md).

Every method produces the same flag tensor ``(layer, batch, head, pos)`` (``1`` kept, ``0``
evicted) at a given eviction rate, so they compare on one footing:

* :mod:`~circuits.eviction.methods`: StreamingLLM, H2O, SnapKV, TOVA and random, each a small
  dataclass scoring keys from one layer's prefill attention, behind :class:`EvictionMethod`;
* :mod:`~circuits.eviction.gate`: the attention gate of Zeng et al. (a reduced causal attention
  per layer, a sigmoid and a straight-through threshold), and
  :mod:`~circuits.eviction.train`: its two training objectives with the model frozen
  (attention distillation, and end to end), and :mod:`~circuits.eviction.joint`: the third,
  gates and LoRA adapters trained together (resumable; :mod:`~circuits.eviction.adapted` its
  checkpoint and model folder, :mod:`~circuits.eviction.joint_run` its training and
  evaluation inside a run);
* :mod:`~circuits.eviction.apply`: eviction simulated after a prefill on the plain Hugging Face
  model (the fast path), the same masks as the hooked backends' ``hook_evict_flags``;
* :mod:`~circuits.eviction.evaluate`: accuracy against eviction rate for every method;
* :mod:`~circuits.eviction.prompts`: the prompts it is measured on (ICL families, key-value
  retrieval at a length) and the eager-attention model they are built for.
"""

from circuits.eviction.apply import Prefill, attention_modules, decode, key_masks, prefill
from circuits.eviction.evaluate import EvictionEval, EvictionResult, predictions
from circuits.eviction.gate import AttentionGate, GateStack, eviction_rate, straight_through
from circuits.eviction.methods import (
    H2O,
    METHODS,
    TOVA,
    EvictionMethod,
    RandomEviction,
    SnapKV,
    StreamingLLM,
    budgets,
    get_method,
    select,
)
from circuits.eviction.train import OBJECTIVES, GateExample, gate_examples, train_gate

__all__ = [
    "AttentionGate",
    "EvictionEval",
    "EvictionMethod",
    "EvictionResult",
    "GateExample",
    "GateStack",
    "H2O",
    "METHODS",
    "OBJECTIVES",
    "Prefill",
    "RandomEviction",
    "SnapKV",
    "StreamingLLM",
    "TOVA",
    "attention_modules",
    "budgets",
    "decode",
    "eviction_rate",
    "gate_examples",
    "get_method",
    "key_masks",
    "predictions",
    "prefill",
    "select",
    "straight_through",
    "train_gate",
]
