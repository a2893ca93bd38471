"""Run folders are never damaged, failed starts never block a rerun, and kill -9 + resume loses nothing.

Training runs use the toy env (its keyword rule target is deterministic) and a tiny Llama saved to
a folder, as ``tests/agents/test_train_cli.py`` does. The kill tests run ``prompt-gym train`` in a
subprocess that sends itself SIGKILL at a chosen point (after logging an update, or while hashing
the files of a checkpoint), resume it, and compare with a run that was never interrupted; the same
with a caching LM target (task ``toy-cached``), whose score cache must survive the kill, and for
``prompt-gym compare``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prompt_gym.agents.training_state import CLOCK_FILE
from prompt_gym.checkpoint import MANIFEST, CheckpointError
from prompt_gym.logging import Logger, read_log
from prompt_gym.runs.cli import main

ARGS = ["--env", "PromptTune-Toy-v0", "--batch-size", "2", "--ppo-epochs", "1", "--lr", "1e-2",
        "--anchor-check-interval", "2", "--max-prompt-tokens", "3", "--num-demos", "1", "--reward-batch-size", "2",
        "--device", "cpu", "--save-every", "1", "--seed", "3"]
COUNTS = ("num_updates", "num_timesteps", "target_evaluations", "promotions", "rollbacks")

CACHED_TASK = """
import dataclasses
import prompt_gym
from prompt_gym.scoring import LMScorer
from prompt_gym.testing import build_byte_tokenizer, build_tiny_lm

def _caching_target(task, _tokenizer=build_byte_tokenizer()):
    return LMScorer(build_tiny_lm(_tokenizer), _tokenizer, ("negative", "positive"))

prompt_gym.register_task("toy-cached", dataclasses.replace(
    prompt_gym.get_task("toy"), name="toy-cached", default_scorer=_caching_target), overwrite=True)
"""
"""Registers ``toy-cached``: the toy task with a tiny-LM target that has a score cache (here and in the killed process)."""
exec(CACHED_TASK)

KILLER = CACHED_TASK + """
import os, signal, sys
from prompt_gym import checkpoint, logging
from prompt_gym.runs.cli import main

where, at = sys.argv[1], int(sys.argv[2])
if where == "update":  # right after update `at` is logged, before its checkpoint
    dump = logging.Logger.dump
    def dump_then_die(self, step):
        record = dump(self, step)
        if step == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return record
    logging.Logger.dump = dump_then_die
elif where == "checkpoint":  # while the files of checkpoint `at` are hashed: staged, no manifest yet
    sha = checkpoint._sha256
    def hash_or_die(path):
        if f".step-{at:06d}-" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
        return sha(path)
    checkpoint._sha256 = hash_or_die
else:  # checkpoint `at` is complete and in place, `latest` not yet moved to it
    replace = checkpoint.os.replace
    def replace_or_die(source, target):
        if str(target).endswith("latest") and (checkpoint.Path(target).parent / f"step-{at:06d}").is_dir():
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(source, target)
    checkpoint.os.replace = replace_or_die
main(["train", *sys.argv[3:]])
"""


def train(model: str, out: Path, updates: int, *extra: str) -> int:
    return main(["train", *ARGS, "--agent-model", model, "--updates", str(updates), "--out", str(out), *extra])


def resume(out: Path, updates: int, *extra: str) -> int:
    return main(["train", "--resume", str(out), "--updates", str(updates), *extra])


def killed_run(model: str, out: Path, where: str, at: int, updates: int, *extra: str) -> None:
    command = [sys.executable, "-c", KILLER, where, str(at), *ARGS, "--agent-model", model,
               "--updates", str(updates), "--out", str(out), *extra]
    # the same torch threads as this process, which runs the straight and the resumed parts: float sums
    # split over another number of threads differ in the last bits
    threads = {"OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.run(command, capture_output=True, text=True, env=os.environ | threads)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]


def fingerprint(out: Path) -> dict:
    """What must be identical between an interrupted-and-resumed run and a straight one."""
    results = json.loads((out / "results.json").read_text())
    last = sorted((out / "checkpoints").glob("step-*"))[-1]
    hashes = json.loads((last / MANIFEST).read_text())["files"]
    hashes.pop(CLOCK_FILE)  # wall time: the one file that differs between a run and its exact resume
    log = [(r["step"], r.get("time/target_evaluations"), r.get("rollout/reward")) for r in read_log(out / "log.jsonl")]
    return {"counts": {k: results[k] for k in COUNTS}, "selected": results["selected"], "log": log,
            "checkpoint": last.name, "files": hashes}


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_model_dir_module):
    """A 4-update run that was never interrupted."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert train(tiny_model_dir_module, out, 4) == 0
    return fingerprint(out)


