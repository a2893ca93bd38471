import math

import pytest
import torch

from prompt_gym.agents.appo import loss as L


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 0.0]])
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    gamma, lam = 0.9, 0.5
    adv, ret = L.gae(rewards, values, mask, gamma, lam)
    d2 = 1.0 - 0.3
    d1 = 0.0 + 0.9 * 0.3 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.1
    a1 = d1 + 0.45 * d2
    a0 = d0 + 0.45 * a1
    assert adv[0].tolist() == pytest.approx([a0, a1, d2])
    e1 = 2.0 - 0.5  # episode ends after token 1: the next value is 0, padding is ignored
    e0 = 0.5 + 0.9 * 0.5 - 0.4 + 0.45 * e1
    assert adv[1].tolist() == pytest.approx([e0, e1, 0.0])
    assert ret[1].tolist() == pytest.approx([e0 + 0.4, e1 + 0.5, 0.0])


def test_token_rewards_put_score_on_last_token_and_penalise_kl():
    kl = torch.tensor([[0.1, 0.2, 0.3], [1.0, -1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = L.token_rewards(torch.tensor([3.0, -1.0]), kl, mask, kl_coef=0.5)
    assert rewards[0].tolist() == pytest.approx([-0.05, -0.1, -0.15 + 3.0])
    assert rewards[1].tolist() == pytest.approx([-0.5, 0.5 - 1.0, 0.0])


def test_kl_to_anchor_is_logprob_difference():
    assert L.kl_to_anchor(torch.tensor([-1.0]), torch.tensor([-3.0])).item() == pytest.approx(2.0)


def test_policy_loss_clips_ratio():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    loss, stats = L.policy_loss(new, old, adv, mask, clip_range=0.2)
    # token 0: ratio 1.5, A=1 -> min(1.5, 1.2) = 1.2; token 1: ratio 0.5, A=-1 -> max(0.5, 0.8)*-1 = -0.8 -> loss 0.8
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert stats["clip_fraction"] == pytest.approx(1.0)
    expected_kl = ((1.5 - 1 - math.log(1.5)) + (0.5 - 1 - math.log(0.5))) / 2
    assert stats["approx_kl"] == pytest.approx(expected_kl)


def test_policy_loss_ignores_padding():
    old = torch.zeros(1, 2)
    new = torch.tensor([[0.0, 5.0]])
    loss, stats = L.policy_loss(new, old, torch.tensor([[2.0, 100.0]]), torch.tensor([[1.0, 0.0]]), 0.2)
    assert loss.item() == pytest.approx(-2.0)
    assert stats["approx_kl"] == pytest.approx(0.0)
    assert stats["clip_fraction"] == 0.0


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    values = torch.tensor([[2.0]])
    old = torch.tensor([[0.0]])
    returns = torch.tensor([[3.0]])
    loss, stats = L.value_loss(values, old, returns, torch.ones(1, 1), clip_range_value=0.5)
    # unclipped (2-3)^2 = 1, clipped (0.5-3)^2 = 6.25 -> 0.5 * 6.25
    assert loss.item() == pytest.approx(3.125)
    assert stats["value_clip_fraction"] == 1.0


def test_explained_variance():
    targets = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.ones_like(targets)
    assert L.explained_variance(targets, targets, mask).item() == pytest.approx(1.0)
    assert L.explained_variance(torch.zeros_like(targets) + 2.5, targets, mask).item() == pytest.approx(0.0)
    assert math.isnan(L.explained_variance(targets, torch.ones_like(targets), mask).item())


def test_whiten_zero_mean_unit_variance_on_mask():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = L.whiten(values, mask)
    assert out[0, 3].item() == 0.0
    assert L.masked_mean(out, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert L.masked_mean(out**2, mask).item() == pytest.approx(1.0, rel=1e-4)


def test_batch_advantages_are_return_to_go_minus_batch_mean():
    scores = torch.tensor([3.0, 1.0])
    kl = torch.tensor([[0.5, 1.0], [2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = L.batch_advantages(scores, kl, mask, kl_coef=0.1)
    returns = [3.0 - 0.15, 1.0 - 0.2]  # score minus beta * the episode's summed KL
    baseline = sum(returns) / 2
    assert adv[0].tolist() == pytest.approx([returns[0] - baseline, 3.0 - 0.1 - baseline])
    assert adv[1].tolist() == pytest.approx([returns[1] - baseline, 0.0])


def test_kl_share_compares_penalty_spread_to_score_spread():
    mask = torch.ones(2, 1)
    assert L.kl_share(torch.tensor([0.0, 2.0]), torch.tensor([[0.0], [20.0]]), mask, 0.1) == pytest.approx(1.0)
    assert math.isnan(L.kl_share(torch.tensor([1.0, 1.0]), torch.zeros(2, 1), mask, 0.1))
