"""A short APPO run on one task per family, reported next to the task's manual and empty prompt.

Families: few-shot classification (MRPC), instruction induction (antonyms), MMLU (marketing) and
test-time editing (TTE-SST2). Each run: the default model as agent and target, CPU, 4 text-mode
envs, a fixed number of updates or a wall-time budget, whichever ends first; then the prompt is
chosen on validation and reported on the full test split (on TTE the trained policy writes one
prompt per test input instead). Writes one run folder per env and prints a Markdown table.

    PROMPT_GYM_DATA_DIR=/work/shared/data python benchmarks/learn_families.py --out runs/families \\
        --updates 8 --minutes 6 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from learn_sst2 import WallTimeBudget

from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.agents.training import TrainSettings, run_training

FAMILY_ENVS = ("PromptTune-MRPC-v0", "PromptTune-II-antonyms-v0", "PromptTune-MMLU-marketing-v0",
               "PromptTune-TTE-SST2-v0")


def settings_for(env: str, out: Path, updates: int, seed: int, lr: float) -> TrainSettings:
    """The shared settings; test-time editing scores each prompt on its one input (no reward batch)."""
    env_kwargs = {"action_mode": "text", "num_demos": 3, "max_prompt_tokens": 32}
    if "-TTE-" not in env:
        env_kwargs["reward_batch_size"] = 16
    return TrainSettings(
        env=env, out=str(out / env), updates=updates, num_envs=4, save_every=4, env_kwargs=env_kwargs,
        config=APPOConfig(seed=seed, device="cpu", learning_rate=lr, batch_size=4, minibatch_size=4,
                          ppo_epochs=2, anchor_check_interval=4, anchor_samples=2),
        model_config=ModelConfig(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/families")
    parser.add_argument("--envs", nargs="*", default=list(FAMILY_ENVS))
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=6.0, help="training wall-time budget per env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a crowded CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for env in args.envs:
        start = time.perf_counter()
        results = run_training(settings_for(env, Path(args.out), args.updates, args.seed, args.lr),
                               progress_bar=False, callbacks=[WallTimeBudget(args.minutes)])
        test = results["test"]
        rows.append({"env": env, "updates": results["num_updates"], "promotions": results["promotions"],
                     "rollbacks": results["rollbacks"], "target_evaluations": results["target_evaluations"],
                     "learned": test["learned"]["accuracy"], "manual": test["manual"]["accuracy"],
                     "empty": test["empty"]["accuracy"], "test_examples": test["manual"]["num_examples"],
                     "learned_prompt": test["learned"]["prompt"], "minutes": (time.perf_counter() - start) / 60})
        print(json.dumps(rows[-1]), flush=True)
    print("| env | updates | promotions / rollbacks | target evaluations | learned | manual | empty | test n | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['env']} | {r['updates']} | {r['promotions']} / {r['rollbacks']} | {r['target_evaluations']} | "
              f"{r['learned']:.3f} | {r['manual']:.3f} | {r['empty']:.3f} | {r['test_examples']} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
