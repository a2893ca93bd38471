"""Shared pieces of the learning benchmarks (``learn_sst2.py``, ``learn_families.py``): settings, budget, flags."""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch

from prompt_gym.agents.appo.config import APPOConfig
from prompt_gym.callbacks import Callback
from prompt_gym.runs.settings import RunSettings


class WallTimeBudget(Callback):
    """Stops training after the update that crosses ``minutes`` of wall time."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.deadline = time.perf_counter() + 60 * minutes

    def _on_update_end(self) -> bool:
        return time.perf_counter() < self.deadline


def short_run_settings(env: str, out: str, updates: int, seed: int, lr: float) -> RunSettings:
    """The benchmarks' APPO run: text mode, one env (one meta-prompt per update), 8 prompts per update
    plus 8 replayed elites, 16-token prompts, 3 demonstrations, 16-shot split 13, checks every 5 updates.

    The reward batch is the whole training split (32 examples on binary 16-shot tasks), so every
    prompt is judged on the same examples. An env whose episode costs one evaluation (test-time
    editing scores each prompt on its one input) takes no ``reward_batch_size``.
    """
    env_kwargs = {"action_mode": "text", "data_seed": 13, "num_demos": 3, "max_prompt_tokens": 16}
    if _judged_on_a_reward_batch(env):
        env_kwargs["reward_batch_size"] = 32
    return RunSettings(env=env, out=out, updates=updates, agent="appo", num_envs=1, save_every=5,
                       env_kwargs=env_kwargs, config=APPOConfig(seed=seed, device="cpu", learning_rate=lr))


def _judged_on_a_reward_batch(env: str) -> bool:
    """Whether ``env`` judges a prompt on a batch of training examples (asked of it on the toy task: no model loads)."""
    return gym.make(env, task="toy").unwrapped.evaluations_per_episode > 1


def parse_run_arguments(description: str, out: str, updates: int, minutes: float,
                        extra: dict[str, dict] | None = None) -> argparse.Namespace:
    """Parse the flags both benchmarks take (plus ``extra``: flag -> ``add_argument`` kwargs); set torch threads."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=out)
    for flag, options in (extra or {}).items():
        parser.add_argument(flag, **options)
    parser.add_argument("--updates", type=int, default=updates)
    parser.add_argument("--minutes", type=float, default=minutes, help="training wall-time budget (per run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=APPOConfig().learning_rate)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a crowded CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args
