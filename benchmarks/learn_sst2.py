"""APPO on SST-2 16-shot (seed 13), default model as agent and target, on CPU, for a fixed budget.

Reports the test accuracy of the learned prompt (chosen on validation) next to the manual and the
empty prompt, the wall time and the learning curve (``curves.png`` in the run folder).

    PROMPT_GYM_DATA_DIR=/work/shared/data python benchmarks/learn_sst2.py --out runs/learn_sst2 \\
        --updates 12 --minutes 9 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.agents.training import TrainSettings, run_training
from prompt_gym.callbacks import Callback


class WallTimeBudget(Callback):
    """Stops training after the update that crosses ``minutes`` of wall time."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.deadline = time.perf_counter() + 60 * minutes

    def _on_update_end(self) -> bool:
        return time.perf_counter() < self.deadline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/learn_sst2")
    parser.add_argument("--updates", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=9.0, help="training wall-time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a crowded CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = TrainSettings(
        env="PromptTune-SST2-v0", out=args.out, updates=args.updates, num_envs=4, save_every=4,
        env_kwargs={"action_mode": "text", "data_seed": 13, "num_demos": 3, "max_prompt_tokens": 32,
                    "reward_batch_size": 16},
        config=APPOConfig(seed=args.seed, device="cpu", learning_rate=args.lr, batch_size=4, minibatch_size=4,
                          ppo_epochs=2, anchor_check_interval=4, anchor_samples=2),
        model_config=ModelConfig(),
    )
    start = time.perf_counter()
    results = run_training(settings, callbacks=[WallTimeBudget(args.minutes)])
    summary = {"threads": args.threads, "wall_time_s": round(time.perf_counter() - start, 1),
               "updates": results["num_updates"],
               "promotions": results["promotions"], "rollbacks": results["rollbacks"],
               "target_evaluations": results["target_evaluations"], "selected": results["selected"],
               "test": {k: v["accuracy"] for k, v in results["test"].items()}}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
