"""Is there something to learn? The spread of prompts sampled from the untrained agent, and whether the
training reward predicts validation accuracy.

Samples ``--prompts`` prompts from the starting policy (one per fixed validation meta-prompt, as the
agent's ``eval/policy_accuracy`` does), scores each on the whole validation and training splits, and
prints the mean, spread and top decile of validation accuracy (what a policy that concentrates on
its best prompts could reach) and the correlation of training accuracy and gap with validation
accuracy (how well the reward signal points at what is measured). With ``--test`` it also scores
every prompt on the test split and prints how well training and validation accuracy predict test
accuracy (a diagnostic for reporting; nothing is selected on it). Writes every prompt with its
scores to ``--out``.

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/prompt_spread.py --prompts 48 \\
        --max-prompt-tokens 16 --out runs/spread_16.json
    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/prompt_spread.py --data-seed 42 --test \\
        --out runs/spread_42_test.json

``--temperature`` sets the agent's sampling temperature, ``--meta-prompt`` picks one of
:data:`META_PROMPTS` (the wording the agent reads), ``--calibration`` the target's calibration, and
``--summary`` appends one JSON line per run (the settings and the statistics printed) for a sweep's
table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import prompt_gym  # noqa: F401  (registers the environments)
from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.meta_prompts import INSTRUCTION_INDUCTION
from prompt_gym.models import load_causal_lm

META_PROMPTS = {
    "induction": INSTRUCTION_INDUCTION,
    "write": ("Here are {count} examples of a task, each an input and its correct output:\n\n{pairs}\n\n"
              "Write a short instruction that tells someone how to get the output from the input."),
    "describe": "{pairs}\n\nIn one short sentence, describe the task above.",
}
"""Meta-prompt wordings to compare: the default (APE's instruction induction), a direct request to
write an instruction, and a bare one for a small agent."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="PromptTune-SST2-v0")
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--max-prompt-tokens", type=int, default=16)
    parser.add_argument("--num-demos", type=int, default=3)
    parser.add_argument("--data-seed", type=int, default=13)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--test", action="store_true", help="also score every prompt on the test split")
    parser.add_argument("--temperature", type=float, default=1.0, help="the agent's sampling temperature")
    parser.add_argument("--meta-prompt", choices=sorted(META_PROMPTS), default="induction")
    parser.add_argument("--calibration", choices=["batch", "content-free"], default=None)
    parser.add_argument("--summary", type=Path, default=None, help="append the run's statistics as a JSON line")
    parser.add_argument("--out", type=Path, default=Path("runs/prompt_spread.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    env = gym.make(args.env, target=(model, tokenizer), tokenizer=tokenizer, action_mode="text",
                   data_seed=args.data_seed, num_demos=args.num_demos, max_prompt_tokens=args.max_prompt_tokens,
                   meta_prompt_template=META_PROMPTS[args.meta_prompt], calibration=args.calibration)
    config = APPOConfig(seed=args.seed, device="cpu", max_prompt_tokens=args.max_prompt_tokens, temperature=args.temperature)
    agent = APPOAgent(env, config, ModelConfig(), model=model, tokenizer=tokenizer)
    start = time.perf_counter()
    prompts = [text for text, _ in agent.write_prompts(agent.validation_contexts(args.prompts))]
    written = time.perf_counter()
    task, scorer = env.unwrapped.task, env.unwrapped.scorer
    validation = evaluate_prompts(scorer, task, prompts, split="validation")
    train = evaluate_prompts(scorer, task, prompts, split="train")
    scored = time.perf_counter()
    val_acc = np.array([r["accuracy"] for r in validation])
    train_acc, train_gap = np.array([r["accuracy"] for r in train]), np.array([r["gap"] for r in train])
    print(f"{args.prompts} prompts written in {written - start:.0f} s, scored in {scored - written:.0f} s")
    print(f"validation accuracy: mean {val_acc.mean():.3f}, sd {val_acc.std():.3f}, "
          f"top decile {np.quantile(val_acc, 0.9):.3f}, max {val_acc.max():.3f}")
    print(f"training accuracy: mean {train_acc.mean():.3f}, sd {train_acc.std():.3f}")
    print(f"correlation with validation accuracy: training accuracy {np.corrcoef(val_acc, train_acc)[0, 1]:.2f}, "
          f"training gap {np.corrcoef(val_acc, train_gap)[0, 1]:.2f}")
    rows = [{"prompt": p, "val_accuracy": float(v), "train_accuracy": float(a), "train_gap": float(g)}
            for p, v, a, g in zip(prompts, val_acc, train_acc, train_gap, strict=True)]
    if args.test:
        test_acc = np.array([r["accuracy"] for r in evaluate_prompts(scorer, task, prompts, split="test")])
        print(f"test accuracy ({len(task.split('test'))} examples, {time.perf_counter() - scored:.0f} s): "
              f"mean {test_acc.mean():.3f}, sd {test_acc.std():.3f}, max {test_acc.max():.3f}")
        print(f"correlation with test accuracy: training accuracy {np.corrcoef(test_acc, train_acc)[0, 1]:.2f}, "
              f"validation accuracy {np.corrcoef(test_acc, val_acc)[0, 1]:.2f}, "
              f"training + validation {np.corrcoef(test_acc, train_acc + val_acc)[0, 1]:.2f}")
        for row, accuracy in zip(rows, test_acc, strict=True):
            row["test_accuracy"] = float(accuracy)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.summary is not None:
        summary = {
            "env": args.env, "data_seed": args.data_seed, "seed": args.seed, "prompts": args.prompts,
            "max_prompt_tokens": args.max_prompt_tokens, "num_demos": args.num_demos,
            "meta_prompt": args.meta_prompt, "calibration": args.calibration, "temperature": args.temperature,
            "val_mean": float(val_acc.mean()), "val_sd": float(val_acc.std()),
            "val_top_decile": float(np.quantile(val_acc, 0.9)), "val_max": float(val_acc.max()),
            "train_mean": float(train_acc.mean()), "train_val_corr": float(np.corrcoef(val_acc, train_acc)[0, 1]),
            "mean_prompt_words": float(np.mean([len(p.split()) for p in prompts])),
        }
        if args.test:
            summary.update(test_mean=float(test_acc.mean()), test_sd=float(test_acc.std()),
                           train_test_corr=float(np.corrcoef(test_acc, train_acc)[0, 1]))
        with args.summary.open("a", encoding="utf-8") as file:
            file.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
