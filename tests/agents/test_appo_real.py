"""APPO on the real default model and real SST-2 data: the exact update and every diagnostic."""

import gymnasium as gym
import pytest
import torch

from prompt_gym.agents.appo import loss as L
from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.appo.config import APPOConfig, ModelConfig

pytestmark = pytest.mark.slow

DIAGNOSTICS = ("rollout/reward", "rollout/accuracy", "train/approx_kl", "train/clip_fraction", "train/entropy",
               "train/policy_grad_norm", "train/kl_share", "train/replayed_episodes", "anchor/kl")


@pytest.fixture(scope="module")
def sst2_agent(real_data_dir):
    from prompt_gym.models import load_causal_lm

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")  # its own copy: APPO adds adapters
    env = gym.make("PromptTune-SST2-v0", target=(model, tokenizer), tokenizer=tokenizer, action_mode="text",
                   max_prompt_tokens=6, num_demos=1, reward_batch_size=4)
    config = APPOConfig(seed=0, device="cpu", batch_size=2, elite_replay=1, ppo_epochs=1, anchor_check_interval=2,
                        anchor_samples=1)
    return APPOAgent(env, config, ModelConfig(), model=model, tokenizer=tokenizer)


def test_real_update_is_exact_and_logs_every_diagnostic(sst2_agent, monkeypatch):
    ratios = []
    original = L.policy_loss

    def spy(logprobs, old_logprobs, advantages, mask, clip_range):
        ratios.append(float(((logprobs.detach() - old_logprobs) * mask).abs().max()))
        return original(logprobs, old_logprobs, advantages, mask, clip_range)

    monkeypatch.setattr(L, "policy_loss", spy)
    sst2_agent.learn(total_updates=2, progress_bar=False)
    assert ratios[0] == 0.0  # the first pass sees unchanged weights: ratio exactly 1
    history = sst2_agent.logger.history
    assert [r["step"] for r in history if "eval/policy_accuracy" in r] == [0, 2]
    assert 0.0 <= history[0]["eval/policy_accuracy"] <= 1.0
    for key in DIAGNOSTICS:
        assert key in history[-1], key
    assert history[-1]["train/replayed_episodes"] == 1


def test_real_shared_meta_prompt_equals_the_plain_layout(sst2_agent):
    policy, context = sst2_agent.policy, sst2_agent.validation_contexts(1)[0]
    actions = [sst2_agent._encode("Classify the review."), sst2_agent._encode("Is it positive?")]
    with torch.no_grad():
        shared = policy.sequence_logprobs([context] * 2, actions, sst2_agent.pad_id)
        for row, action in enumerate(actions):
            plain = policy.sequence_logprobs([context], [action], sst2_agent.pad_id)
            width = plain[0].shape[1]
            torch.testing.assert_close(shared[0][row, :width], plain[0][0], rtol=1e-4, atol=1e-4)
