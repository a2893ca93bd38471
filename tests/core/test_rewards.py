import numpy as np
import pytest

from prompt_gym.rewards import (
    accuracy_reward,
    correct_and_gap,
    get_reward_function,
    margin_reward,
    stableprompt_reward,
    zscore,
)


def _log_probs(probs):
    return np.log(np.array(probs, dtype=np.float64))


# two prompts x three examples x two classes
PROBS = [[[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], [[0.2, 0.8], [0.5, 0.5 + 1e-9], [0.1, 0.9]]]
LABELS = np.array([0, 1, 1])


def test_correct_and_gap():
    correct, gap = correct_and_gap(_log_probs(PROBS), LABELS)
    assert correct.tolist() == [[True, True, False], [False, True, True]]
    np.testing.assert_allclose(gap[0], [0.8, 0.4, -0.2])
    np.testing.assert_allclose(gap[1], [-0.6, 0.0, 0.8], atol=1e-8)


def test_accuracy_and_margin_and_mix():
    acc, parts = accuracy_reward(_log_probs(PROBS), LABELS)
    np.testing.assert_allclose(acc, [2 / 3, 2 / 3])
    margin, _ = margin_reward(_log_probs(PROBS), LABELS, correct_weight=2.0, wrong_weight=1.0)
    np.testing.assert_allclose(margin[0], (2 * 0.8 + 2 * 0.4 - 0.2) / 3)
    mix, mix_parts = stableprompt_reward(_log_probs(PROBS), LABELS, accuracy_weight=30, gap_weight=1)
    np.testing.assert_allclose(mix, 30 * acc + parts["gap"])
    assert set(mix_parts) == {"accuracy", "gap"}


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
        accuracy_reward(np.zeros((2, 3)), LABELS)