@pytest.fixture(scope="module")
def straight_cached(tmp_path_factory, tiny_model_dir_module):
    """A 4-update run with a caching LM target that was never interrupted."""
    out = tmp_path_factory.mktemp("straight-cached") / "run"
    assert train(tiny_model_dir_module, out, 4, "--task", "toy-cached") == 0
    return fingerprint(out)


@pytest.fixture(scope="module")
def tiny_model_dir_module(tmp_path_factory) -> str:
    from prompt_gym.testing import build_byte_tokenizer, build_tiny_lm

    tokenizer = build_byte_tokenizer()
    folder = tmp_path_factory.mktemp("model") / "tiny-model"
    build_tiny_lm(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize(("where", "at"), [("update", 3), ("checkpoint", 3), ("pointer", 3)])
def test_kill_9_then_resume_gives_identical_weights_and_counts(where, at, straight, tiny_model_dir_module, tmp_path):
    out = tmp_path / "run"
    killed_run(tiny_model_dir_module, out, where, at, updates=4)
    assert not (out / "results.json").exists()
    staged = list((out / "checkpoints").glob(".step-*"))
    assert len(staged) == (1 if where == "checkpoint" else 0)
    assert (out / "checkpoints" / "latest").read_text() == f"step-{at - 1:06d}"
    with pytest.raises(FileExistsError, match="--resume"):  # the folder is a run now: a new start must not touch it
        train(tiny_model_dir_module, out, 4)
    assert resume(out, 4) == 0
    assert not list((out / "checkpoints").glob(".step-*"))  # the kill's staging folder is gone
    assert fingerprint(out) == straight


@pytest.mark.parametrize(("where", "at"), [("update", 3), ("checkpoint", 3)])
def test_kill_9_then_resume_with_a_caching_target_gives_identical_counts(where, at, straight_cached,
                                                                           tiny_model_dir_module, tmp_path):
    """The score cache is in the checkpoint: pairs cached before the kill are neither paid nor rescored again."""
    out = tmp_path / "run"
    killed_run(tiny_model_dir_module, out, where, at, 4, "--task", "toy-cached")
    checkpoint = out / "checkpoints" / f"step-{at - 1:06d}"
    counts = json.loads((checkpoint / "target" / "counts.json").read_text())
    assert counts["scorer"]["cache_hits"] > 0  # the run did repeat pairs: the cache mattered
    assert json.loads((checkpoint / MANIFEST).read_text())["files"].keys() >= {
        "target/counts.json", "target/score_cache.json", "target/score_cache.safetensors"}  # verified with the rest
    assert resume(out, 4) == 0
    assert fingerprint(out) == straight_cached  # evaluation counts, weights, score cache: all identical


def test_resumed_tensorboard_shows_each_update_once(straight, tiny_model_dir_module, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    killed_run(tiny_model_dir_module, out, "update", 3, updates=4)  # update 3 is in the events, not in a checkpoint
    assert resume(out, 4) == 0
    assert len(list(out.glob("events.out.tfevents.*"))) == 2
    events = event_accumulator.EventAccumulator(str(out))
    events.Reload()
    shown = [(event.step, event.value) for event in events.Scalars("rollout/reward")]
    logged = [(step, reward) for step, _, reward in straight["log"] if reward is not None]
    assert [step for step, _ in shown] == [step for step, _ in logged] == [1, 2, 3, 4]  # 3 not twice
    assert [value for _, value in shown] == pytest.approx([value for _, value in logged])


def test_a_resumed_events_file_sorts_after_one_written_the_same_second(tmp_path):
    pytest.importorskip("tensorboard")
    earlier = tmp_path / f"events.out.tfevents.{int(time.time()):010d}.zzzz.99999999.0"  # sorts after any host
    earlier.write_bytes(b"")
    logger = Logger(tmp_path, purge_step=3)
    logger.close()
    names = sorted(path.name for path in tmp_path.glob("events.out.tfevents.*"))
    assert len(names) == 2 and names[0] == earlier.name


def test_an_events_file_dated_ahead_of_the_clock_is_reported(tmp_path):
    pytest.importorskip("tensorboard")
    (tmp_path / f"events.out.tfevents.{int(time.time()) + 3600:010d}.host.1.0").write_bytes(b"")
    with pytest.warns(UserWarning, match="ahead of this machine's clock"):
        Logger(tmp_path, purge_step=3).close()


def test_counts_survive_resume(straight, tiny_model_dir_module, tmp_path):
    out = tmp_path / "run"
    assert train(tiny_model_dir_module, out, 2) == 0
    assert resume(out, 4) == 0
    assert fingerprint(out) == straight  # target_evaluations continues from the checkpoint's count


def test_resume_falls_back_to_an_older_verified_checkpoint(straight, tiny_model_dir_module, tmp_path):
    out = tmp_path / "run"
    killed_run(tiny_model_dir_module, out, "update", 4, updates=4)  # checkpoints step-2 and step-3 are kept
    newest = out / "checkpoints" / "step-000003"
    (newest / "optimizer.pt").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="older checkpoint.*step-000003 is corrupt"):
        assert resume(out, 4) == 0
    assert fingerprint(out) == straight


def test_latest_pointing_outside_the_run_is_never_followed(straight, tiny_model_dir_module, tmp_path):
    other = tmp_path / "other"
    assert train(tiny_model_dir_module, other, 1) == 0
    out = tmp_path / "run"
    killed_run(tiny_model_dir_module, out, "update", 3, updates=4)
    (out / "checkpoints" / "latest").write_text("../../other/checkpoints/step-000001")
    with pytest.warns(UserWarning, match="does not name a step-\\* folder of this run"):
        assert resume(out, 4) == 0
    assert fingerprint(out) == straight


def test_a_torn_last_log_line_does_not_block_resume(straight, tiny_model_dir_module, tmp_path):
    out = tmp_path / "run"
    killed_run(tiny_model_dir_module, out, "update", 3, updates=4)
    with (out / "log.jsonl").open("a") as log:
        log.write('{"step": 3, "rollout/rew')  # what a kill in the middle of a write leaves
    with pytest.warns(UserWarning, match="cut short"):
        assert resume(out, 4) == 0
    assert fingerprint(out) == straight


def test_failed_start_leaves_nothing_that_blocks_the_corrected_rerun(tiny_model_dir_module, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="not a built-in alias"):
        train("not a model!", out, 1)
    assert not out.exists()
    out.mkdir()  # an empty folder the user made stays, empty
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises((OSError, ValueError)):  # transformers finds no model files there
        train(str(tmp_path / "not-a-model"), out, 1)
    assert out.is_dir() and not any(out.iterdir())
    assert train(tiny_model_dir_module, out, 1) == 0
    with pytest.raises((OSError, ValueError)):  # --overwrite that fails before replacing keeps the earlier run
        train(str(tmp_path / "not-a-model"), out, 1, "--overwrite")
    assert json.loads((out / "results.json").read_text())["num_updates"] == 1


def test_a_new_run_never_writes_into_a_foreign_folder(tiny_model_dir_module, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.json").write_text('{"my": "results"}')
    (out / "log.jsonl").write_text('{"step": 1, "foreign": 1}\n')
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty and holds no prompt-gym run"):
        train(tiny_model_dir_module, out, 1)
    assert (out / "results.json").read_text() == '{"my": "results"}'
    assert (out / "log.jsonl").read_text() == '{"step": 1, "foreign": 1}\n'
    assert train(tiny_model_dir_module, out, 1, "--overwrite") == 0  # the explicit flag: run outputs replaced
    assert (out / "notes.txt").read_text() == "keep me"
    assert [r["step"] for r in read_log(out / "log.jsonl") if "foreign" in r] == []
    with pytest.raises(SystemExit, match="give one"):
        resume(out, 2, "--overwrite")


@pytest.mark.parametrize(("flag", "value", "setting"), [
    ("--lr", "0.5", "config.learning_rate"), ("--seed", "4", "config.seed"),
    ("--env", "PromptTune-SST2-v0", "env"), ("--num-demos", "2", "env_kwargs.num_demos"),
    ("--no-rollback", None, "config.rollback"), ("--out", "elsewhere", "the run is in"),
])
def test_resume_refuses_flags_that_contradict_the_saved_run(flag, value, setting, tiny_model_dir_module, tmp_path):
    out = tmp_path / "run"
    assert train(tiny_model_dir_module, out, 1) == 0
    with pytest.raises(SystemExit, match=f"{flag}.*{setting}"):
        resume(out, 2, *([flag] if value is None else [flag, value]))
    assert resume(out, 2, "--lr", "1e-2", "--seed", "3") == 0  # flags equal to the saved settings are fine
    assert json.loads((out / "results.json").read_text())["num_updates"] == 2


def test_resume_without_any_checkpoint_says_how_to_start_again(tiny_model_dir_module, tmp_path):
    out = tmp_path / "run"
    killed_run(tiny_model_dir_module, out, "checkpoint", 1, updates=2)  # killed inside its first checkpoint
    with pytest.raises(CheckpointError, match="--overwrite instead of --resume"):
        resume(out, 2)
    assert train(tiny_model_dir_module, out, 2, "--overwrite") == 0
    with pytest.raises(ValueError, match="--updates 2 or more"):
        resume(out, 1)


def test_compare_resumes_from_an_older_verified_checkpoint_instead_of_restarting(tmp_path):
    from prompt_gym.runs.compare import CompareConfig, run_comparison, run_dir

    budget = 8 + 4 * 4 * 8 + 8 + 5 * 8  # start measurement, 4 updates of 4 prompts, 1 check, selection reserve
    config = CompareConfig("PromptTune-Toy-v0", ["ppo"], budget, [0], tmp_path / "cmp", checkpoint_every=1,
                           agent_options={"ppo": {"learning_rate": 1e-3, "ppo_epochs": 1, "batch_size": 4,
                                                  "anchor_samples": 1, "anchor_check_interval": 3}})
    first = run_comparison(config, log=lambda line: None)[0]
    folder = run_dir(config.out, "ppo", 0)
    older, newest = sorted((folder / "checkpoints").glob("step-*"))
    (folder / "result.json").unlink()  # as if killed before the end
    (newest / "agent" / "pool.json").write_text("[]")  # and the newest checkpoint damaged
    with pytest.warns(UserWarning, match=f"{older.name}, an older checkpoint.*{newest.name} is corrupt"):
        resumed = run_comparison(config, log=lambda line: None)[0]
    assert resumed["resumed_from_update"] == int(older.name.split("-")[1])  # not a silent restart from 0
    assert resumed["num_updates"] == first["num_updates"] and resumed["evaluations"] <= budget
    steps = [record["step"] for record in read_log(folder / "log" / "log.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == first["num_updates"]


def test_a_failed_compare_start_does_not_block_the_corrected_rerun(tmp_path):
    from prompt_gym.runs.compare import CompareConfig, run_comparison

    out = tmp_path / "cmp"
    options = {"random-search": {"final_samples": 1}}
    env_kwargs = {"max_prompt_tokens": 3, "reward_batch_size": 2}
    with pytest.raises(ValueError, match="not a built-in alias"):
        run_comparison(CompareConfig("PromptTune-Toy-v0", ["random-search"], 60, [0], out, agent_model="not a model!",
                                     env_kwargs=env_kwargs, agent_options=options), log=lambda line: None)
    assert (out / "config.json").is_file()
    fixed = CompareConfig("PromptTune-Toy-v0", ["random-search"], 60, [0], out, env_kwargs=env_kwargs,
                          agent_options=options)
    assert run_comparison(fixed, log=lambda line: None)[0]["evaluations"] <= 60
    with pytest.raises(ValueError, match="other settings \\(agent_model differ"):  # now a run has finished
        run_comparison(CompareConfig("PromptTune-Toy-v0", ["random-search"], 60, [0], out, agent_model="x/y",
                                     env_kwargs=env_kwargs, agent_options=options), log=lambda line: None)


COMPARE_KILLER = CACHED_TASK + """
import os, signal, sys
from prompt_gym import logging
from prompt_gym.runs.cli import main

agent, at = sys.argv[1], int(sys.argv[2])
dump = logging.Logger.dump
def dump_then_die(self, step):  # right after update `at` of `agent`'s run is logged, before its checkpoint
    record = dump(self, step)
    if step == at and f"/runs/{agent}/" in str(self.folder):
        os.kill(os.getpid(), signal.SIGKILL)
    return record
logging.Logger.dump = dump_then_die
main(["compare", *sys.argv[3:]])
"""


def compare_args(out: Path) -> list[str]:
    """A two-run comparison on the toy task with a caching LM target: PPO, then random search (which repeats prompts)."""
    return ["--env", "PromptTune-Toy-v0", "--agents", "ppo,random-search", "--seeds", "0", "--budget", "200",
            "--checkpoint-every", "1", "--out", str(out),
            "--env-kwargs", json.dumps({"task": "toy-cached", "max_prompt_tokens": 3, "reward_batch_size": 2}),
            "--agent-options", json.dumps({"random-search": {"final_samples": 1, "temperature": 0.05},
                                           "ppo": {"learning_rate": 1e-3, "ppo_epochs": 1, "batch_size": 4,
                                                   "anchor_samples": 1, "anchor_check_interval": 3}})]


def compared(out: Path) -> dict:
    """Each run's result.json, less what differs between a run and its exact resume (wall time, where it resumed)."""
    results = {}
    for path in sorted(out.glob("runs/*/seed-*/result.json")):
        result = json.loads(path.read_text())
        for key in ("wall_time_s", "resumed_from_update"):
            result.pop(key)
        results[path.parent.parent.name] = result
    return results


def test_kill_9_mid_comparison_then_the_same_command_finishes_it_identically(tmp_path, capsys):
    straight = tmp_path / "straight"
    assert main(["compare", *compare_args(straight)]) == 0
    out = tmp_path / "killed"
    process = subprocess.run([sys.executable, "-c", COMPARE_KILLER, "random-search", "10", *compare_args(out)],
                             capture_output=True, text=True)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert (out / "runs" / "ppo" / "seed-0" / "result.json").is_file()
    assert not (out / "runs" / "random-search" / "seed-0" / "result.json").exists()
    capsys.readouterr()
    assert main(["compare", *compare_args(out)]) == 0
    assert "[skip] ppo seed 0" in capsys.readouterr().out
    resumed = json.loads((out / "runs" / "random-search" / "seed-0" / "result.json").read_text())
    assert resumed["resumed_from_update"] == 9
    assert compared(out) == compared(straight)  # evaluations, updates, selected prompt and accuracies, curve
    assert (out / "results.csv").read_text().splitlines()[0] == (straight / "results.csv").read_text().splitlines()[0]
