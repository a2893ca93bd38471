"""Generation metrics, the generation target, user-defined tasks and test-time editing (offline)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from prompt_gym import tte
from prompt_gym.data import DataError, Example
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.generation import BaseGenerationScorer, GenerationScorer, _LineDone
from prompt_gym.metrics import contains, exact_match, f1, score_answer, set_match
from prompt_gym.tasks import get_task, make_task
from prompt_gym.toy import WordTokenizer


def test_metrics_follow_ape_normalisation():
    assert exact_match("  Sunset.\nmore", "sunset") == 1.0
    assert exact_match("sun set", "sunset") == 0.0
    assert f1("the big cat", "big cat") == pytest.approx(0.8)
    assert f1("dog", "cat") == 0.0
    assert contains("I think: happy, glad", "glad") == 1.0 and contains("gladly", "glad") == 0.0
    assert set_match("bear, dog and cat", "cat, dog, bear") == 1.0 and set_match("dog", "dog, cat") == 0.0
    assert score_answer("exact_match", "Hund", ("der Hund", "Hund")) == 1.0
    with pytest.raises(ValueError, match="Unknown generation metric"):
        score_answer("bleu", "a", ("a",))


class _StubLM:
    """A 'model' whose greedy continuation is a fixed text, to test what the scorer reads."""

    def __init__(self, tokenizer, reply):
        import torch

        self.reply = tokenizer.encode(reply, add_special_tokens=False)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen_masks = []

    def parameters(self):
        return iter([self.weight])

    def modules(self):
        return iter(())

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        import torch

        self.seen_masks.append(attention_mask)
        reply = torch.tensor(self.reply[:max_new_tokens]).expand(input_ids.shape[0], -1)
        return torch.cat([input_ids, reply], dim=1)


def test_generation_scorer_reads_only_new_tokens(byte_tokenizer):
    model = _StubLM(byte_tokenizer, "\n  right answer \nOutput: wrong")
    scorer = GenerationScorer(model, byte_tokenizer, "exact_match", max_new_tokens=40)
    answers = scorer.generate_pairs(["Say it.\nOutput: leaked", "x"], ["a", "a much longer input"])
    assert answers == ["right answer", "right answer"]
    assert model.seen_masks[0].sum(1).tolist() == sorted(model.seen_masks[0].sum(1).tolist(), reverse=True)
    assert model.seen_masks[0][:, 0].tolist() == [1, 0]  # left padding, masked
    scored = scorer.score_examples(["p"], [Example("q", outputs=("Right answer",))])
    assert scored.scores.tolist() == [1.0] and scored.gaps is None
    assert scorer.num_evaluations == 3


def test_generation_scorer_batching_does_not_change_answers(tiny_lm):
    model, tokenizer = tiny_lm
    inputs = ["a", "bb ccc", "a much longer input text", "x y", "zz"]
    batched = GenerationScorer(model, tokenizer, "f1", max_new_tokens=4, batch_size=4).generate_pairs(["p"] * 5, inputs)
    single = GenerationScorer(model, tokenizer, "f1", max_new_tokens=4, batch_size=1).generate_pairs(["p"] * 5, inputs)
    assert batched == single


def test_line_done_stops_after_a_finished_line():
    assert not _LineDone._finished("\n\n")
    assert not _LineDone._finished(" word")
    assert _LineDone._finished("\n word\n")


def _rows(n, with_label=True):
    return [{"text": f"t{i}", "label": i % 2} if with_label else {"input": f"w{i}", "output": [f"W{i}"]}
            for i in range(n)]


def test_make_task_generation_and_errors(tmp_path):
    task = make_task("gen", train=_rows(4, False), validation=_rows(3, False), test=_rows(2, False),
                     metric="exact_match", input_format="{input}")
    assert task.is_generation and task.split("test")[1].outputs == ("W1",)
    with pytest.raises(ValueError, match="either verbalizer"):
        make_task("both", train=_rows(2), validation=_rows(2), test=_rows(2), verbalizer=["a", "b"], metric="f1")
    with pytest.raises(ValueError, match="Unknown generation metric"):
        make_task("m", train=_rows(2, False), validation=_rows(2, False), test=_rows(2, False), metric="bleu",
                  input_format="{input}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "a", "output": ["A"]}) + "\n" + json.dumps({"input": "b"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: 'output' must be"):
        make_task("g", train=str(bad), validation=str(bad), test=str(bad), metric="f1", input_format="{input}")
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing field 'text'"):
        make_task("c", train=str(bad), validation=str(bad), test=str(bad), verbalizer=["a", "b"])
    with pytest.raises(DataError, match="'validation' split .* is empty"):
        make_task("e", train=_rows(2), validation=[], test=_rows(2), verbalizer=["a", "b"])


def test_evaluate_prompts_on_a_generation_task():
    class Upper(BaseGenerationScorer):
        def generate_pairs(self, prompts, inputs):
            return [x.upper() if "upper" in p else "no idea" for p, x in zip(prompts, inputs, strict=True)]

    task = make_task("gen", train=_rows(4, False), validation=_rows(3, False), test=_rows(5, False),
                     metric="exact_match", input_format="{input}")
    results = evaluate_prompts(Upper("exact_match"), task, ["upper", "copy"], chunk_size=2)
    assert [(r["accuracy"], r["metric"], r["num_examples"]) for r in results] == [(1.0, "exact_match", 5),
                                                                                 (0.0, "exact_match", 5)]


def test_evaluate_tte_matches_one_prompt_evaluation():
    task = get_task("toy")
    scorer = task.default_scorer(task)
    sampler = tte.TTESampler(task, WordTokenizer(), num_demos=3, max_meta_prompt_tokens=512)
    seen = []

    def writer(metas):
        seen.extend(metas)
        return [task.manual_prompt] * len(metas)

    result = tte.evaluate_tte(sampler, scorer, writer, split="test", batch_size=3)
    assert result["num_examples"] == 8 and len(seen) == 8 and result["prompts"] == [task.manual_prompt] * 8
    assert result["accuracy"] == evaluate_prompts(scorer, task, [task.manual_prompt])[0]["accuracy"]
    assert all(f"Input: {e.input}\n" in meta for e, meta in zip(task.split("test"), seen, strict=True))
    again = tte.evaluate_tte(sampler, scorer, writer, split="test", limit=4, seed=0)
    assert again["num_examples"] == 4 and seen[8:12] == seen[:4]  # same seed, same meta-prompts
    with pytest.raises(ValueError, match="one prompt per meta-prompt"):
        tte.evaluate_tte(sampler, scorer, lambda metas: ["x"], split="test", batch_size=2)


def test_custom_task_example_runs(capsys):
    runpy.run_path(str(Path(__file__).parents[2] / "examples" / "custom_task.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "test accuracy 1.00" in out and "exact_match=1.00" in out and "bad.jsonl:2: label 2" in out


def test_scores_are_arrays():
    class Const(BaseGenerationScorer):
        def generate_pairs(self, prompts, inputs):
            return ["a"] * len(prompts)

    values = Const("contains").score_examples(["p", "p"], [Example("x", outputs=("a",)), Example("y", outputs=("b",))]).scores
    assert isinstance(values, np.ndarray) and values.tolist() == [1.0, 0.0]
