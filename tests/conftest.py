"""Shared fixtures: tiny offline language models, the real default model, and the real data.

Tiny models are built in code (byte-level tokenizer + a 2-layer Llama or GPT-2), so unit tests
need no download and run in seconds. Tests marked ``slow`` load the real default model and read
``$PROMPT_GYM_DATA_DIR``; CI runs them all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prompt_gym.testing import build_byte_tokenizer, build_tiny_lm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

@pytest.fixture(scope="session")
def byte_tokenizer():
    return build_byte_tokenizer()


@pytest.fixture(scope="session")
def tiny_lm(byte_tokenizer):
    """``(model, tokenizer)``: a tiny Llama over the byte tokenizer. Do not mutate (session-scoped)."""
    return build_tiny_lm(byte_tokenizer), byte_tokenizer


@pytest.fixture
def fresh_tiny_lm():
    """A tiny Llama that the test may modify (adapters, training)."""
    tokenizer = build_byte_tokenizer()
    return build_tiny_lm(tokenizer), tokenizer


@pytest.fixture
def tiny_model_dir(tmp_path) -> str:
    """A folder holding a tiny Llama and its byte tokenizer (what ``--agent-model`` and ``load_causal_lm`` read)."""
    tokenizer = build_byte_tokenizer()
    folder = tmp_path / "tiny-model"
    build_tiny_lm(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real task data (``$PROMPT_GYM_DATA_DIR``); skips when it is not set."""
    value = os.environ.get("PROMPT_GYM_DATA_DIR")
    if not value or not Path(value).is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must set PROMPT_GYM_DATA_DIR to the data folder; real-data tests may not skip there")
        pytest.skip("PROMPT_GYM_DATA_DIR is not set to the data folder")
    return Path(value)


@pytest.fixture(scope="session")
def real_lm(real_data_dir):
    """The real default model (SmolLM2-135M-Instruct), loaded once per session, fp32 on CPU."""
    from prompt_gym.models import shared_causal_lm

    try:
        return shared_causal_lm("smollm2-135m-instruct", device="cpu")
    except ModuleNotFoundError as error:
        pytest.fail(f"The default model's package is missing: {error}")
