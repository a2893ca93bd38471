"""Remote target vs local scorer: same predictions? how fast? (SST-2, the default model, fp32).

Scores the manual and the empty prompt on every input of SST-2's test split (872 reviews) twice:
with the in-process ``LMScorer`` and with a ``RemoteScorer`` over vLLM's OpenAI server serving the
same converted weights. Prints, per prompt, both accuracies, the share of inputs with the same
predicted class, the largest log-prob difference, examples/s of each, the scoring mode and the
remote usage counts. Both caches are off, so every pair is really scored.

Without ``--target`` the script starts vLLM itself (the CPU recipe of
:mod:`prompt_gym.remote.launch`, from ``.venv-vllm``) and stops it at the end.

Usage:
    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/bench_remote.py
    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/bench_remote.py --target "openai:http://127.0.0.1:8000/v1#smollm2"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from bench_common import machine

from prompt_gym.models import DEFAULT_MODEL, load_causal_lm, resolve_model_path
from prompt_gym.remote.launch import free_port, vllm_server
from prompt_gym.remote.scorer import RemoteScorer
from prompt_gym.remote.spec import parse_remote_target
from prompt_gym.scoring import LMScorer
from prompt_gym.tasks import get_task


def run(scorer, prompts: list[str], inputs: list[str]) -> tuple[np.ndarray, float]:
    """Scores of every prompt on every input, and the seconds it took."""
    start = time.perf_counter()
    scores = scorer.score(prompts, inputs)
    return scores, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="a running server, openai:<base_url>#<model> (default: start vLLM here)")
    parser.add_argument("--vllm-python", default=".venv-vllm/bin/python", help="python of the vLLM environment")
    parser.add_argument("--limit", type=int, help="score only the first N test inputs")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    task = get_task("sst2")
    examples = task.split("test")[: args.limit]
    inputs, labels = [e.input for e in examples], np.array([e.label for e in examples])
    prompts = {"manual": task.manual_prompt, "empty": ""}
    server = None
    if args.target is None:
        server = vllm_server(args.vllm_python, resolve_model_path(DEFAULT_MODEL), free_port(), "runs/bench_remote_vllm.log",
                             nice=15).start()
        args.target = f"openai:{server.base_url}#smollm2"
    try:
        target = dataclasses.replace(parse_remote_target(args.target), cache="off")
        remote = RemoteScorer(target, task.verbalizer, task.template)
        remote_scores, remote_s = run(remote, list(prompts.values()), inputs)
        usage = remote.usage()
    finally:
        if server is not None:
            server.stop()
    model, tokenizer = load_causal_lm(DEFAULT_MODEL, device="cpu")
    local = LMScorer(model, tokenizer, task.verbalizer, task.template, cache_size=0)
    local_scores, local_s = run(local, list(prompts.values()), inputs)

    pairs = len(prompts) * len(inputs)
    print(f"machine: {machine()}")
    print(f"SST-2 test, {len(inputs)} inputs x {len(prompts)} prompts; remote mode {remote.mode.name}")
    report = {"inputs": len(inputs), "mode": remote.mode.name, "usage": usage, "prompts": {},
              "local_examples_per_s": round(pairs / local_s, 2), "remote_examples_per_s": round(pairs / remote_s, 2)}
    for i, (name, prompt) in enumerate(prompts.items()):
        same = float((remote_scores[i].argmax(-1) == local_scores[i].argmax(-1)).mean())
        row = {"prompt": prompt, "local_accuracy": float((local_scores[i].argmax(-1) == labels).mean()),
               "remote_accuracy": float((remote_scores[i].argmax(-1) == labels).mean()), "same_class": same,
               "max_abs_logprob_diff": float(np.abs(remote_scores[i] - local_scores[i]).max())}
        report["prompts"][name] = row
        print(f"{name:<7} local acc {row['local_accuracy']:.4f}  remote acc {row['remote_accuracy']:.4f}  "
              f"same class {same:.4f}  max |diff| {row['max_abs_logprob_diff']:.2e}")
    print(f"examples/s: local {report['local_examples_per_s']}, remote {report['remote_examples_per_s']}")
    print(f"remote usage: {usage}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
