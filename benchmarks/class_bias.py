"""How much of a prompt's effect on the target is a shift of its class bias?

A 135M target reads a prompt mostly for how it tilts the verbalizer classes (section 2 of "Learning
that shows" in RESULTS.md). This script measures that on one split: for each prompt it scores every
example, then prints the accuracy, the share of examples predicted as each class, and the accuracy
after removing the prompt's class bias: each class's log-probability minus its mean over the split's
examples (a label-free calibration in the manner of Zhao et al.'s contextual calibration, estimated on
the examples themselves). If prompts differ in raw accuracy but hardly in calibrated accuracy, what a
prompt can buy on this target is a bias vector with ``classes - 1`` degrees of freedom, and the best
prompt is the one whose bias happens to fit the split's class balance.

With ``--calibration batch`` or ``content-free`` the target is the env's calibrated one
(:mod:`prompt_gym.calibration`: each prompt's bias estimated on the training inputs or on
content-free inputs, not on the split measured), so every column is measured after that
calibration; run once with and once without it to compare.

Prompts come from ``--prompts-json`` (a ``prompt_spread.py`` output: a list of ``{"prompt": ...}``),
``--prompt`` (repeatable) and the task's empty and manual prompts.

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/class_bias.py --env PromptTune-AGNews-v0 \\
        --data-seed 13 --prompts-json benchmarks/logs/spread-agnews-13.json --limit 24 \\
        --prompt "Settling into one of Flatbush Highlights™ is creating an upcoming player"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import prompt_gym  # noqa: F401  (registers the environments)
from prompt_gym.models import load_causal_lm


def bias_table(log_probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per prompt: raw and bias-removed accuracy, predicted-class shares and per-class recall.

    Args:
        log_probs: ``(prompts, examples, classes)`` class log-probabilities.
        labels: ``(examples,)`` true classes.

    Returns:
        ``accuracy`` and ``calibrated_accuracy`` of shape ``(prompts,)``; ``predicted_share`` and
        ``recall`` of shape ``(prompts, classes)``.
    """
    classes = log_probs.shape[2]
    predicted = log_probs.argmax(axis=2)
    calibrated = (log_probs - log_probs.mean(axis=1, keepdims=True)).argmax(axis=2)
    one_hot = np.eye(classes)[labels]
    predicted_one_hot = predicted[:, :, None] == np.arange(classes)
    return {
        "accuracy": (predicted == labels).mean(axis=1),
        "calibrated_accuracy": (calibrated == labels).mean(axis=1),
        "predicted_share": predicted_one_hot.mean(axis=1),
        "recall": (predicted_one_hot * one_hot).sum(axis=1) / one_hot.sum(axis=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="PromptTune-SST2-v0")
    parser.add_argument("--data-seed", type=int, default=13)
    parser.add_argument("--split", default="validation", choices=["validation", "train"])
    parser.add_argument("--prompts-json", type=Path, help="a prompt_spread.py output")
    parser.add_argument("--limit", type=int, help="use only the first LIMIT prompts of --prompts-json")
    parser.add_argument("--prompt", action="append", default=[], help="another prompt (repeatable)")
    parser.add_argument("--calibration", choices=["batch", "content-free"], help="score with the calibrated target")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write every prompt's numbers to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    env = gym.make(args.env, target=(model, tokenizer), tokenizer=tokenizer, data_seed=args.data_seed,
                   calibration=args.calibration)
    task, scorer = env.unwrapped.task, env.unwrapped.scorer
    sampled = [row["prompt"] for row in json.loads(args.prompts_json.read_text())] if args.prompts_json else []
    named = {"(empty)": "", "(manual)": task.manual_prompt}
    prompts = list(named.values()) + args.prompt + sampled[: args.limit]
    examples = task.split(args.split)
    labels = np.array([example.label for example in examples])
    log_probs = scorer.score(prompts, [example.input for example in examples])
    table = bias_table(log_probs, labels)
    names = list(named) + prompts[len(named):]
    share = np.bincount(labels, minlength=len(task.verbalizer)) / len(labels)
    print(f"{task.name} {args.split} (data seed {args.data_seed}, calibration {args.calibration}), "
          f"{len(examples)} examples, classes "
          f"{list(task.verbalizer)} with shares {np.round(share, 2).tolist()}")
    print("| prompt | acc. | bias removed | predicted share per class | recall per class |")
    print("|---|---|---|---|---|")
    for i, name in enumerate(names):
        print(f"| {name[:60]!r} | {table['accuracy'][i]:.3f} | {table['calibrated_accuracy'][i]:.3f} | "
              f"{np.round(table['predicted_share'][i], 2).tolist()} | {np.round(table['recall'][i], 2).tolist()} |")
    pool = slice(len(named) + len(args.prompt), None)
    if len(table["accuracy"][pool]) > 1:
        raw, fixed = table["accuracy"][pool], table["calibrated_accuracy"][pool]
        print(f"sampled prompts ({len(raw)}): accuracy {raw.mean():.3f} ± {raw.std(ddof=1):.3f}, bias removed "
              f"{fixed.mean():.3f} ± {fixed.std(ddof=1):.3f}, correlation {np.corrcoef(raw, fixed)[0, 1]:.2f}")
    if args.out:
        rows = [{"prompt": prompts[i]} | {key: np.asarray(values[i]).tolist() for key, values in table.items()}
                for i in range(len(prompts))]
        args.out.write_text(json.dumps(rows, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
