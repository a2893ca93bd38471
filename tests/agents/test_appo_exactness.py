"""APPO's update is exactly on-policy: ratio 1 for unchanged weights, the sampling temperature in every
log-prob, and every LoRA weight (embeddings included) optimised and copied between adapters."""

import pytest
import torch

from prompt_gym.agents.appo import loss as L
from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.agents.lora_policy import ANCHOR, POLICY
from prompt_gym.testing import build_tiny_lm
from prompt_gym.toy import WordTokenizer


def capture_first_policy_loss(monkeypatch):
    calls = []
    original = L.policy_loss

    def spy(logprobs, old_logprobs, advantages, mask, clip_range):
        calls.append((logprobs.detach().clone(), old_logprobs.clone(), mask.clone()))
        return original(logprobs, old_logprobs, advantages, mask, clip_range)

    monkeypatch.setattr(L, "policy_loss", spy)
    return calls


@pytest.mark.parametrize("advantage", ["batch", "critic"])
def test_ratio_is_one_before_the_first_step(make_agent, monkeypatch, advantage):
    calls = capture_first_policy_loss(monkeypatch)
    values = []
    original_value_loss = L.value_loss
    monkeypatch.setattr(L, "value_loss", lambda v, old, *a: values.append((v.detach(), old)) or original_value_loss(
        v, old, *a))
    agent = make_agent(ppo_epochs=1, advantage=advantage)
    agent.learn(total_updates=1, progress_bar=False)
    logprobs, old_logprobs, mask = calls[0]
    assert torch.equal(logprobs * mask, old_logprobs * mask)
    for new, old in values:
        assert torch.equal(new, old)


def test_lora_dropout_is_refused_for_ppo_style_agents(word_lm, toy_env):
    model, tokenizer = word_lm
    with pytest.raises(ValueError, match="lora_dropout=0"):
        APPOAgent(toy_env, None, ModelConfig(lora_dropout=0.1), model=model, tokenizer=tokenizer)


def test_old_logprobs_are_the_sampling_distribution_at_any_temperature(make_agent, monkeypatch):
    calls = capture_first_policy_loss(monkeypatch)
    agent = make_agent(temperature=0.5, batch_size=1, minibatch_size=1, ppo_epochs=1)
    sampled = []
    original_sample = agent.decoder.sample

    def recording_sample(state, deterministic=False):
        tokens = original_sample(state, deterministic)
        logprobs = torch.log_softmax(state.logits / 0.5, dim=-1)
        sampled.append(float(logprobs[0, tokens[0]]))
        return tokens

    agent.decoder.sample = recording_sample
    measure_start = agent.measure_start
    agent.measure_start = lambda: (measure_start(), sampled.clear())  # keep only the training episode's tokens
    agent.learn(total_updates=1, progress_bar=False)
    _, old_logprobs, mask = calls[0]
    steps = int(mask.sum())
    assert old_logprobs[0, :steps].tolist() == pytest.approx(sampled[:steps], abs=1e-5)
    assert max(abs(x) for x in sampled) > 0  # a real distribution, not a one-hot


def test_embedding_lora_is_optimised_and_copied(word_lm, toy_env):
    model, tokenizer = word_lm
    config = ModelConfig(lora_target_modules=["q_proj", "v_proj", "embed_tokens"])
    algorithm = APPOConfig(seed=0, learning_rate=1e-2, advantage="critic", batch_size=4, minibatch_size=4,
                           anchor_check_interval=1000, anchor_samples=1)
    agent = APPOAgent(toy_env, algorithm, config, model=model, tokenizer=tokenizer)
    named = dict(agent.policy.model.named_parameters())
    embedding = [n for n in named if "lora_embedding" in n and n.split(".")[-1] == POLICY]
    assert embedding, "peft added no embedding LoRA"
    trained = {id(p) for p in agent.policy.trainable_parameters()}
    assert all(id(named[n]) in trained for n in embedding)
    before = {n: named[n].detach().clone() for n in embedding}
    agent.learn(total_updates=2, progress_bar=False)
    assert any(not torch.equal(before[n], named[n]) for n in embedding)
    agent.promote()
    for name in embedding:
        assert torch.equal(named[name], named[name[: -len(POLICY)] + ANCHOR])


def test_shared_context_logprobs_equal_the_plain_layout(make_agent):
    """One meta-prompt for every episode: encoded once, same log-probs, values, entropy and gradients."""
    agent = make_agent(advantage="critic")
    policy = agent.policy
    context = [3, 4, 5, 6, 7, 8, 9]
    actions = [[10, 11, 12], [13], [14, 15]]
    shared = policy.sequence_logprobs([context] * 3, actions, agent.pad_id, 0.7, with_entropy=True)
    plain = [policy.sequence_logprobs([context], [action], agent.pad_id, 0.7, with_entropy=True) for action in actions]
    for index, (shared_part, name) in enumerate(zip(shared, ("logprobs", "values", "mask", "entropy"), strict=True)):
        for row, one in enumerate(plain):
            width = one[index].shape[1]
            torch.testing.assert_close(shared_part[row, :width], one[index][0], rtol=1e-5, atol=1e-5, msg=name)
    loss = (shared[0].sum() + shared[1].sum())
    grads = torch.autograd.grad(loss, policy.trainable_parameters(), allow_unused=True)
    plain_loss = sum(one[0].sum() + one[1].sum() for one in plain)
    plain_grads = torch.autograd.grad(plain_loss, policy.trainable_parameters(), allow_unused=True)
    for grad, plain_grad in zip(grads, plain_grads, strict=True):
        if grad is not None or plain_grad is not None:
            torch.testing.assert_close(grad, plain_grad, rtol=1e-4, atol=1e-6)


def test_shared_context_prefill_equals_separate_rows(make_agent):
    agent = make_agent()
    context = [3, 4, 5, 6, 7]
    shared = agent.decoder.prefill([context] * 3)
    single = agent.decoder.prefill([context])
    for row in range(3):
        torch.testing.assert_close(shared.logits[row], single.logits[0])
    agent.decoder.feed(shared, [10, None, 11])  # rows go their own way after the shared start
    reference = agent.decoder.prefill([[*context, 10], [*context, 11]])
    torch.testing.assert_close(shared.logits[[0, 2]], reference.logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("advantage", ["batch", "critic"])
def test_old_logprobs_from_the_first_pass_equal_a_separate_pass(env_factory, advantage):
    """The default whole-batch update reuses its first forward pass for the old log-probs: same result."""
    def trained(shortcut: bool):
        tokenizer = WordTokenizer()
        config = APPOConfig(seed=0, learning_rate=1e-2, batch_size=4, minibatch_size=None, elite_replay=2,
                            advantage=advantage, anchor_check_interval=1000, anchor_samples=1, final_samples=1)
        agent = APPOAgent(env_factory(), config, ModelConfig(lora_target_modules=["q_proj", "v_proj"]),
                          model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
        if not shortcut:
            agent._first_pass_gives_old_logprobs = lambda batch_size: False
        agent.learn(total_updates=3)
        weights = torch.cat([p.detach().flatten() for p in agent.policy.trainable_parameters()])
        return weights, agent.logger.history[-1]

    fast_weights, fast_stats = trained(shortcut=True)
    plain_weights, plain_stats = trained(shortcut=False)
    torch.testing.assert_close(fast_weights, plain_weights, rtol=1e-4, atol=1e-5)
    for key in ("train/loss", "train/approx_kl", "train/policy_grad_norm", "train/entropy"):
        assert fast_stats[key] == pytest.approx(plain_stats[key], rel=1e-3, abs=1e-6), key
