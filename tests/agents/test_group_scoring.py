"""Agents that write a group of prompts for one meta-prompt have the env score them in one target call."""

from prompt_gym.agents.rollout import EnvAdapter
from prompt_gym.testing import CallCountingScorer
from prompt_gym.toy import rule_scorer, toy_task


def test_agents_play_a_shared_meta_prompt_group_with_one_target_call(make_agent, env_factory, monkeypatch):
    counter = CallCountingScorer(rule_scorer(toy_task()))
    agent = make_agent(env=env_factory(scorer=counter), batch_size=4)
    fixed = [("alpha", agent._encode("review good")), ("beta", agent._encode("bad")),
             ("gamma", agent._encode("review")), ("delta", [])]
    monkeypatch.setattr(agent, "write_prompts", lambda contexts, **kwargs: fixed[: len(contexts)])
    state = agent.rng.bit_generator.state
    ahead = agent.play_group(4, same_meta_prompt=True)
    calls_ahead = counter.calls
    agent.rng.bit_generator.state = state
    monkeypatch.setattr(EnvAdapter, "judge_ahead", lambda self, prompts: 0)
    plain = agent.play_group(4, same_meta_prompt=True)
    assert (calls_ahead, counter.calls - calls_ahead) == (1, 4)
    assert [t.reward for t in ahead] == [t.reward for t in plain]
    assert [t.actions for t in ahead] == [t.actions for t in plain]
