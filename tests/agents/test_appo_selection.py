"""APPO's final choice: every validated prompt competes ("checks"), or only prompts screened on their training reward."""

import pytest


def _validated_prompts(agent, monkeypatch):
    """Record every prompt ``agent.validate`` scores, with whether it was offered to the pool."""
    seen = []
    original = agent.validate

    def spy(prompts, pool=True):
        seen.extend((prompt, pool) for prompt in prompts)
        return original(prompts, pool=pool)

    monkeypatch.setattr(agent, "validate", spy)
    return seen


def test_screened_pool_holds_only_best_rewarded_training_prompts(make_agent, monkeypatch):
    agent = make_agent(selection="screened", screen_samples=1, anchor_check_interval=1, anchor_samples=2,
                       batch_size=2, final_samples=1)
    seen = _validated_prompts(agent, monkeypatch)
    agent.learn(total_updates=3, progress_bar=False)
    trained = {prompt for _, prompt in agent.screened}
    assert len(agent.screened) == 3 * 2  # every fresh training episode, with its reward
    pooled = [prompt for prompt, pool in seen if pool]
    assert pooled and set(pooled) <= trained  # anchor-check samples were validated but kept out of the pool
    assert any(not pool for _, pool in seen)
    assert {entry["prompt"] for entry in agent.pool.entries} <= trained
    checks = [r for r in agent.logger.history if "eval/screened_val_accuracy" in r]
    assert len(checks) == 3
    # each check validated the best-rewarded training prompt of its own updates
    assert pooled[0] == max(agent.screened[:2], key=lambda item: item[0])[1]

    before = set(agent.validated)
    chosen = agent.select_prompt()
    assert chosen["prompt"] in trained
    assert len(agent.validated - before) <= 2 and not (agent.validated - before) & before


def test_checks_pool_takes_every_anchor_check_sample(make_agent, monkeypatch):
    agent = make_agent(anchor_check_interval=1, anchor_samples=2, batch_size=2)
    seen = _validated_prompts(agent, monkeypatch)
    agent.learn(total_updates=2, progress_bar=False)
    assert seen and all(pool for _, pool in seen)
    assert agent.screened == [] and "eval/screened_val_accuracy" not in agent.logger.history[-1]


@pytest.mark.parametrize("bad", [{"selection": "best"}, {"screen_samples": 0}])
def test_bad_selection_settings_are_refused(bad):
    from prompt_gym.agents.appo.config import APPOConfig

    with pytest.raises(ValueError, match="selection|screen_samples"):
        APPOConfig(**bad)
