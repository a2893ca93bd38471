"""Every registered environment: Gymnasium's checker, seeded determinism, and the task suite's pieces.

Fast tests inject a deterministic fake classification scorer or a tiny generation model and the
byte tokenizer, so no real model loads; they read the real data (``$PROMPT_GYM_DATA_DIR``).
Tests marked ``slow`` run the real default model once per task family.
"""

from __future__ import annotations

import dataclasses
import zlib

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import prompt_gym
from prompt_gym.generation import BaseGenerationScorer, GenerationScorer, extract_answer
from prompt_gym.scoring import BaseScorer
from prompt_gym.task_suite import II_TASKS, MMLU_SUBJECTS
from prompt_gym.tasks import get_task

SUITE_IDS = sorted(env_id for env_id in prompt_gym.ENV_IDS if env_id != "PromptTune-Toy-v0")
II_IDS = {f"PromptTune-II-{name}-v0": f"ii_{name}" for name in II_TASKS}


class HashScorer(BaseScorer):
    """A deterministic fake target: class log-probs from a hash of (prompt, input)."""

    def __init__(self, verbalizer):
        self.verbalizer = tuple(verbalizer)
        self.num_evaluations = 0

    def score_pairs(self, prompts, inputs):
        rows = [np.random.default_rng(zlib.crc32(f"{p}\x00{x}".encode())).normal(size=len(self.verbalizer))
                for p, x in zip(prompts, inputs, strict=True)]
        logits = np.array(rows).reshape(len(prompts), len(self.verbalizer))
        self.num_evaluations += len(prompts)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


@pytest.fixture(scope="module")
def tiny(real_data_dir, tiny_lm):
    """The session's tiny LM and byte tokenizer; needs the real data (the envs read it)."""
    return tiny_lm


def _make(env_id, tiny, **kwargs):
    model, tokenizer = tiny
    task_name = gym.spec(env_id).kwargs["task"] if "task" not in kwargs else kwargs["task"]
    task = get_task(task_name) if task_name == "toy" else get_task(task_name, seed=13)
    if task.is_generation:
        scorer = GenerationScorer(model, tokenizer, task.metric, max_new_tokens=2)
    else:
        scorer = HashScorer(task.verbalizer)
    options = {"tokenizer": tokenizer, "scorer": scorer, "max_meta_prompt_tokens": 16384, "max_prompt_tokens": 6}
    if gym.spec(env_id).entry_point.endswith(":PromptTuneEnv"):  # TTEEnv scores one input per episode
        options["reward_batch_size"] = 4
    options |= kwargs
    return gym.make(env_id, task=task, **{k: v for k, v in options.items() if k != "task"})


def test_registry_lists_the_whole_suite():
    expected = {f"PromptTune-{name}-v0" for name in ("SST2", "MRPC", "RTE", "QNLI", "MNLI", "SNLI", "AGNews",
                                                    "Yelp", "CR", "MR", "TTE-SST2")}
    expected |= set(II_IDS) | {f"PromptTune-MMLU-{s}-v0" for s in MMLU_SUBJECTS}
    assert expected == set(SUITE_IDS)
    assert len(II_TASKS) == 24 and len(MMLU_SUBJECTS) == 57


def test_every_mmlu_subject_is_in_the_data(real_data_dir):
    import json

    with (real_data_dir / "mmlu" / "validation.jsonl").open() as handle:
        assert {json.loads(line)["subject"] for line in handle} == set(MMLU_SUBJECTS)


@pytest.mark.filterwarnings("ignore:The prompt has")
@pytest.mark.parametrize("mode", ["token", "text"])
@pytest.mark.parametrize("env_id", SUITE_IDS)
def test_check_env(env_id, mode, tiny):
    env = _make(env_id, tiny, action_mode=mode)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", SUITE_IDS)
def test_seeded_determinism(env_id, tiny):
    def rollout(seed):
        env = _make(env_id, tiny)
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        trace = [obs["input_ids"].tolist(), info["demo_uids"]]
        terminated = False
        while not terminated:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            trace.append((obs["input_ids"].tolist(), reward, info["prompt"]))
        return trace, info

    first, info = rollout(3)
    second, _ = rollout(3)
    assert first == second
    assert 0.0 <= info["accuracy"] <= 1.0 and len(first) >= 3


