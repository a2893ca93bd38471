"""Compare RL algorithms and baselines on one prompt-tuning env under one budget (CleanRL-style, one file).

Every agent gets the same budget of target-LLM evaluations (prompt x example pairs the target
scores), each seed picks its prompt on the validation split, and the table reports test accuracy.
The defaults run on the toy env (a keyword-rule target, a tiny random agent LLM) in well under a
minute on a laptop CPU; flags scale it to SST-2 with the real models:

    python examples/compare_algorithms.py
    python examples/compare_algorithms.py --env-id PromptTune-SST2-v0 --budget 2000 \\
        --agents appo,ppo,pg-group,random-search,manual,sb3:ppo --seeds 13,21,42 --out runs/cmp-sst2

The same thing as one command: ``prompt-gym compare --env ... --agents ... --budget ... --out ...``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import prompt_gym  # noqa: F401  (registers the environments)
from prompt_gym.agents import AGENTS, make_agent
from prompt_gym.budget import BudgetedScorer, BudgetExhausted
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.models import DEFAULT_MODEL, load_causal_lm
from prompt_gym.runs.report import write_report
from prompt_gym.testing import build_tiny_lm


@dataclass
class Args:
    env_id: str = "PromptTune-Toy-v0"
    """the environment (PromptTune-SST2-v0 for the real task)"""
    agents: str = "pg-group,random-search,manual,sb3:a2c"
    """comma-separated agents: appo, ppo, pg-group, random-search, manual, sb3:ppo, sb3:a2c"""
    budget: int = 160
    """target-LLM evaluations per run, prompt selection included"""
    seeds: str = "1,2"
    """comma-separated seeds (on SST-2 also the few-shot split: 13, 21, 42, 87, 100)"""
    out: str = "runs/compare-toy"
    """where the table and the curves go"""
    learning_rate: float = 1e-3
    """learning rate of the LLM agents (appo, ppo, pg-group); 1e-4 suits the 135M default model"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for item in fields(Args):
        parser.add_argument(f"--{item.name.replace('_', '-')}", type=type(item.default), default=item.default)
    return Args(**vars(parser.parse_args()))


def agent_llm(env: gym.Env, seed: int):
    """A fresh agent LLM per run: a tiny random one on the toy env, else the default model."""
    if env.unwrapped.task.has_own_target:
        return build_tiny_lm(env.unwrapped.tokenizer, seed=seed), env.unwrapped.tokenizer
    return load_causal_lm(DEFAULT_MODEL)


if __name__ == "__main__":
    args = parse_args()
    if args.env_id == "PromptTune-Toy-v0":
        torch.set_num_threads(1)  # tiny models: one thread is many times faster on a shared CPU
    results = []
    for name in args.agents.split(","):
        spec = AGENTS[name]
        for seed in (int(s) for s in args.seeds.split(",")):
            # 1. A fresh target per run, behind a hard budget. SB3 acts token by token; LLM agents
            #    write whole prompts (text mode: same prompts and rewards, batched generation).
            target = gym.make(args.env_id, action_mode=spec.action_mode).unwrapped.scorer
            scorer = BudgetedScorer(target)
            env = gym.make(args.env_id, action_mode=spec.action_mode, scorer=scorer)
            options = {"learning_rate": args.learning_rate} if name in ("appo", "ppo", "pg-group") else {}
            if name.startswith("sb3:"):
                options = {"algo_kwargs": {"n_steps": 16}}
            model, tokenizer = agent_llm(env, seed) if spec.uses_llm else (None, None)
            agent = make_agent(name, env, seed=seed, model=model, tokenizer=tokenizer, **options)

            # 2. Train until the next target call could eat into the selection reserve.
            reserve = agent.selection_evaluations()  # the most that select_prompt() can spend
            started = time.perf_counter()
            scorer.limit = args.budget - reserve
            try:
                agent.learn(total_timesteps=2**62)
            except BudgetExhausted:
                pass

            # 3. Select on validation (the reserve), then report on test (outside the budget).
            scorer.limit = args.budget
            best = agent.select_prompt()
            test = evaluate_prompts(target, env.unwrapped.task, [best["prompt"]], split="test")[0]["accuracy"]
            curve = [[r["time/target_evaluations"], r["eval/best_val_accuracy"]] for r in agent.logger.history
                     if r.get("eval/best_val_accuracy") is not None]
            results.append({
                "agent": name, "seed": seed, "prompt": best["prompt"], "val_accuracy": best["val_accuracy"],
                "test_accuracy": test, "evaluations": scorer.num_evaluations, "budget": args.budget,
                "wall_time_s": time.perf_counter() - started, "num_updates": agent.num_updates,
                "promotions": agent.promotions, "rollbacks": agent.rollbacks,
                "curve": [*curve, [scorer.num_evaluations, best["val_accuracy"]]],
            })
            print(f"{name:>13} seed {seed}: test {test:.3f}  val {best['val_accuracy']:.3f}  "
                  f"{scorer.num_evaluations}/{args.budget} evaluations  {best['prompt']!r}")

    # 4. One table and one plot for all runs.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = write_report(results, out, args.budget, title=f"{args.env_id}, budget {args.budget}")
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"mean test accuracy over all runs: {np.mean([r['test_accuracy'] for r in results]):.3f}; "
          f"curves in {paths['plot']}")
