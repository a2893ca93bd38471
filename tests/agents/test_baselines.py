"""Manual prompt, random search and the group-baseline policy gradient on the toy env with a tiny LM."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import prompt_gym  # noqa: F401
from prompt_gym.agents import AGENTS, make_agent
from prompt_gym.agents.baselines import ManualAgent, RandomSearchAgent, RandomSearchConfig
from prompt_gym.agents.lora_policy import ANCHOR, POLICY
from prompt_gym.agents.pg_group import PGGroupAgent, PGGroupConfig, group_advantages, pg_group_loss
from prompt_gym.callbacks import Callback
from prompt_gym.testing import build_tiny_lm

TOY_VALIDATION = 8
TOY_EPISODE = 8  # reward_batch_size of PromptTune-Toy-v0


def toy(action_mode="text"):
    return gym.make("PromptTune-Toy-v0", action_mode=action_mode)


def tiny(env):
    tokenizer = env.unwrapped.tokenizer
    return {"model": build_tiny_lm(tokenizer), "tokenizer": tokenizer}


def test_registry_names_and_unknown_agent():
    assert {"appo", "ppo", "pg-group", "random-search", "manual", "sb3:ppo", "sb3:a2c"} <= set(AGENTS)
    with pytest.raises(ValueError, match="Unknown agent 'grpo'.*pg-group"):
        make_agent("grpo", toy())


def test_ppo_is_appo_with_a_fixed_reference():
    env = toy()
    ppo = make_agent("ppo", env, seed=3, **tiny(env))
    appo = make_agent("appo", env, seed=3, **tiny(env))
    assert ppo.config.fixed_reference and not appo.config.fixed_reference
    assert ppo.config.seed == 3


@pytest.mark.parametrize("action_mode", ["token", "text"])
def test_manual_agent_writes_the_task_prompt(action_mode):
    env = toy(action_mode)
    agent = ManualAgent(env)
    observation, _ = env.reset(seed=0)
    state, done, steps = None, False, 0
    while not done:
        action, state = agent.predict(observation, state)
        observation, reward, done, _, info = env.step(action)
        steps += 1
    assert re.findall(r"\w+", info["prompt"].lower()) == re.findall(r"\w+", env.unwrapped.task.manual_prompt.lower())
    assert info["accuracy"] == 1.0
    assert agent.learn(1000) is agent and agent.num_timesteps == 0
    best = agent.select_prompt()
    assert best["prompt"] == env.unwrapped.task.manual_prompt and best["val_accuracy"] == 1.0
    assert agent.selection_evaluations() == TOY_VALIDATION


def test_random_search_screens_on_episodes_and_selects_on_validation():
    env = toy()
    agent = RandomSearchAgent(env, RandomSearchConfig(seed=0, batch_size=3, eval_interval=1, eval_samples=1,
                                                      final_samples=2), **tiny(env))
    agent.learn(total_updates=2)
    scorer = env.unwrapped.scorer
    assert len(agent.candidates) == 6 and agent.num_timesteps == 6  # text mode: one step per prompt
    assert scorer.num_evaluations == 6 * TOY_EPISODE + 2 * TOY_VALIDATION
    assert len(agent.logger.history) == 2 and agent.logger.history[-1]["time/target_evaluations"] == 64
    best = agent.select_prompt()
    assert best["prompt"] in {prompt for _, prompt in agent.candidates}
    assert best["val_accuracy"] == max(entry["val_accuracy"] for entry in agent.pool.to_list())
    assert scorer.num_evaluations <= 64 + agent.selection_evaluations()


def test_random_search_save_load_round_trip(tmp_path):
    env = toy()
    agent = RandomSearchAgent(env, RandomSearchConfig(seed=1, batch_size=2, eval_interval=1), **tiny(env))
    agent.learn(total_updates=1)
    agent.save(tmp_path / "rs")
    loaded = RandomSearchAgent.load(tmp_path / "rs", env, **tiny(env))
    assert loaded.candidates == agent.candidates and loaded.pool.to_list() == agent.pool.to_list()
    assert loaded.num_updates == 1


def test_group_advantages_and_loss_on_hand_made_tensors():
    rewards = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    assert torch.allclose(group_advantages(rewards, scale_by_std=False), torch.tensor([[-1.0, 1.0], [0.0, 0.0]]))
    scaled = group_advantages(rewards, scale_by_std=True)
    assert torch.allclose(scaled[0], torch.tensor([-1.0, 1.0]) / 2**0.5, atol=1e-5) and torch.all(scaled[1] == 0)
    logprobs = torch.log(torch.tensor([[0.5, 0.5], [0.2, 1.0]])).requires_grad_()
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, stats = pg_group_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), mask, kl_coef=0.1)
    loss.backward()
    assert stats["kl_to_reference"] == pytest.approx(0.0)
    assert logprobs.grad[0, 0] < 0 < logprobs.grad[1, 0]  # raise the good episode, lower the bad one
    assert logprobs.grad[1, 1] == 0  # padding gets no gradient


def test_pg_group_judges_a_group_on_one_meta_prompt():
    env = toy()
    agent = PGGroupAgent(env, PGGroupConfig(seed=0, group_size=3), **tiny(env))
    group = agent.play_group(3, same_meta_prompt=True)
    assert len({tuple(t.context) for t in group}) == 1
    assert len({tuple(t.info["demo_uids"]) for t in group}) == 1
    assert all(t.actions for t in group)


@pytest.mark.parametrize("action_mode", ["token", "text"])
def test_pg_group_updates_train_the_policy_adapter_only(action_mode):
    env = toy(action_mode)
    agent = PGGroupAgent(env, PGGroupConfig(seed=0, group_size=3, learning_rate=1e-2, eval_interval=2), **tiny(env))
    base = {n: p.detach().clone() for n, p in agent.policy.model.named_parameters() if "lora_" not in n}
    policy = [p.detach().clone() for p in agent.policy.adapter_parameters(POLICY)]
    anchor = [p.detach().clone() for p in agent.policy.adapter_parameters(ANCHOR)]
    agent.learn(total_updates=2)
    assert agent.num_updates == 2
    assert any(not torch.equal(a, b) for a, b in zip(policy, agent.policy.adapter_parameters(POLICY), strict=False))
    assert all(torch.equal(a, b) for a, b in zip(anchor, agent.policy.adapter_parameters(ANCHOR), strict=False))
    assert all(torch.equal(p, base[n]) for n, p in agent.policy.model.named_parameters() if n in base)
    record = agent.logger.history[-1]
    assert record["time/updates"] == 2 and record["eval/best_val_accuracy"] >= 0.0
    # 2 prompts measure the starting policy, 2 updates of 3 episodes, 2 prompts measure it at update 2
    assert record["time/target_evaluations"] == 2 * TOY_VALIDATION + 2 * 3 * TOY_EPISODE + 2 * TOY_VALIDATION
    assert [r["step"] for r in agent.logger.history if "eval/policy_accuracy" in r] == [0, 2]


def test_pg_group_save_load_round_trip(tmp_path):
    env = toy()
    agent = PGGroupAgent(env, PGGroupConfig(seed=0, group_size=2, learning_rate=1e-2), **tiny(env))
    agent.learn(total_updates=1)
    agent.save(tmp_path / "pg")
    loaded = PGGroupAgent.load(tmp_path / "pg", env, **tiny(env))
    for a, b in zip(agent.policy.adapter_parameters(POLICY), loaded.policy.adapter_parameters(POLICY), strict=False):
        assert torch.equal(a, b)
    context = env.unwrapped.sampler.sample(np.random.default_rng(0)).meta_ids
    assert agent.write_prompts([context], deterministic=True) == loaded.write_prompts([context], deterministic=True)


def test_pg_group_rejects_a_group_of_one():
    with pytest.raises(ValueError, match="group_size must be at least 2"):
        PGGroupConfig(group_size=1)


class StopAfter(Callback):
    """Counts the hooks it receives and stops training after ``updates`` updates."""

    def __init__(self, updates: int) -> None:
        super().__init__()
        self.updates, self.seen, self.started, self.ended = updates, 0, False, False

    def _on_training_start(self) -> None:
        self.started = True

    def _on_update_end(self) -> bool:
        self.seen += 1
        return self.seen < self.updates

    def _on_training_end(self) -> None:
        self.ended = True


@pytest.mark.parametrize("kind", ["random-search", "pg-group"])
def test_callbacks_stop_the_group_agents(kind):
    env = toy()
    if kind == "random-search":
        agent = RandomSearchAgent(env, RandomSearchConfig(seed=0, batch_size=2), **tiny(env))
    else:
        agent = PGGroupAgent(env, PGGroupConfig(seed=0, group_size=2, groups_per_update=1), **tiny(env))
    callback = StopAfter(2)
    agent.learn(total_updates=5, callback=callback)
    assert agent.num_updates == 2 and callback.seen == 2 and callback.started and callback.ended


def test_manual_agent_runs_the_training_hooks():
    callback = StopAfter(1)
    ManualAgent(toy()).learn(total_timesteps=10, callback=callback)
    assert callback.started and callback.ended and callback.seen == 0


@pytest.mark.parametrize("name", ["pg-group", "random-search"])
def test_checkpoint_resume_equals_uninterrupted_run(name, tmp_path):
    """The group policy gradient and random search resume exactly, like APPO (compare resumes them)."""
    from prompt_gym.agents.registry import make_agent

    def build():
        env = toy("text")
        options = {"group_size": 2, "learning_rate": 1e-2} if name == "pg-group" else {"batch_size": 2}
        return make_agent(name, env, seed=0, eval_interval=2, **tiny(env), **options)

    straight = build()
    straight.learn(total_updates=4)
    first = build()
    first.learn(total_updates=2)
    first.save_checkpoint(tmp_path / "ckpt")
    resumed = build()
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert resumed.num_updates == 2
    resumed.learn(total_updates=4)
    for a, b in zip(straight.policy.adapter_parameters(POLICY), resumed.policy.adapter_parameters(POLICY), strict=True):
        torch.testing.assert_close(a, b)
    assert resumed.pool.to_list() == straight.pool.to_list()
    assert resumed.num_timesteps == straight.num_timesteps
