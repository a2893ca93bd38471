"""The bad-input corpus: every bad input at a boundary gets a clear error that names the problem.

Each case feeds one bad input (a ``gym.make`` argument, an action, a data file, a CLI flag, a run
folder, a saved config, a checkpoint, a budget) and says which error it must raise and what its
message (or, for argparse, stderr) must say. All run on the toy env or plain files, in seconds.
Behaviour that is not an error (atomic vector steps, special tokens, pruning) is tested below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import prompt_gym
from prompt_gym import checkpoint as ckpt
from prompt_gym.budget import BudgetedScorer, BudgetExhausted
from prompt_gym.data import DataError
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.logging import read_log
from prompt_gym.runs.cli import main
from prompt_gym.runs.compare import CompareConfig

TOY = "PromptTune-Toy-v0"
SMALL = {"max_prompt_tokens": 3, "num_demos": 1, "reward_batch_size": 2}


@dataclass(frozen=True)
class Case:
    """One bad input: ``run(tmp_path)`` must raise ``error`` whose message (or stderr) matches ``match``."""

    id: str
    run: Callable[[Path], Any]
    error: type[BaseException] | tuple[type[BaseException], ...]
    match: str


def _nan_target_step() -> Any:
    """A target whose scores are NaN (what an overflowing half-precision model returns)."""
    task = prompt_gym.get_task("toy")
    scorer = task.default_scorer(task)
    scorer.score_pairs = lambda prompts, inputs: np.full((len(prompts), 2), np.nan, dtype=np.float32)
    env = gym.make(TOY, **SMALL, action_mode="text", scorer=scorer)
    env.reset(seed=0)
    return env.step("Classify the review")


def make(**kwargs: Any) -> Callable[[Path], Any]:
    return lambda _: gym.make(TOY, **(SMALL | kwargs))


def step(action: Any, mode: str = "token", reset: bool = True, steps: int = 0) -> Callable[[Path], Any]:
    def run(_: Path) -> Any:
        env = gym.make(TOY, **SMALL, action_mode=mode, disable_env_checker=True)
        if reset:
            env.reset(seed=0)
        for _ in range(steps):
            env.step("Classify the review" if mode == "text" else 1)
        return env.unwrapped.step(action)  # the env's own check, under gymnasium's order enforcing

    return run


def vector_step(actions: Any, mode: str = "token") -> Callable[[Path], Any]:
    def run(_: Path) -> Any:
        envs = gym.make_vec(TOY, num_envs=3, **SMALL, action_mode=mode)
        envs.reset(seed=0)
        return envs.step(actions)

    return run


def data(lines: list[bytes] | bytes, verbalizer: Any = ("negative", "positive"), **kwargs: Any) -> Callable[[Path], Any]:
    """Build a task whose train file holds ``lines`` (validation and test are fine)."""

    def run(tmp_path: Path) -> Any:
        good = tmp_path / "good.jsonl"
        good.write_text('{"text": "fine", "label": 0}\n{"text": "great", "label": 1}\n', encoding="utf-8")
        bad = tmp_path / "train.jsonl"
        bad.write_bytes(lines if isinstance(lines, bytes) else b"\n".join(lines) + b"\n")
        options = {"verbalizer": verbalizer} if verbalizer is not None else {}
        return prompt_gym.make_task("mine", train=str(bad), validation=str(good), test=str(good), **(options | kwargs))

    return run


def cli(*argv: str) -> Callable[[Path], Any]:
    return lambda tmp_path: main([arg.replace("TMP", str(tmp_path)) for arg in argv])


def folder(files: dict[str, bytes | str], *argv: str) -> Callable[[Path], Any]:
    """Write ``files`` under ``TMP`` first, then run the CLI."""

    def run(tmp_path: Path) -> Any:
        for name, content in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return cli(*argv)(tmp_path)

    return run


def checkpoints(build: Callable[[Path], None], *, keep: int = 2) -> Callable[[Path], Any]:
    """Write two good checkpoints under ``TMP/ck``, damage them with ``build``, then find the latest."""

    def run(tmp_path: Path) -> Any:
        root = tmp_path / "ck"
        for number in (1, 2):
            ckpt.save_checkpoint(root, number, lambda f, n=number: (f / "w.bin").write_bytes(bytes([n]) * 8), keep)
        build(root)
        return ckpt.latest_checkpoint(root)

    return run


def manifest(root: Path, step_number: int, content: str) -> None:
    (root / f"step-{step_number:06d}" / ckpt.MANIFEST).write_text(content)


def budget(limit: Any = 10, patience: Any = None, pairs: int = 0) -> Callable[[Path], Any]:
    def run(_: Path) -> Any:
        task = prompt_gym.get_task("toy")
        scorer = BudgetedScorer(task.default_scorer(task), limit=limit, patience=patience)
        inputs = [example.input for example in task.split("train")][:pairs]
        return scorer.score_pairs(["Classify"] * len(inputs), inputs)

    return run


RUN_JSON = "run/run.json"
CMP = ["compare", "--env", TOY, "--agents", "manual", "--seeds", "0"]

CASES = [
    # gym.make arguments: type and range, checked when the env is made
    Case("make-num-demos-float", make(num_demos=1.5), TypeError, "num_demos must be an integer, got 1.5"),
    Case("make-num-demos-bool", make(num_demos=True), TypeError, "num_demos must be an integer, got True"),
    Case("make-num-demos-negative", make(num_demos=-1), ValueError, "num_demos must be non-negative"),
    Case("make-num-demos-too-many", make(num_demos=99), ValueError, r"num_demos must lie in \[0, 8\]"),
    Case("make-max-prompt-tokens-zero", make(max_prompt_tokens=0), ValueError, "max_prompt_tokens must be positive"),
    Case("make-max-prompt-tokens-str", make(max_prompt_tokens="3"), TypeError, "max_prompt_tokens must be an integer"),
    Case("make-reward-batch-float", make(reward_batch_size=2.0), TypeError, "reward_batch_size must be an integer"),
    Case("make-reward-batch-zero", make(reward_batch_size=0), ValueError, "reward_batch_size must be positive"),
    Case("make-meta-prompt-too-long", make(max_meta_prompt_tokens=4, action_mode="text"), ValueError,
         "larger max_meta_prompt_tokens"),
    Case("make-action-mode-typo", make(action_mode="txt"), ValueError, r"action_mode must be one of \('token', 'text'\)"),
    Case("make-action-mode-none", make(action_mode=None), ValueError, "action_mode must be one of"),
    Case("make-reward-unknown", make(reward="nope"), KeyError, "Unknown reward 'nope'.*choose one of"),
    Case("make-reward-not-str", make(reward=3), TypeError, "reward must be the name of a reward function"),
    Case("make-reward-kwargs-list", make(reward_kwargs=[("gap_weight", 1)]), TypeError, "reward_kwargs must be None"),
    Case("make-reward-kwargs-unknown", make(reward_kwargs={"gap_wieght": 2}), ValueError,
         r"\['gap_wieght'\] are not options of the 'stableprompt' reward"),
    Case("make-reward-kwargs-str", make(reward_kwargs={"gap_weight": "2"}), TypeError,
         r"reward_kwargs\['gap_weight'\] must be a number, got '2'"),
    Case("make-reward-kwargs-nan", make(reward_kwargs={"accuracy_weight": float("nan")}), ValueError,
         "must be a finite number, got nan"),
    Case("step-target-returns-nan", lambda _: _nan_target_step(), FloatingPointError,
         "not finite numbers. Score in float32"),
    Case("make-task-unknown", make(task="nope"), KeyError, "Unknown task 'nope'. Known tasks"),
    Case("make-task-int", make(task=3), TypeError, "task must be a task name"),
    Case("make-data-seed-float", make(data_seed=1.5), TypeError, "data_seed must be an integer"),
    Case("make-data-seed-negative", make(data_seed=-1), ValueError, "data_seed must be non-negative"),
    Case("make-scorer-batch-zero", make(scorer_batch_size=0), ValueError, "scorer_batch_size must be positive"),
    Case("make-render-mode", make(render_mode="human"), ValueError, "render_mode must be one of"),
    Case("make-test-split-int", make(test_split=3), TypeError, "test_split must be None or a split file name"),
    Case("make-max-new-tokens-zero", make(max_new_tokens=0), ValueError, "max_new_tokens must be positive"),
    Case("make-target-int", make(target=5), TypeError, "target must be a model spec string or a"),
    Case("make-vec-num-envs-zero", lambda _: gym.make_vec(TOY, num_envs=0), ValueError, "num_envs must be positive"),
    Case("make-vec-num-envs-float", lambda _: gym.make_vec(TOY, num_envs=2.5), TypeError,
         "num_envs must be an integer"),
    Case("make-scorer-not-a-scorer", make(scorer=object()), TypeError, "scorer must be a prompt-gym scorer"),
    Case("make-tokenizer-int", make(tokenizer=5), TypeError, "tokenizer must be a tokenizer object"),
    Case("register-task-int", lambda _: prompt_gym.register_task("bad-factory", 5), TypeError,
         "register_task needs a Task or a callable"),
    Case("evaluate-one-string", lambda _: evaluate_prompts(None, prompt_gym.get_task("toy"), "Classify", "validation"),
         TypeError, r"prompts must be a list of strings.*wrap a single prompt as \[prompt\]"),
    # env.step actions
    Case("step-token-str", step("hello"), TypeError, "In token mode the action is one integer token id"),
    Case("step-token-float", step(1.5), TypeError, "one integer token id, got 1.5"),
    Case("step-token-bool", step(True), TypeError, "one integer token id, got True"),
    Case("step-token-too-large", step(10**6), ValueError, r"Token id 1000000 is outside the vocabulary \[0, "),
    Case("step-token-negative", step(-1), ValueError, "Token id -1 is outside the vocabulary"),
    Case("step-token-array", step(np.array([1, 2])), TypeError, "one integer token id"),
    Case("step-text-int", step(3, mode="text"), TypeError, "In text mode the action is the whole prompt as a str"),
    Case("step-text-none", step(None, mode="text"), TypeError, "whole prompt as a str, got NoneType"),
    Case("step-text-bytes", step(b"Classify", mode="text"), TypeError, "whole prompt as a str, got bytes"),
    Case("step-before-reset", step(1, reset=False), RuntimeError, r"call reset\(\) before step\(\)"),
    Case("step-after-the-end", step("again", mode="text", steps=1), RuntimeError, "The episode has ended"),
    Case("vector-one-bad-token", vector_step(np.array([5, 10**6, 5])), ValueError,
         "Sub-environment 1: Token id 1000000 .* No sub-environment was stepped"),
    Case("vector-one-bad-text", vector_step(["Classify", 3, "Classify"], mode="text"), TypeError,
         "Sub-environment 1: In text mode .* No sub-environment was stepped"),
    Case("vector-too-few", vector_step(np.array([5, 5])), ValueError, "Expected 3 actions"),
    Case("vector-bare-string", vector_step("Classify", mode="text"), TypeError, "one action per sub-environment"),
    Case("vector-bad-seeds", lambda _: gym.make_vec(TOY, num_envs=3).reset(seed=[1]), ValueError,
         "one seed per sub-environment"),
    Case("vector-options-int", lambda _: gym.make_vec(TOY, num_envs=3).reset(options=5), TypeError,
         "options must be None or a dict"),
    Case("vector-float-seed", lambda _: gym.make_vec(TOY, num_envs=3).reset(seed=1.5), TypeError,
         "seed must be None, an int or one seed per sub-environment, got 1.5"),
    # task data
    Case("data-invalid-utf8", data([b'{"text": "ok", "label": 0}', b'{"text": "caf\xe9", "label": 1}']), DataError,
         r"train\.jsonl:2: not valid UTF-8"),
    Case("data-null-text", data([b'{"text": null, "label": 0}']), DataError,
         r"train\.jsonl:1: field 'text' must be text, got null"),
    Case("data-list-text", data([b'{"text": ["a"], "label": 0}']), DataError, "field 'text' must be text"),
    Case("data-missing-field", data([b'{"sentence": "a", "label": 0}']), DataError, "missing field 'text'"),
    Case("data-label-str", data([b'{"text": "a", "label": "1"}']), DataError, "'label' must be an integer, got '1'"),
    Case("data-label-bool", data([b'{"text": "a", "label": true}']), DataError, "'label' must be an integer"),
    Case("data-label-out-of-range", data([b'{"text": "a", "label": 5}']), DataError,
         "label 5 is outside the verbalizer's 0..1"),
    Case("data-empty-file", data(b""), DataError, "the file has no examples"),
    Case("data-not-an-object", data([b"[1, 2]"]), DataError, "expected a JSON object, got list"),
    Case("data-bad-json", data([b'{"text": "a", "label": 0']), DataError, r"train\.jsonl:1: not valid JSON"),
    Case("data-one-class-verbalizer", data([b'{"text": "a", "label": 0}'], verbalizer=["positive"]), ValueError,
         "two or more distinct words"),
    Case("data-duplicate-verbalizer", data([b'{"text": "a", "label": 0}'], verbalizer=["yes", "yes"]), ValueError,
         "two or more distinct words"),
    Case("data-verbalizer-string", data([b'{"text": "a", "label": 0}'], verbalizer="positive"), ValueError,
         "verbalizer is a list of class words"),
    Case("data-verbalizer-empty-word", data([b'{"text": "a", "label": 0}'], verbalizer=["yes", " "]), ValueError,
         "non-empty string"),
    Case("data-rows-not-dicts", lambda _: prompt_gym.make_task("m", train=[1, 2], validation=[{"text": "a", "label": 0}],
                                                           test=[{"text": "a", "label": 0}], verbalizer=["a", "b"]),
         DataError, "every row of the 'train' split .* must be a dict"),
    Case("data-generation-null-output", data([b'{"text": "a", "output": null}'], verbalizer=None, metric="contains"),
         DataError, "'output' must be a string or a non-empty list of strings"),
    # CLI flags: refused while parsing, before any model loads
    Case("cli-kl-coef-inf", cli("train", "--kl-coef", "inf"), SystemExit, "--kl-coef: expected a finite number"),
    Case("cli-kl-coef-nan", cli("train", "--kl-coef", "nan"), SystemExit, "--kl-coef: expected a finite number"),
    Case("cli-kl-coef-negative", cli("train", "--kl-coef", "-1"), SystemExit, "at least 0"),
    Case("cli-lr-zero", cli("train", "--lr", "0"), SystemExit, "learning_rate must be positive, got 0"),
    Case("cli-lr-word", cli("train", "--lr", "fast"), SystemExit, "--lr: expected a finite number .*, got 'fast'"),
    Case("cli-updates-zero", cli("train", "--updates", "0"), SystemExit, "--updates: expected a positive integer"),
    Case("cli-batch-size-zero", cli("train", "--batch-size", "0"), SystemExit, "batch_size must be positive"),
    Case("cli-num-demos-negative", cli("train", "--num-demos", "-1"), SystemExit, "--num-demos: expected an integer"),
    Case("cli-save-every-float", cli("train", "--save-every", "1.5"), SystemExit, "--save-every: expected a positive"),
    Case("cli-anchor-threshold-inf", cli("train", "--anchor-threshold", "inf"), SystemExit, "expected a finite"),
    Case("cli-train-no-out", cli("train", "--env", TOY), SystemExit, "needs --out RUN_FOLDER and --updates N"),
    Case("cli-bad-agent-model", cli("train", "--env", TOY, "--agent-model", "not a model!", "--updates", "1",
                                    "--out", "TMP/run"), ValueError, "is not a built-in alias"),
    Case("cli-compare-budget-zero", cli(*CMP, "--budget", "0", "--out", "TMP/c"), SystemExit,
         "--budget: expected a positive integer"),
    Case("cli-compare-no-seeds", cli("compare", "--seeds", ",", "--budget", "9", "--out", "TMP/c"), SystemExit,
         "--seeds takes at least one integer"),
    Case("cli-compare-checkpoint-every", cli(*CMP, "--budget", "9", "--checkpoint-every", "0", "--out", "TMP/c"),
         SystemExit, "--checkpoint-every: expected a positive integer"),
    Case("cli-compare-env-kwargs-list", cli(*CMP, "--budget", "9", "--env-kwargs", "[1]", "--out", "TMP/c"),
         SystemExit, "expected a JSON object"),
    Case("cli-compare-option-infinity", cli(*CMP[:-4], "--agents", "random-search", "--seeds", "0", "--budget", "99",
                                            "--agent-options", '{"random-search": {"temperature": Infinity}}',
                                            "--out", "TMP/c"), SystemExit, "must be a finite number, got inf"),
    Case("cli-compare-option-unknown", cli(*CMP[:-4], "--agents", "appo", "--seeds", "0", "--budget", "99",
                                           "--agent-options", '{"appo": {"learning_rat": 0.1}}', "--out", "TMP/c"),
         SystemExit, r"unknown fields \['learning_rat'\]"),
    Case("cli-compare-budget-float", lambda tmp_path: CompareConfig(TOY, ["manual"], 9.5, [0], tmp_path / "c"),
         TypeError, "the budget .* must be an integer, got 9.5"),
    Case("cli-train-unknown-env", cli("train", "--env", "PromptTune-Nope-v0", "--updates", "1", "--out", "TMP/r"),
         ValueError, "Unknown environment 'PromptTune-Nope-v0'; `prompt-gym envs` lists them"),
    Case("cli-negative-seed", cli("train", "--seed", "-1"), SystemExit, "--seed: expected an integer of at least 0"),
    Case("cli-compare-negative-seed", cli(*CMP[:-2], "--seeds", "-1", "--budget", "99", "--out", "TMP/c"),
         SystemExit, "every seed must be non-negative"),
    Case("cli-unknown-device", cli("train", "--env", TOY, "--device", "gpu", "--updates", "1", "--out", "TMP/r"),
         ValueError, "Unknown device 'gpu'; use 'auto', 'cpu'"),
    Case("cli-unknown-task", cli("train", "--env", TOY, "--task", "nope", "--updates", "1", "--out", "TMP/r"),
         ValueError, "Unknown task 'nope'; known tasks"),
    Case("cli-eval-prompt-file-not-utf8", folder({"p.txt": b"caf\xe9\n"}, "eval", "--env", TOY, "--prompt-file",
                                                "TMP/p.txt"), SystemExit, "p.txt is not UTF-8 text"),
    Case("cli-eval-json-folder-missing", cli("eval", "--env", TOY, "--prompt", "x", "--json", "TMP/no/such/r.json"),
         SystemExit, "--json: the folder of .* does not exist"),
    Case("cli-eval-missing-prompt-file", cli("eval", "--env", TOY, "--prompt-file", "TMP/none.txt"), SystemExit,
         "--prompt-file: no such file"),
    # run folders and saved configs
    Case("folder-out-is-a-file", folder({"run": "x"}, "train", "--env", TOY, "--updates", "1", "--out", "TMP/run"),
         NotADirectoryError, "is a file, not a run folder"),
    Case("folder-foreign", folder({"run/results.json": "{}"}, "train", "--env", TOY, "--updates", "1", "--out",
                                  "TMP/run"), FileExistsError, "not empty and holds no prompt-gym run"),
    Case("folder-holds-a-run", folder({RUN_JSON: "{}"}, "train", "--env", TOY, "--updates", "1", "--out", "TMP/run"),
         FileExistsError, "already holds a run; continue it with --resume"),
    Case("resume-not-a-run", cli("train", "--resume", "TMP/nothing"), FileNotFoundError, "not a prompt-gym run folder"),
    Case("resume-run-json-not-json", folder({RUN_JSON: "{not json"}, "train", "--resume", "TMP/run"), ValueError,
         "run.json is not a valid run description"),
    Case("resume-run-json-list", folder({RUN_JSON: "[1, 2]"}, "train", "--resume", "TMP/run"), ValueError,
         "expected a JSON object"),
    Case("resume-run-json-bad-utf8", folder({RUN_JSON: b"\xff\xfe"}, "train", "--resume", "TMP/run"), ValueError,
         "not a valid run description"),
    Case("resume-run-json-unknown-field", folder({RUN_JSON: json.dumps(
        {"env": TOY, "out": "x", "updates": 2, "config": {}, "model_config": {}, "colour": "red"})},
        "train", "--resume", "TMP/run"), ValueError, "colour"),
    Case("resume-run-json-bad-value", folder({RUN_JSON: json.dumps(
        {"env": TOY, "out": "x", "updates": "two", "config": {}, "model_config": {}})},
        "train", "--resume", "TMP/run"), ValueError, "not a valid run description"),
    Case("resume-a-checkpoint-folder", folder({RUN_JSON: "{}", "run/checkpoints/step-000002/w.bin": "x"}, "train",
                                              "--resume", "TMP/run/checkpoints/step-000002"), FileNotFoundError,
         "is inside the run folder .*run: pass that folder to --resume"),
    Case("compare-result-unreadable", lambda tmp_path: (cli(*CMP, "--budget", "99", "--out", "TMP/c")(tmp_path),
                                                        (tmp_path / "c/runs/manual/seed-0/result.json").write_text("{"),
                                                        cli(*CMP, "--budget", "99", "--out", "TMP/c")(tmp_path)),
         SystemExit, "result.json is unreadable .* delete .*seed-0 to run manual seed 0 again"),
    Case("resume-and-overwrite", folder({RUN_JSON: "{}"}, "train", "--resume", "TMP/run", "--overwrite"), SystemExit,
         "give one"),
    Case("compare-out-is-a-file", folder({"c": "x"}, *CMP, "--budget", "99", "--out", "TMP/c"), SystemExit,
         "is a file"),
    Case("compare-foreign-folder", folder({"c/notes.txt": "mine"}, *CMP, "--budget", "99", "--out", "TMP/c"),
         SystemExit, "not empty and holds no comparison"),
    Case("compare-config-unreadable", folder({"c/config.json": "{torn"}, *CMP, "--budget", "99", "--out", "TMP/c"),
         SystemExit, "config.json is unreadable"),
    Case("compare-config-differs", folder({"c/config.json": json.dumps(
        {"env_id": TOY, "budget": 5, "agents": ["manual"], "seeds": [0]}), "c/runs/manual/seed-0/result.json": "{}"},
        *CMP, "--budget", "99", "--out", "TMP/c"),
         SystemExit, "holds a comparison run with other settings"),
    # checkpoints
    Case("checkpoint-none", lambda tmp_path: ckpt.latest_checkpoint(tmp_path / "empty"), ckpt.CheckpointError,
         "No checkpoint in"),
    Case("checkpoint-all-corrupt", checkpoints(lambda root: [
        (path / "w.bin").write_bytes(b"x") for path in root.glob("step-*")]), ckpt.CheckpointError,
         "verifies: .*step-000002 is corrupt.*step-000001 is corrupt"),
    Case("checkpoint-manifest-escapes", checkpoints(lambda root: [manifest(root, n, json.dumps(
        {"format": 1, "files": {"../../secret": "0"}})) for n in (1, 2)]), ckpt.CheckpointError,
         "a file outside its folder"),
    Case("checkpoint-manifest-not-json", checkpoints(lambda root: [manifest(root, n, "{") for n in (1, 2)]),
         ckpt.CheckpointError, "unreadable manifest.json"),
    Case("checkpoint-manifest-format", checkpoints(lambda root: [manifest(root, n, json.dumps(
        {"format": 99, "files": {}})) for n in (1, 2)]), ckpt.CheckpointError, "format 99, expected 1"),
    Case("checkpoint-step-folder-incomplete", lambda tmp_path: (tmp_path / "step-000003").mkdir() or
         ckpt.latest_checkpoint(tmp_path / "step-000003"), ckpt.CheckpointError,
         "incomplete.*Resume the run folder instead"),
    Case("checkpoint-keep-zero", lambda tmp_path: ckpt.save_checkpoint(tmp_path, 1, lambda f: None, keep=0),
         ValueError, "keep must be at least 1"),
    Case("log-bad-middle-line", lambda tmp_path: (tmp_path / "log.jsonl").write_text(
        '{"step": 1}\nnot json\n{"step": 2}\n') and read_log(tmp_path / "log.jsonl"), ValueError,
         r"log\.jsonl:2: not a log record"),
    # budgets
    Case("budget-negative", budget(limit=-1), ValueError, "non-negative number of evaluations, got -1"),
    Case("budget-float", budget(limit=1.5), ValueError, "non-negative number of evaluations, got 1.5"),
    Case("budget-patience-zero", budget(patience=0), ValueError, "patience must be a positive number"),
    Case("budget-exceeded", budget(limit=3, pairs=4), BudgetExhausted, "would exceed the budget"),
]


def test_the_corpus_is_large_and_covers_every_kind():
    kinds = {case.id.split("-")[0] for case in CASES}
    assert len(CASES) >= 50 and len({case.id for case in CASES}) == len(CASES)
    assert {"make", "step", "vector", "data", "cli", "folder", "resume", "compare", "checkpoint", "budget"} <= kinds


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_clear_error(case, tmp_path, capsys):
    with pytest.raises(case.error) as caught:
        case.run(tmp_path)
    assert re.search(case.match, f"{caught.value}\n{capsys.readouterr().err}"), (
        f"{case.id}: the message does not say {case.match!r}: {caught.value}")


def test_a_bad_action_in_a_vector_step_changes_no_sub_env():
    envs = gym.make_vec(TOY, num_envs=3, **SMALL)
    envs.reset(seed=0)
    word = envs.unwrapped.envs[0].tokenizer.ids["review"]
    envs.step(np.array([word, word, word]))
    before = [env.observation()["input_ids"].tolist() for env in envs.unwrapped.envs]
    with pytest.raises(ValueError, match="Sub-environment 2"):
        envs.step(np.array([1, 1, 10**6]))  # EOS would finish (and need scoring for) sub-envs 0 and 1
    assert [env.observation()["input_ids"].tolist() for env in envs.unwrapped.envs] == before
    _, rewards, terminated, _, _ = envs.step(np.array([1, 1, 1]))
    assert terminated.all() and (rewards != 0).all()  # every finished prompt was scored


def test_text_prompts_lose_special_tokens_like_token_mode(byte_tokenizer):
    task = prompt_gym.get_task("toy")
    env = gym.make(TOY, **(SMALL | {"max_prompt_tokens": 32}), action_mode="text", tokenizer=byte_tokenizer,
                   scorer=task.default_scorer(task))
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="special tokens"):
        _, _, _, _, info = env.step("Classify<eos> the review<pad>")
    assert info["prompt"] == "Classify the review"


def test_pruning_keeps_the_checkpoint_just_written_and_cleans_staging(tmp_path):
    for stale in (7, 9):  # a previous timeline's checkpoints, newer than the new run
        ckpt.save_checkpoint(tmp_path, stale, lambda f: (f / "w.bin").write_bytes(b"old"))
    (tmp_path / ".step-000008-killed").mkdir()  # what a kill during a save leaves
    written = ckpt.save_checkpoint(tmp_path, 1, lambda f: (f / "w.bin").write_bytes(b"new"), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000001"]
    assert ckpt.latest_checkpoint(tmp_path) == written


def test_a_torn_last_log_line_is_dropped_with_a_warning(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a"')
    with pytest.warns(UserWarning, match="cut short"):
        assert read_log(log) == [{"step": 1, "a": 1.0}]


def test_a_dangling_latest_falls_back_with_a_warning_and_reading_deletes_nothing(tmp_path):
    older = ckpt.save_checkpoint(tmp_path, 1, lambda f: (f / "w.bin").write_bytes(b"1"))
    (tmp_path / "latest").write_text("step-000009")  # names a checkpoint that is not there
    (tmp_path / ".step-000002-writing").mkdir()  # another process may be saving right now
    with pytest.warns(UserWarning, match="step-000001, an older checkpoint: 'latest' .* does not name"):
        assert ckpt.latest_checkpoint(tmp_path) == older
    assert (tmp_path / ".step-000002-writing").is_dir()


def test_staging_folders_of_killed_model_conversions_are_removed(tmp_path):
    import os

    from prompt_gym.models import STALE_STAGING_S, remove_stale_staging

    killed, running = tmp_path / ".converting-killed", tmp_path / ".converting-running"
    killed.mkdir()
    running.mkdir()
    old = killed.stat().st_mtime - STALE_STAGING_S - 60
    os.utime(killed, (old, old))
    assert remove_stale_staging(tmp_path) == [killed]
    assert not killed.exists() and running.is_dir()
