"""Memory: agent (policy), anchor and target on one set of base weights vs three separate copies.

Each way runs in its own fresh subprocess, which loads the default model, builds the roles, uses
each once (a policy forward + backward through the LoRA adapter ``default``, an anchor forward
with the adapter ``anchor``, a target scoring call with the adapters disabled), and reports its
peak RSS. "shared" is how prompt-gym holds them: one base model wrapped by ``LoRAPolicy``
(adapters ``default`` and ``anchor``), with the ``LMScorer`` target on the same object. "three
copies" is the reference way: a policy model, an anchor model and a target model, each loaded on
its own. The baseline row is a process that only imports the libraries.

Usage:
    PROMPT_GYM_DATA_DIR=/path/to/data python benchmarks/bench_memory.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

WAYS = ("baseline", "shared", "three copies")


def peak_rss_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(way: str) -> dict[str, float]:
    """Build and use the roles the given way (in this process); return the peak RSS in MiB."""
    import torch

    from prompt_gym.agents.configs import ModelConfig
    from prompt_gym.agents.lora_policy import ANCHOR, LoRAPolicy
    from prompt_gym.models import DEFAULT_MODEL, load_causal_lm
    from prompt_gym.scoring import LMScorer
    from prompt_gym.tasks import get_task

    task = get_task("sst2")
    if way == "baseline":
        return {"peak_rss_mib": peak_rss_mib()}
    config = ModelConfig(lora_dropout=0.0)
    model, tokenizer = load_causal_lm(DEFAULT_MODEL, device="cpu")
    policy = LoRAPolicy(model, config)
    if way == "shared":
        anchor, target = policy, model  # the same base weights, adapters switched
    else:
        anchor = LoRAPolicy(load_causal_lm(DEFAULT_MODEL, device="cpu")[0], config)
        target = load_causal_lm(DEFAULT_MODEL, device="cpu")[0]
    ids = torch.tensor([tokenizer.encode(task.manual_prompt)] * 4)
    mask = torch.ones_like(ids)
    logits, values, _ = policy(ids, mask, keep=ids.shape[1])
    (logits.logsumexp(-1).mean() + values.mean()).backward()
    with torch.no_grad(), anchor.use_adapter(ANCHOR):
        anchor(ids, mask, keep=1)
    scorer = LMScorer(target, tokenizer, task.verbalizer, task.template, cache_size=0)
    scorer.score([task.manual_prompt], [example.input for example in task.split("train")[:16]])
    return {"peak_rss_mib": peak_rss_mib()}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2])))
        return
    results = {}
    for way in WAYS:
        command = [sys.executable, __file__, "--child", way]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[way] = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mib"]
    base = results["baseline"]
    print("| way | peak RSS (MiB) | above the import baseline (MiB) |")
    print("|---|---|---|")
    for way, value in results.items():
        print(f"| {way} | {value:.0f} | {value - base:.0f} |")
    shared, copies = results["shared"], results["three copies"]
    print(f"# shared / three copies: {shared / copies:.2f} of the peak RSS, "
          f"{(shared - base) / (copies - base):.2f} above the baseline")


if __name__ == "__main__":
    main()