def test_env_splits_follow_the_data_readme(real_data_dir):
    sizes = {name: {split: len(get_task(name).split(split)) for split in ("train", "validation", "test")}
             for name in ("mrpc", "rte", "qnli", "mnli", "snli", "agnews", "yelp", "cr", "mr")}
    assert sizes["mrpc"] == {"train": 32, "validation": 32, "test": 1725}  # labelled test exists
    assert sizes["rte"]["test"] == 277 and sizes["qnli"]["test"] == 5463 and sizes["mnli"]["test"] == 9815
    assert sizes["snli"]["test"] == 9824 and sizes["agnews"] == {"train": 64, "validation": 64, "test": 7600}
    assert sizes["cr"]["test"] == 1999 and sizes["mr"]["test"] == 2000 and sizes["yelp"]["test"] == 1000
    ii = get_task("ii_antonyms")
    assert (len(ii.split("validation")), len(ii.split("train")), len(ii.split("test"))) == (32, 2560, 100)
    assert not {e.uid for e in ii.split("validation")} & {e.uid for e in ii.split("train")}
    small = get_task("ii_informal_to_formal")
    assert (len(small.split("validation")), len(small.split("train"))) == (7, 8)
    mmlu = get_task("mmlu_anatomy")
    assert (len(mmlu.split("train")), len(mmlu.split("validation")), len(mmlu.split("test"))) == (12, 7, 135)
    assert mmlu.split("test")[0].input.startswith("question: ") and "\nD: " in mmlu.split("test")[0].input
    assert get_task("mrpc").split("test")[0].input.startswith("sentence1: ")


def test_generation_reward_is_the_task_metric(tiny):
    class Echo(BaseGenerationScorer):
        def generate_pairs(self, prompts, inputs):
            return [f"{x}\nOutput: ignored" for x in inputs]

    task = get_task("ii_singular_to_plural")
    env = gym.make("PromptTune-II-singular_to_plural-v0", task=task, tokenizer=tiny[1], scorer=Echo("exact_match"),
                   action_mode="text", max_meta_prompt_tokens=16384, reward_batch_size=8)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("Repeat the input.")
    batch = env.unwrapped.reward_examples
    expected = np.mean([e.input in e.outputs for e in batch])  # the echoed input is right only for "sheep"-like words
    assert info["accuracy"] == pytest.approx(expected) and reward == pytest.approx(30 * expected)
    with pytest.raises(ValueError, match="generation scorer"):
        gym.make("PromptTune-II-sum-v0", task=get_task("ii_sum"), tokenizer=tiny[1], scorer=HashScorer(("a", "b")))


def test_test_time_env_shows_the_current_input(tiny):
    env = _make("PromptTune-TTE-SST2-v0", tiny, action_mode="text")
    obs, info = env.reset(seed=5)
    scored = env.unwrapped.reward_examples
    assert len(scored) == 1 and f"Input: {scored[0].input}\n\nWrite an instruction" in obs
    assert scored[0].uid not in info["demo_uids"]


def test_extract_answer_reads_only_the_first_nonempty_line():
    assert extract_answer("\n  dogs \nOutput: cats") == "dogs"
    assert extract_answer("   ") == ""


# --- Real model + real data: one per task family ------------------------------------------------
@pytest.mark.slow
def test_real_pair_classification_env(real_lm):
    env = gym.make("PromptTune-MRPC-v0", target=real_lm, action_mode="text", reward_batch_size=8)
    obs, _ = env.reset(seed=0)
    assert "sentence1: " in obs and "sentence2: " in obs
    _, reward, terminated, _, info = env.step(env.unwrapped.task.manual_prompt)
    assert terminated and 0.0 <= info["accuracy"] <= 1.0 and -1.0 <= info["gap"] <= 1.0
    assert reward == pytest.approx(30 * info["accuracy"] + info["gap"])


@pytest.mark.slow
def test_real_instruction_induction_env(real_lm):
    env = gym.make("PromptTune-II-first_word_letter-v0", target=real_lm, action_mode="text", reward_batch_size=8)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.unwrapped.task.manual_prompt)
    scorer = env.unwrapped.scorer
    assert isinstance(scorer, GenerationScorer) and scorer.num_evaluations == 8
    assert reward == pytest.approx(30 * info["accuracy"])
    answers = scorer.generate_pairs([env.unwrapped.task.manual_prompt] * 4, ["apple", "banana", "cherry", "dog"])
    assert all(answer and "\n" not in answer for answer in answers)


@pytest.mark.slow
def test_real_mmlu_env(real_lm):
    env = gym.make("PromptTune-MMLU-high_school_geography-v0", target=real_lm, action_mode="text",
                   reward_batch_size=8)
    obs, _ = env.reset(seed=0)
    assert obs.count("choices:\nA: ") == 3
    _, _, terminated, _, info = env.step(env.unwrapped.task.manual_prompt)
    assert terminated and 0.0 <= info["accuracy"] <= 1.0


@pytest.mark.slow
def test_real_test_time_editing(real_lm):
    from prompt_gym.evaluation import evaluate_prompts
    from prompt_gym.tte import evaluate_tte

    env = gym.make("PromptTune-TTE-SST2-v0", target=real_lm).unwrapped
    obs, info = env.reset(seed=0)
    assert obs["input_ids"].shape == env.observation_space["input_ids"].shape
    manual = env.task.manual_prompt
    result = evaluate_tte(env.sampler, env.scorer, lambda metas: [manual] * len(metas), limit=12)
    subset = env.task.split("test")[:12]
    task = dataclasses.replace(env.task, splits={**env.task.splits, "test": subset})
    assert result["accuracy"] == pytest.approx(evaluate_prompts(env.scorer, task, [manual])[0]["accuracy"])
