"""Content-free calibration: the formula, its cost in evaluations, budgets, envs, runs and the real target."""

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest

import prompt_gym  # noqa: F401  (registers the envs)
from prompt_gym.budget import BudgetedScorer, BudgetExhausted
from prompt_gym.calibration import CONTENT_FREE_INPUTS, CalibratedScorer, calibrated, calibration_inputs
from prompt_gym.data import Example
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.runs.compare import CompareConfig, run_comparison, run_dir
from prompt_gym.runs.pipeline import score_on_test
from prompt_gym.scoring import BaseScorer, LMScorer
from prompt_gym.targets import make_scorer
from prompt_gym.tasks import Task, get_task

TOY = "PromptTune-Toy-v0"


class BiasedScorer(BaseScorer):
    """Class logits = the input's true signal + a bias that depends on the prompt only."""

    verbalizer = ("no", "yes")

    def __init__(self) -> None:
        self.num_evaluations = 0

    def score_pairs(self, prompts, inputs):
        self.num_evaluations += len(prompts)
        rows = []
        for prompt, source in zip(prompts, inputs, strict=True):
            signal = {"good": [0.0, 1.0], "bad": [1.0, 0.0]}.get(source, [0.0, 0.0])
            bias = [0.0, 3.0 if "yes" in prompt else -3.0]
            logits = np.add(signal, bias)
            rows.append(logits - np.log(np.exp(logits).sum()))
        return np.array(rows, dtype=np.float32)


def content_free(scorer, **kwargs):
    return CalibratedScorer(scorer, CONTENT_FREE_INPUTS, "content-free", **kwargs)


def test_calibration_divides_out_the_mean_content_free_probabilities():
    raw = BiasedScorer()
    scorer = content_free(BiasedScorer())
    out = scorer.score_pairs(["say yes", "say yes"], ["good", "bad"])
    expected = raw.score_pairs(["say yes"] * 2, ["good", "bad"])
    free = raw.score_pairs(["say yes"] * len(CONTENT_FREE_INPUTS), list(CONTENT_FREE_INPUTS))
    baseline = np.log(np.exp(free).mean(axis=0))
    expected = expected - baseline
    expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(scorer.baseline("say yes"), baseline, atol=1e-6)


def test_calibration_removes_a_prompts_class_bias():
    examples = [Example("good", 1), Example("bad", 0)] * 2
    for prompt in ("say yes", "say no"):
        raw = BiasedScorer().score_examples([prompt] * 4, examples)
        fixed = content_free(BiasedScorer()).score_examples([prompt] * 4, examples)
        assert raw.scores.mean() == 0.5  # the bias decides every answer
        assert fixed.scores.mean() == 1.0 and (fixed.gaps > 0).all()


def test_content_free_inputs_are_counted_once_per_prompt():
    scorer = content_free(BiasedScorer())
    assert scorer.max_evaluations(["a", "a", "b"]) == 3 + 2 * len(CONTENT_FREE_INPUTS)
    scorer.score_pairs(["a", "a", "b"], ["good", "bad", "good"])
    assert scorer.num_evaluations == 3 + 2 * len(CONTENT_FREE_INPUTS)
    assert scorer.max_evaluations(["a", "b"]) == 2
    scorer.score_pairs(["a", "b"], ["bad", "bad"])
    assert scorer.num_evaluations == 5 + 2 * len(CONTENT_FREE_INPUTS)
    assert scorer.score_pairs([], []).shape == (0, 2)


def test_baselines_are_bounded_and_recomputed_after_eviction():
    scorer = content_free(BiasedScorer(), max_prompts=1)
    scorer.score_pairs(["a"], ["good"])
    scorer.score_pairs(["b"], ["good"])
    assert scorer.baseline("a") is None and scorer.baseline("b") is not None
    before = scorer.num_evaluations
    scorer.score_pairs(["a"], ["good"])
    assert scorer.num_evaluations == before + 1 + len(CONTENT_FREE_INPUTS)


def test_a_budget_counts_the_content_free_inputs_before_the_call():
    budget = BudgetedScorer(content_free(BiasedScorer()), limit=2 + len(CONTENT_FREE_INPUTS) - 1)
    with pytest.raises(BudgetExhausted, match="would exceed the budget"):
        budget.score_pairs(["a", "a"], ["good", "bad"])
    assert budget.num_evaluations == 0
    budget.limit = 2 + len(CONTENT_FREE_INPUTS)
    budget.score_pairs(["a", "a"], ["good", "bad"])
    assert budget.num_evaluations == budget.limit
    budget.limit += 2
    budget.score(["a"], ["good", "bad"])  # a known prompt costs its pairs only
    assert budget.remaining == 0


