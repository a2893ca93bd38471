"""A short APPO run on one task per family, reported next to the task's manual and empty prompt.

Families: few-shot classification (MRPC), instruction induction (antonyms), MMLU (marketing) and
test-time editing (TTE-SST2). Each run: the default model as agent and target, CPU, 4 text-mode
envs, a fixed number of updates or a wall-time budget, whichever ends first; then the prompt is
chosen on validation and reported on the full test split (on TTE the trained policy writes one
prompt per test input instead). Writes one run folder per env and prints a Markdown table.

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/learn_families.py --out runs/families \\
        --updates 8 --minutes 6 --threads 1
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from learning_common import WallTimeBudget, parse_run_arguments, short_run_settings

from prompt_gym.runs.train import train

FAMILY_ENVS = ("PromptTune-MRPC-v0", "PromptTune-II-antonyms-v0", "PromptTune-MMLU-marketing-v0",
               "PromptTune-TTE-SST2-v0")


def main() -> None:
    args = parse_run_arguments(__doc__, out="runs/families", updates=8, minutes=6.0,
                               extra={"--envs": {"nargs": "*", "default": list(FAMILY_ENVS)}})
    rows = []
    for env in args.envs:
        start = time.perf_counter()
        settings = short_run_settings(env, str(Path(args.out) / env), args.updates, args.seed, args.lr)
        results = train(settings, progress_bar=False, callbacks=[WallTimeBudget(args.minutes)])
        test = results["test"]
        rows.append({"env": env, "updates": results["num_updates"], "promotions": results["promotions"],
                     "rollbacks": results["rollbacks"], "target_evaluations": results["target_evaluations"],
                     "learned": test["learned"]["accuracy"], "manual": test["manual"]["accuracy"],
                     "empty": test["empty"]["accuracy"], "test_examples": test["manual"]["num_examples"],
                     "learned_prompt": test["learned"]["prompt"], "minutes": (time.perf_counter() - start) / 60})
        print(json.dumps(rows[-1]), flush=True)
    print("| env | updates | promotions / rollbacks | target evaluations (training + selection) | learned | manual "
          "| empty | test n | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['env']} | {r['updates']} | {r['promotions']} / {r['rollbacks']} | {r['target_evaluations']} | "
              f"{r['learned']:.3f} | {r['manual']:.3f} | {r['empty']:.3f} | {r['test_examples']} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
