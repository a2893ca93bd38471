"""Shared pieces of the speed and memory benchmarks: prompts, machine load, timing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

INSTRUCTIONS = (
    "Classify the sentiment of the movie review as positive or negative.",
    "Is the following movie review positive or negative?",
    "Read the review and say whether the critic liked the film.",
    "Decide if this review expresses a positive or a negative opinion about the movie.",
    "Sentiment analysis: answer positive or negative.",
    "You are a film critic. Judge the tone of the review below and answer with one word.",
    "Tell me whether the following sentence from a review is positive or negative in sentiment.",
    "Label the review.",
)
STYLES = (
    "", "Think about the words the reviewer uses. ", "Answer with a single word. ",
    "Be careful: some reviews are sarcastic. ", "Consider the overall tone. ", "Ignore the plot summary. ",
    "Focus on adjectives. ", "Reviews can be short. ",
)


def prompts(count: int) -> list[str]:
    """``count`` distinct, realistic prompts (8 instructions x 8 style hints, 10 to 40 tokens)."""
    if count > len(INSTRUCTIONS) * len(STYLES):
        raise ValueError(f"At most {len(INSTRUCTIONS) * len(STYLES)} prompts.")
    return [f"{STYLES[i // len(INSTRUCTIONS)]}{INSTRUCTIONS[i % len(INSTRUCTIONS)]}" for i in range(count)]


def machine() -> str:
    """One line on the machine's state: cores, torch threads, load average (other processes), the GPU if any."""
    import torch

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    threads = torch.get_num_threads()
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()} CPUs, torch {torch.__version__} with {threads} threads, load average {load}{gpu}"


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run ``fn(*args)`` once; return its result and the wall-clock seconds it took."""
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def matmul_peak_gflops(size: int = 2048, repeats: int = 5, device: str = "cpu", dtype: Any = None) -> float:
    """Best GFLOP/s of a ``size x size`` matrix multiply (on CPU: the current torch threads; fp32 by default)."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def multiply() -> None:
        torch.mm(a, b)
        if a.is_cuda:
            torch.cuda.synchronize()

    multiply()  # warm-up
    best = min(timed(multiply)[1] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def non_embedding_parameters(model: Any) -> int:
    """Parameters outside the input embedding and the LM head (the scorer runs the head at one position)."""
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