def test_calibrating_twice_or_without_classes_is_refused():
    once = content_free(BiasedScorer())
    task = get_task("toy")
    assert calibrated(once, "content-free", task) is once
    assert calibrated(BudgetedScorer(once), "content-free", task).scorer is once
    with pytest.raises(ValueError, match="calibrated already"):
        content_free(once)
    with pytest.raises(ValueError, match="calibrated with 'content-free', not 'batch'"):
        calibrated(once, "batch", task)
    with pytest.raises(ValueError, match="must be one of"):
        calibrated(BiasedScorer(), "zhao", task)
    with pytest.raises(TypeError, match="classification target"):
        content_free(object())
    with pytest.raises(ValueError, match="generation task: it has no classes"):
        make_scorer(Task("echo", {"train": [Example("a", "a")]}, None, metric="exact_match"), scorer=object(),
                    calibration="content-free")


def test_batch_calibration_uses_the_training_inputs_without_their_labels():
    task = get_task("toy")
    inputs = calibration_inputs(task, "batch")
    assert inputs == tuple(example.input for example in task.split("train"))
    scorer = calibrated(task.default_scorer(task), "batch", task)
    assert scorer.calibration == "batch" and scorer.extra_evaluations_per_prompt == len(inputs)
    prompt = "classify the review"
    scorer.score_pairs([prompt], [task.split("validation")[0].input])
    raw = task.default_scorer(task).score([prompt], list(inputs))[0]
    np.testing.assert_allclose(scorer.baseline(prompt), np.log(np.exp(raw).mean(axis=0)), atol=1e-6)
    relabelled = Task("toy", {split: [Example(e.input, 1 - e.label) for e in examples]
                              for split, examples in task.splits.items()}, task.verbalizer)
    assert calibration_inputs(relabelled, "batch") == inputs


@pytest.mark.parametrize("calibration", ["batch", "content-free"])
def test_the_env_scores_with_the_calibrated_target_and_says_what_an_episode_costs(calibration):
    plain = gym.make(TOY, action_mode="text").unwrapped
    env = gym.make(TOY, action_mode="text", calibration=calibration).unwrapped
    extra = len(calibration_inputs(env.task, calibration))
    assert isinstance(env.scorer, CalibratedScorer) and env.scorer.calibration == calibration
    assert env.evaluations_per_episode == plain.evaluations_per_episode + extra
    env.reset(seed=0)
    env.step("Classify the review")
    assert env.scorer.num_evaluations <= env.evaluations_per_episode
    with pytest.raises(ValueError, match="calibration must be one of"):
        gym.make(TOY, calibration="yes")


def test_vector_envs_share_one_calibrated_target():
    envs = gym.make_vec(TOY, num_envs=3, action_mode="text",
                        calibration="content-free")
    scorer = envs.unwrapped.scorer
    assert isinstance(scorer, CalibratedScorer) and not isinstance(scorer.scorer, CalibratedScorer)
    assert all(env.scorer is scorer for env in envs.unwrapped.envs)


def test_test_scores_are_cached_apart_from_uncalibrated_ones(tmp_path):
    task = get_task("toy")
    raw = task.default_scorer(task)
    cache = tmp_path / "test_cache.json"
    plain = score_on_test(raw, task, {"p": "Classify the review"}, cache_file=cache)
    fixed = score_on_test(content_free(task.default_scorer(task)), task, {"p": "Classify the review"},
                          cache_file=cache)
    keys = list(json.loads(cache.read_text()))
    assert len(keys) == 2 and sum("/content-free:" in key for key in keys) == 1
    expected = evaluate_prompts(content_free(task.default_scorer(task)), task, ["Classify the review"])[0]
    assert fixed["p"]["accuracy"] == expected["accuracy"]
    assert plain["p"]["accuracy"] == evaluate_prompts(raw, task, ["Classify the review"])[0]["accuracy"]


def test_test_scores_are_cached_per_set_of_calibration_inputs(tmp_path):
    # "batch" calibrates on the training split, which differs between the seeds of one comparison
    # folder (one test cache): a score cached under one seed's calibration must not answer for another's
    examples = [Example("good", 1), Example("bad", 0)]
    task = Task("mini", {"train": examples, "validation": examples, "test": examples}, BiasedScorer.verbalizer)
    cache = tmp_path / "test_cache.json"
    scores = {}
    for inputs in (("good", "bad"), ("good",)):
        scorer = CalibratedScorer(BiasedScorer(), inputs, "batch")
        scores[inputs] = score_on_test(scorer, task, {"p": "yes"}, cache_file=cache)["p"]["accuracy"]
        assert scores[inputs] == evaluate_prompts(CalibratedScorer(BiasedScorer(), inputs, "batch"), task,
                                                  ["yes"], split="test")[0]["accuracy"]
    assert scores == {("good", "bad"): 1.0, ("good",): 0.5}
    assert len(json.loads(cache.read_text())) == 2


