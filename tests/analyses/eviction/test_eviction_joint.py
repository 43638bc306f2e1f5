"""The joint objective: gates and LoRA adapters trained together, resumable from a checkpoint,
saved as a model folder that loads; and its refusals."""

from __future__ import annotations

import copy

import pytest
import torch

from circuits.eviction import GateStack, gate_examples
from circuits.eviction.joint import JointConfig, adapter_parameters, joint_loss, train_joint
from interp.errors import IclscopeError


@pytest.fixture(scope="module")
def joint_data(tiny_dirs):
    from circuits.eviction.prompts import load_eager
    from interp.tasks.suite import build_family_batch

    hf, tokenizer, builder = load_eager(tiny_dirs["llama"])
    batch = build_family_batch(builder, "sentiment_arbitrary", 8, 4, seed=0)
    return hf, tokenizer, gate_examples(hf, batch, rate=0.5, chunk=2)


def _gate(hf, seed=0):
    from interp.models.interface import ModelConfig

    torch.manual_seed(seed)
    return GateStack.for_model(ModelConfig.from_hf("tiny", hf.config), target_rate=0.5)


def _state(hf, gate):
    return {
        **{f"gate.{k}": v.clone() for k, v in gate.state_dict().items()},
        **{k: v.detach().clone() for k, v in hf.named_parameters() if "lora_" in k},
    }


def test_one_backward_reaches_the_gates_and_the_adapters(joint_data, tmp_path):
    from circuits.eviction.joint import add_adapters

    base, _, examples = joint_data
    hf, gate = copy.deepcopy(base), _gate(base)
    add_adapters(hf, JointConfig(rank=4))
    lora = adapter_parameters(hf)
    assert len(lora) == 2 * 4 * hf.config.num_hidden_layers  # A and B on q, k, v, o
    loss, rate = joint_loss(hf, gate, examples[0], lam=1.0)
    loss.backward()
    for layer, g in enumerate(gate.gates):
        total = sum(p.grad.abs().sum() for p in g.parameters())
        assert total > 0, f"no gradient reached gate {layer}"
    # B starts at zero, so A's first gradient is zero; every B must have one
    b_grads = [p.grad for n, p in hf.named_parameters() if "lora_B" in n]
    assert b_grads and all(g is not None and g.abs().sum() > 0 for g in b_grads)
    assert all(p.grad is None for n, p in hf.named_parameters() if "lora_" not in n)
    assert 0.0 <= float(rate) <= 1.0


def _train(base, examples, folder, max_steps=None, epochs=2, every=1):
    hf, gate = copy.deepcopy(base), _gate(base)
    cfg = JointConfig(epochs=epochs, rank=4, accumulate=2, checkpoint_every=every, lora_lr=1e-2)
    peft_model, record = train_joint(
        hf, gate, examples, cfg, folder, seed=3, log=lambda s: None, max_steps=max_steps
    )
    return hf, gate, record


def test_a_resumed_run_ends_where_an_unbroken_one_does(joint_data, tmp_path):
    base, _, examples = joint_data  # 4 chunks: 2 steps an epoch, 4 in all
    hf_a, gate_a, rec_a = _train(base, examples, tmp_path / "a")
    assert rec_a["status"] == "complete" and rec_a["steps_done"] == 4
    _, _, first = _train(base, examples, tmp_path / "b", max_steps=3)
    assert first["status"] == "step limit" and first["steps_done"] == 3
    hf_b, gate_b, rec_b = _train(base, examples, tmp_path / "b")
    assert rec_b["resumed_from"] == 3 and rec_b["steps_done"] == 4
    a, b = _state(hf_a, gate_a), _state(hf_b, gate_b)
    assert set(a) == set(b) and any("lora_B" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert [h["loss"] for h in rec_a["history"]] == pytest.approx(
        [h["loss"] for h in rec_b["history"]], rel=1e-5
    )
    # the adapters moved away from zero: training did something to the model
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)


def test_a_checkpoint_of_another_run_is_refused(joint_data, tmp_path):
    base, _, examples = joint_data
    _train(base, examples, tmp_path / "c", max_steps=1)
    hf, gate = copy.deepcopy(base), _gate(base)
    with pytest.raises(IclscopeError, match="another joint training run"):
        train_joint(hf, gate, examples, JointConfig(rank=8), tmp_path / "c", seed=3)


def test_a_model_without_q_k_v_o_projections_is_refused(tiny_dirs):
    from circuits.eviction.joint import check_adaptable_folder

    check_adaptable_folder(tiny_dirs["llama"])
    with pytest.raises(IclscopeError, match="c_attn|q_proj") as err:
        check_adaptable_folder(tiny_dirs["gpt2"])
    assert "Llama-family" in err.value.fix


def test_an_interrupted_run_keeps_its_steps_and_resumes_to_the_same_end(
    joint_data, tmp_path, monkeypatch
):
    import signal

    import circuits.eviction.joint as joint
    from interp.errors import Interrupted

    base, _, examples = joint_data
    hf_a, gate_a, rec_a = _train(base, examples, tmp_path / "a")
    calls, real_loss = [0], joint.joint_loss

    def stop_in_the_second_step(*args):
        calls[0] += 1
        if calls[0] == 4:  # the second chunk of step 2 (two chunks a step)
            raise Interrupted(signal.SIGINT)
        return real_loss(*args)

    monkeypatch.setattr(joint, "joint_loss", stop_in_the_second_step)
    with pytest.raises(Interrupted) as stop:  # no scheduled checkpoint before it: every 10
        _train(base, examples, tmp_path / "b", every=10)
    assert stop.value.record["status"] == "interrupted"
    assert stop.value.record["steps_done"] == 1
    assert (tmp_path / "b" / "checkpoint" / "state.pt").exists()
    monkeypatch.setattr(joint, "joint_loss", real_loss)
    hf_b, gate_b, rec_b = _train(base, examples, tmp_path / "b", every=10)
    assert rec_b["resumed_from"] == 1 and rec_b["steps_done"] == 4
    assert [h["loss"] for h in rec_b["history"]] == pytest.approx(
        [h["loss"] for h in rec_a["history"]], rel=1e-5
    )
    a, b = _state(hf_a, gate_a), _state(hf_b, gate_b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_accumulation_takes_one_step_per_group_of_chunks(joint_data, tmp_path):
    base, _, examples = joint_data  # 4 chunks
    for accumulate, steps in ((1, 4), (3, 2), (4, 1)):
        hf, gate = copy.deepcopy(base), _gate(base)
        cfg = JointConfig(epochs=1, rank=2, accumulate=accumulate)
        _, record = train_joint(hf, gate, examples, cfg, tmp_path / str(accumulate), seed=0)
        assert record["steps_done"] == steps, accumulate
