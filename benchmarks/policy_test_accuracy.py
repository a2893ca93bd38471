"""Does the policy's own accuracy gain carry over to test? For reporting only: nothing is selected here.

Rebuilds an APPO run of a ``prompt-gym compare`` folder, samples ``--prompts`` prompts from the
starting policy and from the policy of the run's newest checkpoint (one per fixed validation
meta-prompt, as ``eval/policy_accuracy`` does), and scores each on the validation and the test split.
Prints the mean accuracy of both. ``--decoding greedy`` writes each policy's most likely prompt per
meta-prompt instead of a sample (``both``: both kinds). The target is the comparison's
(``--target``), otherwise the agent model. ``--json FILE`` appends the prompts and their scores as
one JSON line (``headroom.py`` reads it): keys ``starting``/``trained`` for samples,
``starting_greedy``/``trained_greedy`` for greedy prompts.

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
    parser.add_argument("--decoding", choices=("sampled", "greedy", "both"), default="sampled",
                        help="sample the prompts at the run's temperature, or write the most likely one")
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
    kinds = {"sampled": [False], "greedy": [True], "both": [False, True]}[args.decoding]
    start = {greedy: [text for text, _ in agent.write_prompts(contexts, deterministic=greedy)] for greedy in kinds}
    load_weights(agent, path / "agent")
    end = {greedy: [text for text, _ in agent.write_prompts(contexts, deterministic=greedy)] for greedy in kinds}
    task, scorer = env.unwrapped.task, env.unwrapped.scorer
    record = run_identity(args.folder, args.agent, args.seed) | {"script": "policy_test_accuracy",
                                                                   "checkpoint": path.name}
    print(f"{args.folder} {args.agent} seed {args.seed}:")
    for greedy in kinds:
        suffix, kind = ("_greedy", "greedy prompts") if greedy else ("", "sampled prompts")
        for key, name, prompts in (("starting", "starting policy", start[greedy]),
                                   ("trained", f"policy at {path.name}", end[greedy])):
            validation = [r["accuracy"] for r in evaluate_prompts(scorer, task, prompts, split="validation")]
            test = [r["accuracy"] for r in evaluate_prompts(scorer, task, prompts, split="test")]
            print(f"{name}, {len(prompts)} {kind}: mean validation accuracy {np.mean(validation):.3f}, "
                  f"mean test accuracy {np.mean(test):.3f} ({', '.join(f'{a:.3f}' for a in test)})")
            record[key + suffix] = [{"prompt": text, "validation_accuracy": val, "test_accuracy": accuracy}
                                    for text, val, accuracy in zip(prompts, validation, test, strict=True)]
    append_record(args.json, record)


if __name__ == "__main__":
    main()
