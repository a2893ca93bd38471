"""Manual-prompt test score of every registered task on the default target model.

Each task's ``manual_prompt`` is evaluated on the **first N examples of its test split, in file
order** (a fixed, deterministic subset; no shuffling, no stratification), N per family set by the
flags below. The score is accuracy for classification/MMLU and the task metric for instruction
induction. For classification it also prints the share of the most-predicted class (1.00 means
the verbalizer is "dead": the target gives one answer to everything). TTE-SST2 is not listed: its
manual baseline writes the same prompt for every input, i.e. the SST-2 row.

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/manual_prompts.py \\
        --classification 64 --ii 10 --mmlu 5 --json manual.json [--only SUBSTRING ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import gymnasium as gym
import numpy as np

import prompt_gym
from prompt_gym.evaluation import evaluate_prompts


def family(env_id: str) -> str | None:
    if "-TTE-" in env_id or env_id == "PromptTune-Toy-v0":
        return None
    if "-II-" in env_id:
        return "ii"
    return "mmlu" if "-MMLU-" in env_id else "classification"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classification", type=int, default=64, help="first N test examples per task")
    parser.add_argument("--ii", type=int, default=10, help="first N test (execute) examples per task")
    parser.add_argument("--mmlu", type=int, default=5, help="first N test examples per subject")
    parser.add_argument("--only", nargs="*", default=[], help="run env ids containing any of these substrings")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    limits = {"classification": args.classification, "ii": args.ii, "mmlu": args.mmlu}
    rows = []
    print("| env | metric | n | manual prompt | most-predicted class share | s |")
    print("|---|---|---|---|---|---|")
    for env_id in prompt_gym.ENV_IDS:
        kind = family(env_id)
        if kind is None or (args.only and not any(s in env_id for s in args.only)):
            continue
        start = time.perf_counter()
        env = gym.make(env_id).unwrapped
        task = env.task
        subset = dataclasses.replace(task, splits={**task.splits, "test": task.split("test")[: limits[kind]]})
        examples = subset.split("test")
        share = ""
        if task.is_generation:
            score = evaluate_prompts(env.scorer, subset, [task.manual_prompt])[0]["accuracy"]
        else:
            scores = env.scorer.score([task.manual_prompt], [e.input for e in examples])[0]
            predicted = scores.argmax(axis=1)
            score = float(np.mean(predicted == np.array([e.label for e in examples])))
            share = f"{np.bincount(predicted, minlength=len(task.verbalizer)).max() / len(predicted):.2f}"
        row = {"env": env_id, "metric": task.metric, "n": len(examples), "score": score,
               "majority_share": share, "seconds": round(time.perf_counter() - start, 1)}
        rows.append(row)
        print(f"| {env_id} | {row['metric']} | {row['n']} | {row['score']:.3f} | {share or '-'} "
              f"| {row['seconds']} |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
