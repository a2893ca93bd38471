import json

import numpy as np
import pytest

from prompt_gym.data import DataError, Example, balanced_draw, read_jsonl, to_examples
from prompt_gym.tasks import get_task, list_tasks, make_task, register_task


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
