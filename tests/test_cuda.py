"""CUDA checks: bf16 training end to end and bf16 scoring on a GPU.

Skipped on machines without a CUDA GPU (CI has none). On a GPU machine:
``PROMPT_GYM_DATA_DIR=... pytest -m cuda tests/test_cuda.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from prompt_gym.runs.cli import main

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TINY_TRAINING = ["--env", "PromptTune-Toy-v0", "--batch-size", "4", "--ppo-epochs", "2", "--lr", "1e-2",
                 "--anchor-check-interval", "2", "--max-prompt-tokens", "4", "--num-demos", "1",
                 "--reward-batch-size", "4", "--device", "cuda", "--dtype", "bfloat16", "--seed", "0"]


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _losses(run):
    return [r[key] for r in _log(run) for key in ("train/loss", "train/policy_loss", "train/value_loss")]


def test_tiny_training_end_to_end_in_bf16_on_cuda(tiny_model_dir, tmp_path):
    """``prompt-gym train`` in bf16 on CUDA: updates with finite losses, checkpoints, resume, results."""
    run = tmp_path / "run"
    assert main(["train", *TINY_TRAINING, "--agent-model", tiny_model_dir, "--updates", "4",
                 "--save-every", "2", "--out", str(run)]) == 0
    assert [r["step"] for r in _log(run)] == [1, 2, 3, 4]
    assert all(math.isfinite(value) for value in _losses(run))
    assert main(["train", "--resume", str(run), "--updates", "5"]) == 0
    assert [r["step"] for r in _log(run)] == [1, 2, 3, 4, 5]
    results = json.loads((run / "results.json").read_text())
    assert results["settings"]["config"]["device"] == "cuda" and results["num_updates"] == 5
    assert set(results["test"]) == {"learned", "manual", "empty"}


def test_appo_policy_trains_in_bf16_on_cuda(tiny_model_dir):
    """The base weights run in bf16 on the GPU; the LoRA weights (fp32, peft's default) and value head train there."""
    import gymnasium as gym

    from prompt_gym.agents.appo.agent import APPOAgent
    from prompt_gym.agents.appo.config import APPOConfig
    from prompt_gym.models import load_causal_lm

    model, tokenizer = load_causal_lm(tiny_model_dir, dtype="bfloat16", device="cuda")
    env = gym.make("PromptTune-Toy-v0", tokenizer=tokenizer, max_prompt_tokens=4, num_demos=1, reward_batch_size=4)
    config = APPOConfig(seed=0, device="cuda", batch_size=4, minibatch_size=4, learning_rate=1e-2)
    agent = APPOAgent(env, config, model=model, tokenizer=tokenizer)
    trained = {name: p for name, p in agent.policy.model.named_parameters() if p.requires_grad}
    base = [p for name, p in agent.policy.model.named_parameters() if "lora_" not in name]
    before = {name: p.detach().clone() for name, p in trained.items()}
    agent.learn(total_updates=2, progress_bar=False)
    assert base and all(p.device.type == "cuda" and p.dtype == torch.bfloat16 for p in base)
    assert trained and all(p.device.type == "cuda" and p.dtype == torch.float32 for p in trained.values())
    assert any(not torch.equal(before[name], p) for name, p in trained.items())
    assert agent.policy.value_head.weight.dtype == torch.float32
    assert all(math.isfinite(r["train/loss"]) for r in agent.logger.history)


@pytest.mark.slow
def test_bf16_scoring_on_cuda_agrees_with_fp32(real_data_dir):
    """The default model in bf16 on CUDA predicts the SST-2 test classes of the manual prompt like fp32 does."""
    from prompt_gym.models import load_causal_lm
    from prompt_gym.scoring import LMScorer
    from prompt_gym.tasks import get_task

    task = get_task("sst2")
    inputs = [example.input for example in task.split("test")]
    labels = np.array([example.label for example in task.split("test")])
    predictions, accuracies = {}, {}
    for dtype in ("float32", "bfloat16"):
        model, tokenizer = load_causal_lm("smollm2-135m-instruct", dtype=dtype, device="cuda")
        scores = LMScorer(model, tokenizer, task.verbalizer, task.template).score([task.manual_prompt], inputs)[0]
        predictions[dtype] = scores.argmax(-1)
        accuracies[dtype] = float((predictions[dtype] == labels).mean())
    agreement = float((predictions["float32"] == predictions["bfloat16"]).mean())
    print(f"manual prompt, SST-2 test (872): fp32 {accuracies['float32']:.4f}, bf16 {accuracies['bfloat16']:.4f}, "
          f"agreement {agreement:.4f}")
    assert agreement >= 0.95
    assert abs(accuracies["float32"] - accuracies["bfloat16"]) <= 0.03


@pytest.mark.slow
def test_real_training_in_bf16_on_cuda(real_data_dir, tmp_path, capsys):
    """Two APPO updates of the default model on SST-2 in bf16 on CUDA, then selection and test."""
    run = tmp_path / "sst2"
    assert main(["train", "--env", "PromptTune-SST2-v0", "--updates", "2", "--batch-size", "4",
                 "--anchor-check-interval", "1", "--lr", "1e-4", "--device", "cuda", "--out", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["learned"]["num_examples"] == 872
    assert all(math.isfinite(value) for value in _losses(run))
    print(capsys.readouterr().out)
