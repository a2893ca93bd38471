import gymnasium as gym
import numpy as np
import pytest
import torch

from prompt_gym.agents.lora_policy import ANCHOR, POLICY


def snapshot(params):
    return [p.detach().clone() for p in params]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def base_params(agent):
    return [p for n, p in agent.policy.model.named_parameters() if "lora_" not in n]


def test_update_trains_policy_only(make_agent):
    agent = make_agent(advantage="critic")  # the value loss moves the adapter even when the batch's rewards tie
    base, anchor = snapshot(base_params(agent)), snapshot(agent.policy.adapter_parameters(ANCHOR))
    policy = snapshot(agent.policy.adapter_parameters(POLICY))
    assert same(policy, anchor)  # the anchor starts as the starting policy
    agent.learn(total_updates=2, progress_bar=False)
    assert agent.num_updates == 2
    assert not same(policy, agent.policy.adapter_parameters(POLICY))
    assert same(anchor, agent.policy.adapter_parameters(ANCHOR))
    assert same(base, base_params(agent))
    record = agent.logger.history[-1]
    for key in ("rollout/reward", "rollout/accuracy", "train/approx_kl", "train/clip_fraction", "anchor/kl",
                "time/target_evaluations"):
        assert key in record


def test_promotion_copies_policy_then_kl_grows(make_agent):
    agent = make_agent(advantage="critic")
    agent.learn(total_updates=2, progress_bar=False)
    agent.promote()
    assert same(agent.policy.adapter_parameters(POLICY), agent.policy.adapter_parameters(ANCHOR))
    assert agent.promotions == 1
    agent.learn(total_updates=3, progress_bar=False)
    assert agent.logger.history[-1]["anchor/kl"] == pytest.approx(0.0, abs=1e-6)  # batch drawn right after promotion
    agent.learn(total_updates=4, progress_bar=False)
    assert abs(agent.logger.history[-1]["anchor/kl"]) > 1e-6
    assert not same(agent.policy.adapter_parameters(POLICY), agent.policy.adapter_parameters(ANCHOR))


def test_rollback_restores_anchor_and_clears_optimizer(make_agent):
    agent = make_agent(advantage="critic")
    anchor = snapshot(agent.policy.adapter_parameters(ANCHOR))
    head = {k: v.clone() for k, v in agent.policy.value_head.state_dict().items()}
    agent.learn(total_updates=2, progress_bar=False)
    assert len(agent.optimizer.state) > 0
    assert not same(anchor, agent.policy.adapter_parameters(POLICY))
    agent.rollback()
    assert same(anchor, agent.policy.adapter_parameters(POLICY))
    assert same(anchor, agent.policy.adapter_parameters(ANCHOR))
    assert all(torch.equal(head[k], v) for k, v in agent.policy.value_head.state_dict().items())
    assert len(agent.optimizer.state) == 0
    assert agent.rollbacks == 1
    agent.learn(total_updates=3, progress_bar=False)  # the optimizer still drives the policy parameters
    assert not same(anchor, agent.policy.adapter_parameters(POLICY))


@pytest.mark.parametrize(("policy_acc", "anchor_acc", "rollback", "expected"), [
    (0.9, 0.5, True, (1, 0)),
    (0.5, 0.9, True, (0, 1)),
    (0.5, 0.9, False, (0, 0)),
    (0.52, 0.5, True, (0, 0)),
])
def test_anchor_check_decisions(make_agent, policy_acc, anchor_acc, rollback, expected):
    agent = make_agent(rollback=rollback, anchor_samples=2, anchor_threshold=0.05)
    agent.learn(total_updates=1, progress_bar=False)
    agent.anchor_scores = []
    calls = []

    def fake_validate(prompts, pool=True):
        calls.append(list(prompts))
        accuracy = policy_acc if len(calls) == 1 else anchor_acc
        return [{"prompt": p, "accuracy": accuracy, "gap": 0.0} for p in prompts]

    agent.validate = fake_validate
    stats = agent.anchor_check()
    assert [len(c) for c in calls] == [2, 2]  # k policy prompts, then k anchor prompts
    assert (agent.promotions, agent.rollbacks) == expected
    assert stats["anchor/delta"] == pytest.approx(policy_acc - anchor_acc)
    assert stats["eval/policy_accuracy"] == pytest.approx(policy_acc)


def test_anchor_estimate_pools_samples_until_the_anchor_changes(make_agent):
    agent = make_agent(anchor_samples=2, anchor_threshold=0.3)
    agent.learn(total_updates=1, progress_bar=False)
    assert len(agent.anchor_scores) == 2  # the starting policy's measurement is the anchor's first estimate
    accuracies = iter([0.6, 0.4, 0.9, 0.3])  # per check: the policy's samples, then the anchor's

    def fake_validate(prompts, pool=True):
        value = next(accuracies)
        return [{"prompt": p, "accuracy": value, "gap": 0.0} for p in prompts]

    agent.validate = fake_validate
    agent.anchor_scores = [0.5, 0.5]
    agent.anchor_check()  # policy 0.6, anchor 0.4 -> pooled anchor (0.5 + 0.5 + 0.4 + 0.4) / 4 = 0.45
    assert agent.anchor_scores == [0.5, 0.5, 0.4, 0.4] and agent.promotions == 0
    stats = agent.anchor_check()  # policy 0.9 vs the pooled anchor 0.4: promote
    assert stats["anchor/anchor_val_accuracy"] == pytest.approx(0.4)
    assert agent.promotions == 1 and agent.anchor_scores == []  # promoted: the old estimate no longer applies


