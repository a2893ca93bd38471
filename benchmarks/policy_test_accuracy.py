"""Does the policy's own accuracy gain carry over to test? For reporting only: nothing is selected here.

Rebuilds an APPO run of a ``prompt-gym compare`` folder, samples ``--prompts`` prompts from the
starting policy and from the policy of the run's newest checkpoint (one per fixed validation
meta-prompt, as ``eval/policy_accuracy`` does), and scores each on the test split. Prints the mean
test accuracy of both. The target is the comparison's (``--target``), otherwise the agent model.
``--json FILE`` appends the prompts and their scores as one JSON line (``headroom.py`` reads it).

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/policy_test_accuracy.py runs/learn-sst2-elite \\
        --agent appo --seed 21 --prompts 4 --json benchmarks/logs/learn-sst2-policy-test.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from compared_runs import append_record, newest_checkpoint, rebuild_env, run_identity

from prompt_gym import checkpoint as ckpt
from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.agents.appo.persistence import load_weights
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.models import load_causal_lm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a prompt-gym compare output folder")
    parser.add_argument("--agent", default="appo")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append the prompts and their scores to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = newest_checkpoint(args.folder, args.agent, args.seed)
    saved = ckpt.load_json(path / "agent" / "agent.json")
    model, tokenizer = load_causal_lm(saved["model_config"]["model"])
    env = rebuild_env(args.folder, args.seed, model, tokenizer)
    agent = APPOAgent(env, APPOConfig(**saved["config"]), ModelConfig(**saved["model_config"]), model=model,
                      tokenizer=tokenizer)
    contexts = agent.validation_contexts(args.prompts)
    start = [text for text, _ in agent.write_prompts(contexts)]
    load_weights(agent, path / "agent")
    end = [text for text, _ in agent.write_prompts(contexts)]
    task, scorer = env.unwrapped.task, env.unwrapped.scorer
    record = run_identity(args.folder, args.agent, args.seed) | {"script": "policy_test_accuracy",
                                                                   "checkpoint": path.name}
    for key, name, prompts in (("starting", "starting policy", start), ("trained", f"policy at {path.name}", end)):
        results = evaluate_prompts(scorer, task, prompts, split="test")
        accuracies = [r["accuracy"] for r in results]
        print(f"{name}: mean test accuracy {np.mean(accuracies):.3f} over {len(prompts)} sampled prompts "
              f"({', '.join(f'{a:.3f}' for a in accuracies)})")
        record[key] = [{"prompt": text, "test_accuracy": accuracy}
                       for text, accuracy in zip(prompts, accuracies, strict=True)]
    append_record(args.json, record)


if __name__ == "__main__":
    main()
