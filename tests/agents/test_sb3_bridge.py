"""The SB3 bridge trains Stable-Baselines3's own algorithms on the token-mode toy env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3
import torch
from stable_baselines3.common.env_checker import check_env

import prompt_gym  # noqa: F401
from prompt_gym.agents import make_agent
from prompt_gym.agents.sb3 import SB3Agent, SB3Config, TokenEmbeddingExtractor, TopKTokens, top_k_token_ids
from prompt_gym.testing import build_tiny_lm


def toy():
    return gym.make("PromptTune-Toy-v0")


@pytest.mark.parametrize(("name", "cls"), [("sb3:ppo", stable_baselines3.PPO), ("sb3:a2c", stable_baselines3.A2C)])
def test_sb3_learn_runs_the_real_algorithm(name, cls):
    env = toy()
    agent = make_agent(name, env, seed=0, algo_kwargs={"n_steps": 16}, eval_interval=1, final_samples=1)
    assert type(agent.model) is cls
    before = [p.detach().clone() for p in agent.model.policy.parameters()]
    agent.learn(32)
    assert agent.num_timesteps >= 32 and agent.model.num_timesteps == agent.num_timesteps
    assert agent.num_updates == 2  # two SB3 rollouts of 16 steps
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.model.policy.parameters(), strict=False))
    assert isinstance(agent.model.policy.features_extractor, TokenEmbeddingExtractor)
    assert [r["time/updates"] for r in agent.logger.history] == [1, 2]
    best = agent.select_prompt()
    assert 0.0 <= best["val_accuracy"] <= 1.0
    observation, _ = env.reset(seed=0)
    action, _ = agent.predict(observation)
    assert isinstance(action, int) and env.action_space.contains(action)


def test_top_k_actions_use_the_agent_llm_and_keep_eos():
    env = toy()
    model = build_tiny_lm(env.unwrapped.tokenizer)
    ids = top_k_token_ids(model, env, k=6)
    assert len(ids) == 6 and env.unwrapped.eos_token_id in ids
    wrapped = TopKTokens(env, ids)
    check_env(wrapped, warn=False)
    assert wrapped.action_space == gym.spaces.Discrete(6)
    assert wrapped.action(np.int64(2)) == ids[2]

    agent = SB3Agent(env, SB3Config(top_k=6, algo_kwargs={"n_steps": 8}), model=model)
    assert agent.token_ids == ids and agent.model.action_space.n == 6
    extractor = agent.model.policy.features_extractor
    assert extractor.table is None and torch.equal(extractor.frozen, model.get_input_embeddings().weight)
    agent.learn(8)
    observation, _ = env.reset(seed=0)
    assert agent.predict(observation)[0] in ids
    assert all(set(env.unwrapped.tokenizer.encode(p)) <= set(ids) for p in agent.write_prompts(3))


def test_extractor_pools_over_the_mask():
    space = toy().observation_space
    table = torch.arange(2 * 70, dtype=torch.float32).reshape(70, 2)
    extractor = TokenEmbeddingExtractor(space, embeddings=table, recent=1)
    length = space["input_ids"].shape[0]
    ids = torch.zeros(1, length)
    mask = torch.zeros(1, length)
    ids[0, -2:], mask[0, -2:] = torch.tensor([3.0, 5.0]), 1.0
    features = extractor({"input_ids": ids, "attention_mask": mask})
    assert torch.allclose(features, torch.tensor([[8.0, 9.0, 10.0, 11.0]]))  # mean of rows 3 and 5, then row 5


def test_sb3_save_load_round_trip(tmp_path):
    env = toy()
    agent = SB3Agent(env, SB3Config(algo_kwargs={"n_steps": 8}))
    agent.learn(8)
    agent.save(tmp_path / "sb3")
    loaded = SB3Agent.load(tmp_path / "sb3", env)
    observation, _ = env.reset(seed=0)
    assert agent.predict(observation, deterministic=True)[0] == loaded.predict(observation, deterministic=True)[0]


def test_sb3_bridge_errors():
    with pytest.raises(ValueError, match="token-mode"):
        SB3Agent(gym.make("PromptTune-Toy-v0", action_mode="text"))
    with pytest.raises(ValueError, match="algo must be one of"):
        SB3Config(algo="dqn")
