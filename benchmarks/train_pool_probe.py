"""Does the policy learn more when its reward batches come from a larger training pool? A probe.

On SST-2 seed 42 the policy fits the split's 32 training sentences (training-batch accuracy 0.69 ->
0.97) while its validation accuracy stays flat ("Learning that shows" §8 in RESULTS.md). This
script tests that explanation: it registers ``<task>-pool``, the task's LM-BFF few-shot split
(same validation and test) whose training split is enlarged with ``--per-label`` extra sentences
per class drawn from the task's full training file (none of them a validation or test input), so
that each episode's reward batch is drawn from a pool of many sentences instead of the same 32. It
then runs what follows ``--``: a ``prompt-gym`` command line, which names the task with
``"task": "<task>-pool"`` in ``--env-kwargs``, or a benchmark script reading such a run's folder
(``policy_test_accuracy.py``), which finds the task registered.

This leaves the 16-shot protocol (the learner sees more labelled data), so its numbers are a
diagnosis, never a result to compare with the few-shot runs' test accuracy.

    OMP_NUM_THREADS=1 PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/train_pool_probe.py \\
        --task sst2 --per-label 240 -- compare --env PromptTune-SST2-v0 --agents appo --seeds 42 \\
        --budget 12000 --out runs/pool-sst2-42 \\
        --env-kwargs '{"task": "sst2-pool", "max_prompt_tokens": 16, "num_demos": 3, "reward_batch_size": 32}' \\
        --agent-options '{"appo": {...}}'
    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/train_pool_probe.py --task sst2 --per-label 240 \\
        -- benchmarks/policy_test_accuracy.py runs/pool-sst2-42 --seed 42 --prompts 4
"""

from __future__ import annotations

import argparse
import dataclasses
import runpy
import sys

import numpy as np

from prompt_gym import data as _data
from prompt_gym import task_suite
from prompt_gym.data import Example
from prompt_gym.runs.cli import main as cli_main
from prompt_gym.tasks import ClassificationSpec, Task, register_task

SPECS = {spec.name: spec for spec, _ in task_suite.CLASSIFICATION_ENVS.values()}


def unseen_training_examples(spec: ClassificationSpec, task: Task, per_label: int, seed: int) -> list[Example]:
    """``per_label`` examples per class of the task's full training file that are in none of ``task``'s splits.

    Drawn with ``seed``; any example whose input is already a training, validation or test input of
    ``task`` is left out.
    """
    root = _data.data_dir()
    if root is None:
        raise SystemExit(f"Set ${_data.DATA_DIR_ENV} to the data folder (the probe reads {spec.folder}/train.jsonl).")
    path = root / spec.folder / "train.jsonl"
    full = _data.to_examples(_data.read_jsonl(path), spec.input_format, str(path), len(spec.verbalizer))
    excluded = {example.input for split in ("train", "validation", "test") for example in task.split(split)}
    pool = [example for example in full if example.input not in excluded]
    return _data.balanced_draw(pool, per_label, np.random.default_rng(seed))


def pooled_task(spec: ClassificationSpec, per_label: int, seed: int = 13, test_split: str | None = None) -> Task:
    """The few-shot task of ``seed`` whose training split also holds ``per_label`` more examples per class.

    The extra examples come from the full training file (:func:`unseen_training_examples`).
    """
    task = spec.build(seed=seed, test_split=test_split)
    splits = task.splits | {"train": task.split("train") + unseen_training_examples(spec, task, per_label, seed)}
    return dataclasses.replace(task, name=f"{spec.name}-pool", splits=splits)


def main() -> int:
    """Register ``<task>-pool`` and run the ``prompt-gym`` command or the script given after ``--``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(SPECS), default="sst2")
    parser.add_argument("--per-label", type=int, default=240, help="extra training examples per class")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then a prompt-gym command line")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a prompt-gym command after --, e.g. -- compare --env PromptTune-SST2-v0 ..., "
                     "or a script, e.g. -- benchmarks/policy_test_accuracy.py runs/pool-sst2-42 --seed 42")
    spec = SPECS[args.task]
    register_task(f"{spec.name}-pool", lambda seed=13, test_split=None: pooled_task(spec, args.per_label, seed, test_split))
    if command[0].endswith(".py"):
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")
        return 0
    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main())
