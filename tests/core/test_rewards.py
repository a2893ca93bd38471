import re
from pathlib import Path

import numpy as np
import pytest

from prompt_gym.data import Example
from prompt_gym.rewards import (
    REWARD_FUNCTIONS,
    PromptJudge,
    accuracy_reward,
    get_reward_function,
    margin_reward,
    reward_options,
    stableprompt_reward,
    zscore,
)
from prompt_gym.scoring import ExampleScores, correct_and_gap


def _log_probs(probs):
    return np.log(np.array(probs, dtype=np.float64))


# two prompts x three examples x two classes
PROBS = [[[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], [[0.2, 0.8], [0.5, 0.5 + 1e-9], [0.1, 0.9]]]
LABELS = np.array([0, 1, 1])


def _scores_and_gaps():
    correct, gap = correct_and_gap(_log_probs(PROBS), LABELS)
    return correct.astype(float), gap


def test_correct_and_gap():
    correct, gap = correct_and_gap(_log_probs(PROBS), LABELS)
    assert correct.tolist() == [[True, True, False], [False, True, True]]
    np.testing.assert_allclose(gap[0], [0.8, 0.4, -0.2])
    np.testing.assert_allclose(gap[1], [-0.6, 0.0, 0.8], atol=1e-8)


def test_accuracy_and_margin_and_mix():
    scores, gaps = _scores_and_gaps()
    acc, parts = accuracy_reward(scores, gaps)
    np.testing.assert_allclose(acc, [2 / 3, 2 / 3])
    margin, _ = margin_reward(scores, gaps, correct_weight=2.0, wrong_weight=1.0)
    np.testing.assert_allclose(margin[0], (2 * 0.8 + 2 * 0.4 - 0.2) / 3)
    mix, mix_parts = stableprompt_reward(scores, gaps, accuracy_weight=30, gap_weight=1)
    np.testing.assert_allclose(mix, 30 * acc + parts["gap"])
    assert set(mix_parts) == {"accuracy", "gap"}


def test_without_gaps_the_rewards_use_the_metric_only():
    """Generation tasks: gaps is None; the parts hold only the metric's mean, as ``accuracy``."""
    scores = np.array([[1.0, 0.5, 0.0], [1.0, 1.0, 0.25]])
    acc, parts = accuracy_reward(scores, None)
    np.testing.assert_allclose(acc, [0.5, 0.75])
    assert set(parts) == {"accuracy"}
    mix, mix_parts = stableprompt_reward(scores, None)
    np.testing.assert_allclose(mix, 30 * acc)
    assert set(mix_parts) == {"accuracy"}
    with pytest.raises(ValueError, match="needs class gaps"):
        margin_reward(scores, None)


def test_gap_uses_the_verbalizer_classes_only():
    # three classes: the gap is against the best *wrong* class, not the vocabulary
    log_probs = _log_probs([[[0.5, 0.3, 0.2]]])
    _, gap = correct_and_gap(log_probs, np.array([0]))
    np.testing.assert_allclose(gap, [[0.2]])


def test_zscore():
    np.testing.assert_allclose(zscore(np.array([1.0, 3.0])), [-1.0, 1.0], atol=1e-6)
    assert zscore(np.array([5.0])).tolist() == [0.0]
    assert zscore(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]


def test_bad_input():
    with pytest.raises(KeyError, match="choose one of"):
        get_reward_function("nope")
    with pytest.raises(ValueError, match="Expected log_probs"):
        correct_and_gap(np.zeros((2, 3)), LABELS)
    with pytest.raises(ValueError, match="Expected scores"):
        accuracy_reward(np.zeros(3), None)
    with pytest.raises(ValueError, match="Expected gaps"):
        accuracy_reward(np.zeros((2, 3)), np.zeros((2, 2)))


def test_every_built_in_reward_has_the_one_signature():
    scores, gaps = _scores_and_gaps()
    for name, reward in REWARD_FUNCTIONS.items():
        rewards, parts = reward(scores, gaps)
        assert rewards.shape == (2,) and parts["accuracy"].shape == (2,), name
    assert reward_options(stableprompt_reward) == ["accuracy_weight", "gap_weight"]
    assert reward_options(lambda scores, gaps, **options: None) is None


class _FixedScorer:
    """A target that returns given per-example results."""

    metric = "accuracy"
    verbalizer = ("negative", "positive")
    num_evaluations = 0

    def __init__(self, scores, gaps):
        self.scores, self.gaps = np.asarray(scores, dtype=float), gaps

    def score_examples(self, prompts, examples):
        self.num_evaluations += len(prompts)
        gaps = None if self.gaps is None else np.asarray(self.gaps, dtype=float)[: len(prompts)]
        return ExampleScores(self.scores[: len(prompts)], gaps)


BATCH = [Example("a", 0), Example("b", 1)]


def test_judge_takes_a_name_or_a_callable():
    scorer = _FixedScorer([1.0, 0.0, 1.0, 1.0], [0.5, -0.25, 0.5, 0.5])
    by_name = PromptJudge(scorer, "stableprompt", {"gap_weight": 2.0}).judge(["p", "q"], [BATCH, BATCH])
    assert by_name[0] == pytest.approx({"reward": 30 * 0.5 + 2 * 0.125, "accuracy": 0.5, "gap": 0.125})
    assert by_name[1] == pytest.approx({"reward": 30 + 2 * 0.5, "accuracy": 1.0, "gap": 0.5})

    def best_only(scores, gaps, bonus=1.0):
        return scores.min(axis=1) * bonus, {"all_right": scores.min(axis=1)}

    results = PromptJudge(scorer, best_only, {"bonus": 5}).judge(["p", "q"], [BATCH, BATCH])
    assert results == [{"reward": 0.0, "all_right": 0.0}, {"reward": 5.0, "all_right": 1.0}]


def test_judge_explains_a_bad_reward():
    scorer = _FixedScorer([1.0, 0.0], None)
    with pytest.raises(TypeError, match="reward must be the name of a reward function"):
        PromptJudge(scorer, 3)
    with pytest.raises(TypeError, match=r"takes \(scores, gaps, \*\*options\)"):
        PromptJudge(scorer, lambda scores: (scores, {}))
    with pytest.raises(ValueError, match=r"\['weight'\] are not options of the 'mine' reward"):
        def mine(scores, gaps):
            return scores.mean(axis=1), {}
        PromptJudge(scorer, mine, {"weight": 2})
    with pytest.raises(ValueError, match="one value per prompt"):
        PromptJudge(scorer, lambda scores, gaps: (1.0, {})).judge(["p"], [BATCH])
    with pytest.raises(ValueError, match="needs class gaps"):
        PromptJudge(scorer, "margin").judge(["p"], [BATCH])
    generation = _FixedScorer([1.0], None)
    generation.metric = "exact_match"
    with pytest.raises(ValueError, match="needs class gaps, which only classification targets give"):
        PromptJudge(generation, "margin")  # refused when the env is made, not at its first episode


def _doc_blocks():
    """The ``python`` code blocks of docs/rewards.md, in order."""
    text = (Path(__file__).parents[2] / "docs" / "rewards.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_change_the_reward_recipes_run_on_the_toy_env(capsys):
    """Every recipe of docs/rewards.md, run as written: reweighting, a callable, the vector env's z-score, calibration."""
    reweight, custom, normalise, calibrate = _doc_blocks()
    scope = {}
    exec(reweight, scope)
    assert scope["terminated"] and scope["reward"] == pytest.approx(30 * scope["info"]["accuracy"])

    scope = {}
    exec(custom, scope)
    assert scope["terminated"] and scope["reward"] == scope["info"]["confident"]
    assert 0 <= scope["reward"] <= scope["info"]["accuracy"]

    scope = {}
    exec(normalise, scope)
    rewards, raw = scope["rewards"], scope["info"]["final_info"]["raw_reward"]
    assert scope["terminated"].all() and raw.std() > 0
    np.testing.assert_allclose(rewards, zscore(raw))

    scope = {}
    exec(calibrate, scope)
    env = scope["env"].unwrapped
    assert scope["terminated"] and env.scorer.calibration == "batch"
    assert env.evaluations_per_episode == env.sampler.reward_batch_size + len(env.task.split("train"))
    capsys.readouterr()
