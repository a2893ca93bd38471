"""Target scoring speed: our LMScorer vs the reference way, on the default model and SST-2.

The reference way is the StablePrompt public code's: one prompt at a time, batches of 4 inputs,
full-vocabulary logits at every position, the last position read out. Ours is ``LMScorer`` with
its defaults (each prompt's shared prefix run once, in one pass per block of 32 prompts, then the
suffixes in length-sorted chunks of 32 rows across prompts; LM head at the last position only),
and "plain rows" the same with ``prefix_cache=False`` (whole rows in length-sorted chunks of 32);
the score cache is off in both, so every pair really runs the model. All score the same
``prompts x 16`` SST-2 training inputs in one run; the script prints examples/s, the ratios,
prediction agreement, and our achieved GFLOP/s against a matmul peak measured in the same run.

Usage:
    PROMPT_GYM_DATA_DIR=/path/to/data python benchmarks/bench_scoring.py [--quick]
    PROMPT_GYM_DATA_DIR=/path/to/data python benchmarks/bench_scoring.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_common import machine, matmul_peak_gflops, non_embedding_parameters, prompts, timed

from prompt_gym.models import DEFAULT_MODEL, load_causal_lm
from prompt_gym.scoring import LMScorer, render
from prompt_gym.tasks import get_task


def reference_scores(model, tokenizer, verbalizer_ids, template, prompt_list, inputs, batch_size=4):
    """One prompt at a time, batches of 4, full logits at every position; returns (log-probs, real tokens)."""
    import torch

    tokenizer.padding_side = "left"
    out, tokens = np.empty((len(prompt_list), len(inputs), len(verbalizer_ids)), dtype=np.float32), 0
    with torch.inference_mode():
        for i, prompt in enumerate(prompt_list):
            for start in range(0, len(inputs), batch_size):
                texts = [render(template, prompt, x) for x in inputs[start : start + batch_size]]
                batch = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
                logits = model(**batch).logits  # (batch, length, vocab): every position
                tokens += int(batch["attention_mask"].sum())
                class_logits = logits[:, -1, verbalizer_ids].float()
                out[i, start : start + batch_size] = torch.log_softmax(class_logits, -1).cpu().numpy()
    return out, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (CUDA default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--examples", type=int, default=16, help="inputs per prompt")
    parser.add_argument("--quick", action="store_true", help="only 16 prompts x the examples")
    args = parser.parse_args()

    model, tokenizer = load_causal_lm(args.model, dtype=args.dtype, device=args.device)
    task = get_task("sst2")
    inputs = [example.input for example in task.split("train")[: args.examples]]
    ours = LMScorer(model, tokenizer, task.verbalizer, task.template, cache_size=0)
    plain = LMScorer(model, tokenizer, task.verbalizer, task.template, cache_size=0, prefix_cache=False)
    params = non_embedding_parameters(model)
    print(f"# {machine()}")
    print(f"# model {args.model}: {params / 1e6:.1f} M non-embedding parameters, {model.dtype}, "
          f"{model.device}, {model.config._attn_implementation} attention")
    if model.device.type == "cpu":
        peak = matmul_peak_gflops()
        print(f"# matmul peak (fp32 2048^3, same threads): {peak:.1f} GFLOP/s")
    else:
        peak = matmul_peak_gflops(8192, device=model.device.type, dtype=model.dtype)
        print(f"# matmul peak ({model.dtype} 8192^3, {model.device}): {peak:.1f} GFLOP/s")
    ours.score(prompts(2), inputs[:4])  # warm-up
    plain.score(prompts(2), inputs[:4])
    counts = (16,) if args.quick else (4, 16, 64)
    scorers = [("ours, plain rows (prefix_cache=False)", plain), ("ours (default: shared prefixes)", ours)]
    print("| prompts x examples | way | s | examples/s | vs reference | agreement | GFLOP/s | of peak |",
          flush=True)
    print("|---|---|---|---|---|---|---|---|")
    for count in counts:
        prompt_list, rows = prompts(count), count * len(inputs)
        (expected, ref_tokens), ref_time = timed(
            reference_scores, model, tokenizer, ours.verbalizer_ids, task.template, prompt_list, inputs)
        ref_gflops = 2 * params * ref_tokens / ref_time / 1e9
        print(f"| {count} x {len(inputs)} | reference (batch 4, full logits) | {ref_time:.2f} | "
              f"{rows / ref_time:.1f} | 1.00 | 1.000 | {ref_gflops:.1f} | {ref_gflops / peak:.2f} |",
              flush=True)
        for name, scorer in scorers:
            scorer.num_forward_tokens = 0
            got, seconds = timed(scorer.score, prompt_list, inputs)
            gflops = 2 * params * scorer.num_forward_tokens / seconds / 1e9
            agreement = float((got.argmax(-1) == expected.argmax(-1)).mean())
            print(f"| {count} x {len(inputs)} | {name} | {seconds:.2f} | {rows / seconds:.1f} | "
                  f"{ref_time / seconds:.2f} | {agreement:.3f} | {gflops:.1f} | {gflops / peak:.2f} |",
                  flush=True)
    print(f"# end: {machine()}")


if __name__ == "__main__":
    main()
