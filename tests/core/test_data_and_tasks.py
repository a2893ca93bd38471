import json
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import prompt_gym.targets
import prompt_gym.tasks
from prompt_gym.data import DataError, Example, balanced_draw, read_jsonl, to_examples
from prompt_gym.scoring import LMScorer
from prompt_gym.task_suite import CLASSIFICATION_ENVS, SST2
from prompt_gym.tasks import ClassificationSpec, get_task, list_tasks, make_task, register_task

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "label": 0}\n{not json}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        read_jsonl(path)
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no examples"):
        read_jsonl(tmp_path / "empty.jsonl")


def test_to_examples_validates_fields_and_labels():
    with pytest.raises(DataError, match=r"src:2: missing field 'text'"):
        to_examples([{"text": "a", "label": 0}, {"txt": "b", "label": 1}], "{text}", "src", num_labels=2)
    with pytest.raises(DataError, match="outside the verbalizer"):
        to_examples([{"text": "a", "label": 2}], "{text}", "src", num_labels=2)
    with pytest.raises(DataError, match="must be an integer"):
        to_examples([{"text": "a", "label": "1"}], "{text}", "src", num_labels=2)
    pair = to_examples([{"a": "x", "b": "y", "label": 1}], "{a} | {b}", "src", num_labels=2)
    assert pair == [Example("x | y", 1, uid="src:1")]


def test_balanced_draw_is_balanced_and_disjoint():
    pool = [Example(str(i), i % 2, uid=str(i)) for i in range(40)]
    rng = np.random.default_rng(0)
    first = balanced_draw(pool, 5, rng)
    second = balanced_draw(pool, 5, rng, exclude=[e.uid for e in first])
    assert sorted(e.label for e in first) == [0] * 5 + [1] * 5
    assert not {e.uid for e in first} & {e.uid for e in second}
    with pytest.raises(DataError, match="fewer than"):
        balanced_draw(pool, 30, rng)


def test_registry():
    assert {"sst2", "toy"} <= set(list_tasks())
    with pytest.raises(KeyError, match="Known tasks"):
        get_task("no-such-task")
    task = get_task("toy")
    assert task.verbalizer == ("negative", "positive")
    assert {len(task.split(s)) for s in ("train", "validation", "test")} == {8}
    with pytest.raises(KeyError, match="has no 'dev' split"):
        task.split("dev")
    with pytest.raises(ValueError, match="already registered"):
        register_task("toy", task)
    assert task.has_own_target and not prompt_gym.tasks.Task("t", task.splits, ("a", "b")).has_own_target


