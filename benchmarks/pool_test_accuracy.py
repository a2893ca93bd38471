"""How well does validation pick among a run's best prompts? For reporting only: nothing is selected here.

Reads the prompt pool (the prompts kept with their validation accuracy) of a ``prompt-gym compare``
run's newest checkpoint, scores every pooled prompt on the test split, and prints validation next to
test accuracy. The pool is ranked by validation (accuracy, then verbalizer gap); a run reports the
first prompt of its final pool (with ``select_by="gap"`` the one with the widest gap), which the
updates after the newest checkpoint and the final selection can still change: the script says where
the reported prompt stands in the pool it read.
Works for APPO (``agent/pool.json``) and random search (the ``pool`` of ``agent/agent.json``).
The target is the comparison's (``--target``), otherwise the agent model. ``--json FILE`` appends
the scores as one JSON line (``headroom.py`` reads it).

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/pool_test_accuracy.py runs/learn-sst2-elite \\
        --agent random-search --seed 13 --json benchmarks/logs/learn-sst2-pool-test.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from compared_runs import append_record, newest_checkpoint, rebuild_env, run_identity

from prompt_gym import checkpoint as ckpt
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.models import load_causal_lm
from prompt_gym.runs.compare import run_dir


def read_pool(agent_folder: Path) -> tuple[list[dict], str]:
    """The pooled prompts (``prompt``, ``val_accuracy``, ``val_gap``) and the agent's model name."""
    saved = ckpt.load_json(agent_folder / "agent.json")
    pool = saved.get("pool")
    if pool is None:
        pool = ckpt.load_json(agent_folder / "pool.json")
    return pool, saved["model_config"]["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a prompt-gym compare output folder")
    parser.add_argument("--agent", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append the scores to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = run_dir(args.folder, args.agent, args.seed)
    checkpoint = newest_checkpoint(args.folder, args.agent, args.seed)
    pool, model_name = read_pool(checkpoint / "agent")
    model, tokenizer = load_causal_lm(model_name)
    env = rebuild_env(args.folder, args.seed, model, tokenizer)
    prompts_in_pool = [entry["prompt"] for entry in pool]
    tested = evaluate_prompts(env.unwrapped.scorer, env.unwrapped.task, prompts_in_pool, split="test")
    reported = json.loads((run / "result.json").read_text(encoding="utf-8")) if (run / "result.json").is_file() else {}
    rank = (f"#{prompts_in_pool.index(reported['prompt']) + 1} of this pool"
            if reported.get("prompt") in prompts_in_pool else "not in this pool")
    print(f"{args.folder} {args.agent} seed {args.seed}: {len(pool)} pooled prompts at {checkpoint.name} "
          f"(reported: test accuracy {reported.get('test_accuracy', float('nan')):.3f}, after "
          f"{reported.get('num_updates', '?')} updates, {rank})")
    for entry, result in zip(pool, tested, strict=True):
        print(f"  val {entry['val_accuracy']:.3f} (gap {entry['val_gap']:.3f})  test {result['accuracy']:.3f}  "
              f"{entry['prompt']!r}")
    accuracies = [result["accuracy"] for result in tested]
    print(f"  test accuracy of the pool: mean {np.mean(accuracies):.3f}, min {min(accuracies):.3f}, "
          f"max {max(accuracies):.3f}")
    append_record(args.json, run_identity(args.folder, args.agent, args.seed) | {
        "script": "pool_test_accuracy", "checkpoint": checkpoint.name,
        "reported": {key: reported.get(key) for key in ("prompt", "test_accuracy", "num_updates")},
        "prompts": [{"prompt": entry["prompt"], "val_accuracy": entry["val_accuracy"], "val_gap": entry["val_gap"],
                     "test_accuracy": result["accuracy"]} for entry, result in zip(pool, tested, strict=True)],
    })


if __name__ == "__main__":
    main()
