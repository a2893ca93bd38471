"""Environment throughput: 1 env vs 8 separate envs vs the native vector env of 8, token and text mode.

All three share one target (the default model) with the score cache off, so every finished prompt
really runs the model. "8 separate" is Gymnasium's ``SyncVectorEnv`` over 8 ``PromptTuneEnv``s
(SAME_STEP autoreset; each env scores its own prompt in its own call), the way any Gymnasium env
is vectorised; "vector 8" is ``gym.make_vec(..., num_envs=8)``, which scores every prompt finished
in a step in one call. Token mode takes random tokens (EOS never drawn) and ends prompts at
``--prompt-tokens``; text mode submits benchmark prompts (up to 48 tokens). The script prints env
steps/s (one step of one sub-env counts 1) and target examples/s (scored reward-batch rows per
second).

Usage:
    PROMPT_GYM_DATA_DIR=/path/to/data python benchmarks/bench_env.py [--episodes 2]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from bench_common import machine, prompts, timed
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import prompt_gym  # noqa: F401
from prompt_gym.envs.prompt_tune import PromptTuneEnv
from prompt_gym.models import DEFAULT_MODEL, shared_causal_lm
from prompt_gym.scoring import LMScorer
from prompt_gym.tasks import get_task


def run(envs, mode: str, rounds: int, vocab: int, eos: int) -> int:
    """Step until the sub-envs finished ``rounds`` episodes each (on average); return the env steps taken."""
    rng = np.random.default_rng(0)
    texts = prompts(64)
    envs.reset(seed=0)
    steps = finished = 0
    while finished < rounds * envs.num_envs:
        if mode == "text":
            action = tuple(texts[(finished + i) % len(texts)] for i in range(envs.num_envs))
        else:
            tokens = rng.integers(0, vocab - 1, size=envs.num_envs)
            action = tokens + (tokens >= eos)  # any id but EOS
        terminated = envs.step(action)[2]
        steps += envs.num_envs
        finished += int(terminated.sum())
    return steps


def separate_envs(n: int, kwargs: dict) -> SyncVectorEnv:
    """``n`` independent ``PromptTuneEnv``s in Gymnasium's ``SyncVectorEnv`` (SAME_STEP, like ours)."""
    return SyncVectorEnv([lambda: PromptTuneEnv(**kwargs)] * n, autoreset_mode=AutoresetMode.SAME_STEP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=2, help="episodes per sub-env (1 env: 8x this)")
    parser.add_argument("--prompt-tokens", type=int, default=16, help="token-mode prompt length")
    parser.add_argument("--batch", type=int, default=16, help="reward_batch_size")
    args = parser.parse_args()

    model, tokenizer = shared_causal_lm(DEFAULT_MODEL)
    task = get_task("sst2")
    scorer = LMScorer(model, tokenizer, task.verbalizer, task.template, cache_size=0)
    print(f"# {machine()}")
    print("| mode | envs | env steps | seconds | env steps/s | target examples/s | vs 8 separate |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("token", "text"):
        kwargs = {"task": task, "action_mode": mode, "scorer": scorer, "tokenizer": tokenizer,
                  "max_prompt_tokens": args.prompt_tokens if mode == "token" else 48,
                  "reward_batch_size": args.batch}

        ways = {
            "1 env": (separate_envs(1, kwargs), 8 * args.episodes),
            "8 separate (SyncVectorEnv)": (separate_envs(8, kwargs), args.episodes),
            "vector 8 (make_vec)": (gym.make_vec("PromptTune-SST2-v0", num_envs=8, **kwargs), args.episodes),
        }
        results = {}
        for name, (envs, rounds) in ways.items():
            before = scorer.num_evaluations
            steps, seconds = timed(run, envs, mode, rounds, len(tokenizer), tokenizer.eos_token_id)
            results[name] = (steps, seconds, (scorer.num_evaluations - before) / seconds)
        separate = results["8 separate (SyncVectorEnv)"][2]
        for name, (steps, seconds, rate) in results.items():
            print(f"| {mode} | {name} | {steps} | {seconds:.1f} | {steps / seconds:.1f} | {rate:.1f} | "
                  f"{rate / separate:.2f} |", flush=True)
    print(f"# end: {machine()}")


if __name__ == "__main__":
    main()