def test_builtin_tasks_are_registered_by_importing_the_package_alone():
    """No lazy import and no first-use flag: a fresh interpreter sees every task after ``import prompt_gym``."""
    code = ("import prompt_gym.tasks as t\n"
            "names = t.list_tasks()\n"
            "assert {'toy', 'sst2', 'mrpc', 'ii_antonyms', 'mmlu_anatomy'} <= set(names), names\n"
            "assert len(names) == 2 + 9 + 24 + 57, len(names)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_sst2_sits_in_the_suite_table_beside_its_siblings():
    assert CLASSIFICATION_ENVS["SST2"] == (SST2, {})
    assert gym.spec("PromptTune-SST2-v0").kwargs == {"task": "sst2"}
    assert {f"PromptTune-{infix}-v0" for infix in CLASSIFICATION_ENVS} <= set(prompt_gym.ENV_IDS)


def _docs_block(page: str, section: str) -> str:
    """The first Python code block under ``## <section>`` of ``docs/<page>``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    body = text[text.index(f"## {section}\n"):]
    return re.search(r"```python\n(.*?)```", body, re.DOTALL).group(1)


def test_add_a_task_recipe_runs_as_documented(tmp_path, monkeypatch, tiny_lm):
    """docs/tasks.md "Add a task", run verbatim on a fresh example (the tiny LM stands in for the default model)."""
    words = {0: ["dull", "flat", "slow", "bad"], 1: ["fun", "warm", "smart", "good"]}
    for name in ("train", "dev", "test"):
        rows = [{"text": f"a {word} {name} film", "label": label} for label, pool in words.items() for word in pool]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    monkeypatch.chdir(tmp_path)
    registry = {name: factory for name, factory in prompt_gym.tasks._REGISTRY.items() if name != "my_reviews"}
    monkeypatch.setattr(prompt_gym.tasks, "_REGISTRY", registry)  # the example's task of that name, if any, comes back
    monkeypatch.setattr(prompt_gym.targets, "shared_causal_lm", lambda spec: tiny_lm)
    namespace: dict = {}
    try:
        exec(_docs_block("tasks.md", "Add a task"), namespace)
        env = namespace["env"]
        obs, info = env.reset(seed=0)
        _, reward, terminated, _, info = env.step("Say whether the review is positive or negative.")
    finally:
        gym.registry.pop("PromptTune-MyReviews-v0", None)
    assert env.unwrapped.task.name == "my_reviews" and isinstance(env.unwrapped.scorer, LMScorer)
    assert terminated and 0.0 <= info["accuracy"] <= 1.0 and np.isfinite(reward)
    assert {example.input for example in env.unwrapped.reward_examples} <= {
        f"a {word} train film" for pool in words.values() for word in pool}


def test_add_a_classification_spec_to_the_suite(tmp_path, monkeypatch):
    """The maintainers' recipe: a ClassificationSpec over a data folder in prompt_gym.data's layout."""
    folder = tmp_path / "reviews"
    (folder / "16-shot" / "13").mkdir(parents=True)
    rows = [{"text": f"review {i}", "label": i % 2} for i in range(40)]
    for path in ("train.jsonl", "test.jsonl"):
        (folder / path).write_text("\n".join(json.dumps(row) for row in rows))
    (folder / "16-shot" / "13" / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows[:4]))
    monkeypatch.setenv("PROMPT_GYM_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(prompt_gym.tasks, "_REGISTRY", dict(prompt_gym.tasks._REGISTRY))
    spec = ClassificationSpec(name="reviews", folder="reviews", verbalizer=("negative", "positive"),
                              input_format="{text}", manual_prompt="Is the review positive or negative?")
    register_task(spec.name, spec.build)
    task = get_task("reviews", seed=13)
    assert [e.input for e in task.split("train")] == [f"review {i}" for i in range(4)]  # the 16-shot file
    assert len(task.split("validation")) == 2 * 16  # no dev file: a balanced draw from the full train split
    assert not {e.uid for e in task.split("validation")} & {e.uid for e in task.split("train")}


def test_make_task_from_files_and_rows(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(6)]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    task = make_task("mine", train=str(path), validation=rows, test=rows, verbalizer=["no", "yes"])
    assert task.split("train")[0].uid == f"{path}:1"
    assert task.answer(task.split("test")[1]) == "yes"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "label": 0}\n{"text": "y", "label": 5}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: label 5"):
        make_task("bad", train=str(bad), validation=rows, test=rows, verbalizer=["no", "yes"])
    with pytest.raises(DataError, match="empty"):
        make_task("empty", train=rows, validation=[], test=rows, verbalizer=["no", "yes"])


def test_sst2_real_splits(real_data_dir):
    task = get_task("sst2", seed=13)
    assert len(task.split("train")) == 32 and len(task.split("validation")) == 32
    assert len(task.split("test")) == 872
    assert sorted(e.label for e in task.split("train")).count(1) == 16
    assert not {e.input for e in task.split("train")} & {e.input for e in task.split("validation")}
    assert len(get_task("sst2", test_split="test").split("test")) == 1821
    # a seed without LM-BFF files draws a balanced, seeded sample from train
    drawn = get_task("sst2", seed=7)
    assert [e.uid for e in drawn.split("train")] == [e.uid for e in get_task("sst2", seed=7).split("train")]
    assert sorted(e.label for e in drawn.split("validation")).count(0) == 16


def test_missing_data_folder_and_split(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_GYM_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no folder"):
        get_task("sst2")
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.jsonl").write_text('{"text": "a", "label": 0}\n')
    with pytest.raises(FileNotFoundError, match="no 'validation' split"):
        get_task("sst2")
