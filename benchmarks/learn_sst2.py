"""APPO on SST-2 16-shot (seed 13), default model as agent and target, on CPU, for a fixed budget.

Reports the test accuracy of the learned prompt (chosen on validation) next to the manual and the
empty prompt, the wall time and the learning curve (``curves.png`` in the run folder).

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/learn_sst2.py --out runs/learn_sst2 \\
        --updates 12 --minutes 9 --threads 2
"""

from __future__ import annotations

import json
import time

from learning_common import WallTimeBudget, parse_run_arguments, short_run_settings

from prompt_gym.runs.train import train


def main() -> None:
    args = parse_run_arguments(__doc__, out="runs/learn_sst2", updates=12, minutes=9.0)
    settings = short_run_settings("PromptTune-SST2-v0", args.out, args.updates, args.seed, args.lr)
    start = time.perf_counter()
    results = train(settings, callbacks=[WallTimeBudget(args.minutes)])
    summary = {"threads": args.threads, "wall_time_s": round(time.perf_counter() - start, 1),
               "updates": results["num_updates"],
               "promotions": results["promotions"], "rollbacks": results["rollbacks"],
               "target_evaluations": results["target_evaluations"], "selected": results["selected"],
               "test": {k: v["accuracy"] for k, v in results["test"].items()}}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