@pytest.mark.parametrize("calibration", ["batch", "content-free"])
def test_a_calibrated_comparison_stays_in_budget_and_resumes(calibration, tmp_path):
    # 8 examples per reward batch and on validation, then at most the calibration inputs of a new prompt
    per_prompt = 8 + len(calibration_inputs(get_task("toy"), calibration))
    # the start measurement, four updates of 4 prompts, one check at update 3, the selection reserve
    budget = per_prompt + 4 * 4 * per_prompt + per_prompt + 5 * per_prompt
    config = CompareConfig(TOY, ["ppo"], budget, [0], tmp_path / "cmp", checkpoint_every=2,
                           env_kwargs={"calibration": calibration},
                           agent_options={"ppo": {"learning_rate": 1e-3, "ppo_epochs": 1, "batch_size": 4,
                                                  "anchor_samples": 1, "anchor_check_interval": 3}})
    full = run_comparison(config, log=lambda line: None)[0]
    assert full["num_updates"] == 4 and full["evaluations"] <= budget
    assert full["selection_reserve"] == 5 * per_prompt
    folder = run_dir(config.out, "ppo", 0)
    (folder / "result.json").unlink()  # a crash after update 2
    shutil.rmtree(folder / "checkpoints" / "step-000004")
    (folder / "checkpoints" / "latest").write_text("step-000002")
    resumed = run_comparison(config, log=lambda line: None)[0]
    assert resumed["resumed_from_update"] == 2 and resumed["evaluations"] <= budget
    assert (resumed["prompt"], resumed["test_accuracy"]) == (full["prompt"], full["test_accuracy"])


@pytest.mark.slow
def test_real_target_batch_calibration_undoes_the_manual_prompts_bias_on_agnews(real_lm, real_data_dir, monkeypatch):
    monkeypatch.setenv("PROMPT_GYM_DATA_DIR", str(real_data_dir))
    task = get_task("agnews", seed=13)
    model, tokenizer = real_lm
    examples = task.split("validation")
    labels = np.array([example.label for example in examples])
    raw = LMScorer(model, tokenizer, task.verbalizer, task.template)
    fixed = calibrated(LMScorer(model, tokenizer, task.verbalizer, task.template), "batch", task)
    before, after = (scorer.score([task.manual_prompt], [e.input for e in examples])[0].argmax(axis=1)
                     for scorer in (raw, fixed))
    # SmolLM2-135M answers "World" for 88 % of the articles with the manual prompt (0.359 accuracy);
    # calibrated on the 64 training articles it answers every class and scores 0.578 (RESULTS.md §16)
    assert np.bincount(before, minlength=4).max() > 0.8 * len(examples)
    assert np.bincount(after, minlength=4).max() < 0.6 * len(examples) and len(set(after)) == 4
    assert (after == labels).mean() > (before == labels).mean() + 0.1
    assert fixed.num_evaluations == len(examples) + len(task.split("train"))


def test_the_command_line_scores_with_calibration(capsys):
    from prompt_gym.runs.cli import build_parser, main
    from prompt_gym.runs.train import settings_from_args

    prompt = "book word terrible label"
    assert main(["eval", "--env", TOY, "--prompt", prompt, "--calibration", "content-free"]) == 0
    task = get_task("toy")
    expected = evaluate_prompts(content_free(task.default_scorer(task)), task, [prompt])[0]["accuracy"]
    assert capsys.readouterr().out.startswith(f"{expected:.4f}  (accuracy, test, n=8)")
    args = build_parser().parse_args(["train", "--env", TOY, "--out", "x", "--calibration", "content-free"])
    assert settings_from_args(args).env_kwargs["calibration"] == "content-free"


def test_a_checkpoint_restores_the_wrapped_targets_cache_and_counters(tiny_lm, tmp_path):
    from prompt_gym.runs.target_state import load_target_state, save_target_state

    model, tokenizer = tiny_lm
    task = get_task("toy")

    def target():
        return BudgetedScorer(calibrated(LMScorer(model, tokenizer, ["negative", "positive"]), "content-free", task))

    first = target()
    first.score_pairs(["p", "p", "q"], ["good", "bad", "good"])
    first.score_pairs(["p"], ["good"])  # a cache hit
    save_target_state(first, tmp_path)
    resumed = target()
    load_target_state(resumed, tmp_path)
    inner, restored = first.scorer.scorer, resumed.scorer.scorer
    assert restored.cache_hits == inner.cache_hits == 1 and "cache_hits" not in vars(resumed.scorer)
    assert restored.cache.items()[0][0] == inner.cache.items()[0][0] and len(restored.cache) == len(inner.cache)
    before = restored.num_evaluations
    resumed.score_pairs(["p", "q"], ["bad", "good"])  # baselines recomputed from the restored cache: free
    assert restored.num_evaluations == before
