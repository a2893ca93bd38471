"""Replay the updates after one checkpoint of a ``prompt-gym compare`` run, with other agent options.

Resuming is exact (same batch, same RNG), so an update that went wrong in a run (a spike of
``train/approx_kl``, a collapse) can be run again from the checkpoint before it, once with the run's
own options and once with each change to try. The run folder is not touched: the checkpoint is
copied into a scratch folder, the agent is resumed with the run's settings (so the checkpoint
verifies) and the options given are then set on its config. Prints the diagnostics of each update.

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/replay_update.py runs/gemma-sst2-ppo-42 \\
        --agent ppo --seed 42 --step 120 --options '{"max_grad_norm": 1.0}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import torch
from compared_runs import comparison_config

from prompt_gym.runs.compare import CompareConfig, run_dir, run_settings
from prompt_gym.runs.pipeline import Run

SHOWN = ("train/approx_kl", "train/clip_fraction", "train/gradient_steps", "train/policy_grad_norm", "train/entropy",
         "rollout/accuracy")


def scratch_copy(folder: Path, agent: str, seed: int, step: int, scratch: Path) -> CompareConfig:
    """Copy the run's checkpoint ``step-{step}`` and log into ``scratch``; the comparison's config pointing there."""
    source, target = run_dir(folder, agent, seed), run_dir(scratch, agent, seed)
    name = f"step-{step:06d}"
    if not (source / "checkpoints" / name).is_dir():
        kept = sorted(path.name for path in (source / "checkpoints").glob("step-*"))
        raise SystemExit(f"{source / 'checkpoints'} has no {name}; it keeps {kept}.")
    shutil.copytree(source / "checkpoints" / name, target / "checkpoints" / name)
    (target / "checkpoints" / "latest").write_text(name, encoding="utf-8")
    shutil.copytree(source / "log", target / "log")
    return CompareConfig(**comparison_config(folder) | {"out": scratch})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a prompt-gym compare output folder")
    parser.add_argument("--agent", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--step", type=int, required=True, help="the checkpoint's update (step-NNNNNN)")
    parser.add_argument("--updates", type=int, default=1, help="updates to replay after it")
    parser.add_argument("--options", type=json.loads, default={}, help="agent config fields to change (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        config = scratch_copy(args.folder, args.agent, args.seed, args.step, Path(scratch))
        run = Run(run_settings(config, args.agent, args.seed), resume=True)
        run.load()
        run.start(log_folder=run_dir(config.out, args.agent, args.seed) / "log", tensorboard=False)
        changed = dataclasses.replace(run.agent.config, **args.options)  # unknown or invalid options raise here
        for key in args.options:
            setattr(run.agent.config, key, getattr(changed, key))
        for _ in range(args.updates):
            run.agent.learn(total_updates=run.agent.num_updates + 1, progress_bar=False)
            stats = run.agent.last_stats
            shown = ", ".join(f"{key} {stats[key]:.4g}" for key in SHOWN if key in stats)
            print(f"{args.options or 'the run options'}: update {run.agent.num_updates}: {shown}", flush=True)


if __name__ == "__main__":
    main()
