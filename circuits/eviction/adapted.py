"""The joint objective's folders: its checkpoint, and the adapted model it leaves.

``<out>/checkpoint``: ``run.json`` (what run it belongs to: model, task, prompts, seed, target
rate and the LoRA and optimiser settings) and ``state.pt`` (gates, adapters, optimiser, step,
history). A call with the same folder and the same run resumes; a different run is refused
rather than mixed in.

``<out>`` itself, once training ends: the model with the adapters merged in (peft's
``merge_and_unload``), a plain Hugging Face folder that ``--model <out>`` loads, beside the
gate (``gate.pt``, ``gate.json``) and its record ``training.json``, written last.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from circuits.eviction.gate import GateStack
from interp.errors import IclscopeError
from interp.io import atomic_write_bytes, atomic_write_text
from interp.models.trained import write_model_folder
from interp.stops import deferred_stops

CHECKPOINT = "checkpoint"


class Checkpoint:
    """``<folder>/checkpoint`` of one joint run, described by ``meta``."""

    def __init__(self, folder: str | Path, meta: dict):
        self.path = Path(folder) / CHECKPOINT
        self.meta = json.loads(json.dumps(meta))  # as stored: tuples become lists

    def check(self, skip: tuple[str, ...] = ()) -> None:
        """Refuse a checkpoint of another run (before any heavy work, where a caller can:
        ``skip`` names what it cannot know yet)."""
        stored_path = self.path / "run.json"
        if not stored_path.exists():
            return
        stored = json.loads(stored_path.read_text())
        keys = (set(stored) | set(self.meta)) - set(skip)
        differ = sorted(k for k in keys if stored.get(k) != self.meta.get(k))
        if differ:
            shown = ", ".join(
                f"{k} {stored.get(k)!r} there, {self.meta.get(k)!r} now" for k in differ
            )
            raise IclscopeError(
                f"{self.path.parent} holds a checkpoint of another joint training run ({shown})",
                fix="pass the options of that run to resume it, or a new --out folder",
            )

    def load(self, peft_model, gate: GateStack, opt) -> dict:
        """Restore gates, adapters and optimiser in place; ``step``, ``history`` and
        ``partial`` (the unfinished epoch's step losses), zero and empty where none is saved."""
        from peft import set_peft_model_state_dict

        self.check()
        state_path = self.path / "state.pt"
        if not state_path.exists():
            return dict(step=0, history=[], partial=[])
        state = torch.load(state_path, weights_only=True)
        gate.load_state_dict(state["gate"])
        set_peft_model_state_dict(peft_model, state["adapter"])
        opt.load_state_dict(state["optimizer"])
        return dict(step=state["step"], history=state["history"], partial=state["partial"])

    def save(self, peft_model, gate: GateStack, opt, step: int, history, partial) -> None:
        """Each file atomically, while a stop signal waits: never half a checkpoint."""
        from peft import get_peft_model_state_dict

        state = dict(
            gate=gate.state_dict(),
            adapter=get_peft_model_state_dict(peft_model),
            optimizer=opt.state_dict(),
            step=step,
            history=list(history),
            partial=[list(p) for p in partial],
        )
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with deferred_stops():
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path / "run.json", json.dumps(self.meta, indent=1))
            atomic_write_bytes(self.path / "state.pt", buffer.getvalue())


def save_adapted(
    model, tokenizer, gate: GateStack, out: str | Path, base_folder: str, record: dict
) -> Path:
    """The merged model (adapters already folded in) as a Hugging Face folder at ``out``, with
    the gate and ``training.json`` last: a folder with a record is whole. Written next to
    ``out`` first and moved in file by file, each move atomic."""
    out = Path(out)
    with deferred_stops():
        name = f"gate-joint:{record.get('model', base_folder)}"
        write_model_folder(model, tokenizer, out, name, base_folder)
        gate.save(out, record)
    return out