def test_anchor_check_runs_on_schedule_and_uses_validation(make_agent):
    agent = make_agent(anchor_check_interval=2, anchor_samples=2)
    sizes = []
    original = agent.validate

    def spy(prompts, pool=True):
        sizes.append(len(prompts))
        return original(prompts, pool=pool)

    agent.validate = spy
    agent.learn(total_updates=4, progress_bar=False)
    assert sizes == [2, 2, 2, 2, 2]  # the start (policy = anchor), then policy + anchor at updates 2 and 4
    checks = [r for r in agent.logger.history if "anchor/anchor_val_accuracy" in r]
    assert [r["step"] for r in checks] == [2, 4]
    measured = [r["step"] for r in agent.logger.history if "eval/policy_accuracy" in r]
    assert measured == [0, 2, 4]
    assert all("anchor/promotions" in r and "anchor/rollbacks" in r for r in checks)
    assert agent.pool.best() is not None


def test_policy_is_measured_on_fixed_validation_meta_prompts(make_agent):
    agent = make_agent()
    assert agent.validation_contexts(3) == agent.validation_contexts(3)
    before = agent.validation_contexts(2)
    assert before == agent.validation_contexts(3)[:2]
    agent.learn(total_updates=1, progress_bar=False)
    assert agent.validation_contexts(2) == before  # training does not move them


def test_fixed_reference_never_touches_anchor(make_agent):
    agent = make_agent(fixed_reference=True, anchor_check_interval=1, anchor_threshold=0.0)
    anchor = snapshot(agent.policy.adapter_parameters(ANCHOR))
    agent.learn(total_updates=3, progress_bar=False)
    assert same(anchor, agent.policy.adapter_parameters(ANCHOR))
    assert (agent.promotions, agent.rollbacks) == (0, 0)
    assert all("anchor/delta" not in r for r in agent.logger.history)
    assert [r["step"] for r in agent.logger.history if "eval/policy_accuracy" in r] == [0, 1, 2, 3]


def test_shared_weights_target_reads_base_model(fresh_tiny_lm):
    """Agent and target are one model: the target's scores do not move while the policy trains."""
    from prompt_gym.agents.appo.agent import APPOAgent
    from prompt_gym.agents.appo.config import APPOConfig, ModelConfig

    model, tokenizer = fresh_tiny_lm
    env = gym.make("PromptTune-Toy-v0", target=(model, tokenizer), tokenizer=tokenizer, max_prompt_tokens=3,
                   num_demos=1, reward_batch_size=2)
    scorer = env.unwrapped.scorer
    inputs = [e.input for e in env.unwrapped.task.split("validation")[:3]]
    before = scorer.score(["classify it"], inputs)
    agent = APPOAgent(env, APPOConfig(seed=0, learning_rate=5e-2, batch_size=2, minibatch_size=2, ppo_epochs=1),
                      ModelConfig(lora_target_modules=["q_proj", "v_proj"]), model=model, tokenizer=tokenizer)
    assert agent.policy.model.base_model.model is model  # one copy of the weights
    agent.learn(total_updates=2, progress_bar=False)
    np.testing.assert_allclose(scorer.score(["classify it"], inputs), before, atol=1e-5)


def test_update_is_logged_when_the_budget_refuses_the_anchor_check(make_agent, env_factory):
    from prompt_gym.budget import BudgetedScorer, BudgetExhausted

    env = env_factory()
    validation = len(env.unwrapped.task.split("validation"))
    # the start measurement (1 prompt on validation) and 2 episodes of 4 examples fit; the check (2 prompts) does not
    scorer = BudgetedScorer(env.unwrapped.scorer, limit=validation + 8 + validation)
    agent = make_agent(env=env_factory(scorer=scorer), anchor_check_interval=1)
    with pytest.raises(BudgetExhausted):
        agent.learn(total_updates=1, progress_bar=False)
    assert agent.num_updates == 1 and agent.promotions == agent.rollbacks == 0
    record = agent.logger.history[-1]
    assert record["step"] == 1 and "train/approx_kl" in record
    assert record["time/target_evaluations"] == scorer.num_evaluations


def test_selection_evaluations_counts_greedy_and_final_samples(make_agent, toy_env):
    agent = make_agent(final_samples=3)
    assert agent.selection_evaluations() == 4 * len(toy_env.unwrapped.task.split("validation"))


def test_elite_replay_keeps_the_best_distinct_episodes(make_agent):
    from prompt_gym.agents.rollout import Trajectory

    agent = make_agent(batch_size=2, elite_replay=2)
    batch = [Trajectory([1], [5, 6], 3.0), Trajectory([2], [7], 1.0)]
    agent._keep_elites(batch)
    agent._keep_elites([Trajectory([3], [5, 6], 9.0), Trajectory([4], [8], 2.0)])  # [5, 6] again: kept once
    assert [(t.actions, t.reward) for t in agent.elites] == [([5, 6], 9.0), ([8], 2.0)]
    replayed = agent._replayed([Trajectory([9], [8], 0.0), Trajectory([9], [1], 0.0)])
    assert [t.actions for t in replayed] == [[5, 6]]  # [8] is in the fresh batch already


def test_elite_replay_trains_on_fresh_and_replayed_episodes(make_agent):
    agent = make_agent(batch_size=2, elite_replay=2)
    agent.learn(total_updates=3, progress_bar=False)
    replayed = [r["train/replayed_episodes"] for r in agent.logger.history if "train/replayed_episodes" in r]
    assert replayed[0] == 0 and max(replayed) > 0 and len(agent.elites) == 2
    assert agent.elites[0].reward >= agent.elites[1].reward
