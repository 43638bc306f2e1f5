"""Training stops promptly and cleanly on SIGTERM: `train blockrank` and `train gate` (both
objectives) as real subprocesses on the tiny Llama, and the two pieces that make it work, a
stop point inside a long backward pass and a block that holds a stop until its end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from interp.cli import stop_signals
from interp.errors import Interrupted
from interp.stops import deferred_stops, layer_modules, stop_points

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
STOP_WITHIN_S = 10.0
"""A tiny model's step takes milliseconds; this bounds the stop plus the save, under load."""


def _chain(n: int = 60, width: int = 384) -> tuple[nn.Sequential, torch.Tensor]:
    torch.manual_seed(0)
    layers = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(n)])
    return layers, torch.randn(512, width)


def _backward_with_sigterm(model: nn.Module, x: torch.Tensor) -> float:
    """Run a backward pass whose first gradient (the loss's, computed in Python) starts a
    timer that sends SIGTERM 20 ms later, while the pass is inside C++; return the seconds
    from the signal to :class:`Interrupted` (the handler's exception)."""
    sent: list[float] = []

    def send() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGTERM)

    loss = model(x).square().mean()
    timer = threading.Timer(0.02, send)
    loss.register_hook(lambda grad: timer.start())
    try:
        loss.backward()
        time.sleep(1.0)  # without stop points the handler runs here, after the whole pass
    except Interrupted:
        timer.join()
        return time.perf_counter() - sent[0]
    pytest.fail("SIGTERM never raised Interrupted")


def test_a_stop_point_ends_a_long_backward_pass_at_the_next_layer():
    """Without stop points the signal waits for the whole backward (one C++ call); with them
    it is raised inside it, before the first layer's gradient exists."""
    model, x = _chain()
    first = model[0][0].weight
    with stop_signals():
        whole = _backward_with_sigterm(model, x)
        assert first.grad is not None  # the backward ran to the end before the stop
        model.zero_grad(set_to_none=True)
        with stop_points([m for block in model for m in block]):
            stopped = _backward_with_sigterm(model, x)
    assert first.grad is None, f"whole backward {whole:.2f} s, stopped after {stopped:.2f} s"
    assert stopped < whole


def test_stop_points_leave_the_gradients_alone():
    model, x = _chain(n=4, width=32)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    with stop_points(layer_modules(model)):
        model(x).sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(plain, model.parameters()))


def test_deferred_stops_hold_a_signal_until_the_block_ends():
    done = []
    with stop_signals(), pytest.raises(Interrupted) as stop:
        with deferred_stops():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            done.append(True)  # reached: the stop waited
    assert done and stop.value.signum == signal.SIGTERM


def _train_until(args: list[str], ready: str) -> tuple[int, float, str]:
    """Start ``iclscope train ...``, wait for the line ``ready``, send SIGTERM; return the exit
    code, the seconds from the signal to the exit, and the output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "interp.cli", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            lines.append(line)
            if ready in line:
                break
            assert time.monotonic() < deadline, "training never started"
        else:
            pytest.fail("training ended before it was stopped:\n" + "".join(lines))
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
        return proc.returncode, time.monotonic() - sent, "".join(lines) + rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_train_blockrank_stops_on_sigterm_and_saves_the_steps_done(tiny_dirs, tmp_path):
    out = tmp_path / "br"
    args = ["blockrank", "--model", tiny_dirs["llama"], "--task", "ranking", "--docs", "5"]
    args += ["--layer", "1", "--cut", "0", "--steps", "100000", "--batch", "2"]
    code, seconds, output = _train_until([*args, "--out", str(out)], "step 2/")
    assert code == 128 + signal.SIGTERM, output
    assert seconds < STOP_WITHIN_S, output
    assert "interrupted (SIGTERM)" in output and "Traceback" not in output, output
    record = json.loads((out / "blockrank.json").read_text())
    assert record["status"] == "interrupted", record
    assert record["stopped"]["signal"] == "SIGTERM"
    assert record["steps_done"] == len(record["history"]) >= 2
    assert record["stopped"]["in_step"] == record["steps_done"] + 1
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert not list(tmp_path.glob(".br.*")), "the scratch folder was left behind"
    from interp.models import load_model

    load_model(str(out))  # the steps done, as a model folder


@pytest.mark.parametrize("objective", ["distill", "end-to-end"])
def test_train_gate_stops_on_sigterm_and_saves_the_gate(tiny_dirs, tmp_path, objective):
    out = tmp_path / "gate"
    args = ["gate", "--model", tiny_dirs["llama"], "--task", "sentiment_arbitrary"]
    args += ["--objective", objective, "--shots", "4", "--prompts", "4", "--epochs", "100000"]
    code, seconds, output = _train_until([*args, "--out", str(out)], "epoch 2/")
    assert code == 128 + signal.SIGTERM, output
    assert seconds < STOP_WITHIN_S, output
    assert "interrupted (SIGTERM)" in output and "Traceback" not in output, output
    record = json.loads((out / "training.json").read_text())
    assert record["status"] == "interrupted" and record["objective"] == objective
    assert record["stopped"]["signal"] == "SIGTERM"
    assert record["stopped"]["steps_done"] == record["steps_done"] >= record["epochs_run"] >= 2
    from circuits.eviction import GateStack

    GateStack.load(out)
    assert not [p for p in Path(out).iterdir() if p.name.startswith(".")]
