"""Fixtures for the APPO tests: the toy env and tiny LMs over its word vocabulary.

The toy env's word tokenizer has ~60 tokens, so a 2-layer Llama over it acts in the same token
space as the env (token mode) and its keyword target rewards prompts that contain task words.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import prompt_gym  # noqa: F401  (registers the environments)
from prompt_gym.testing import build_tiny_lm
from prompt_gym.toy import WordTokenizer


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny models run ~40x faster on one thread when the CPU is shared (no oversubscription)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def word_lm():
    """``(model, tokenizer)``: a fresh tiny Llama over the toy env's word vocabulary."""
    tokenizer = WordTokenizer()
    return build_tiny_lm(tokenizer), tokenizer


def make_toy_env(**kwargs):
    """A small, fast toy env in token mode (short prompts, few demonstrations)."""
    options = {"max_prompt_tokens": 4, "num_demos": 2, "reward_batch_size": 4} | kwargs
    return gym.make("PromptTune-Toy-v0", **options)


@pytest.fixture
def toy_env():
    return make_toy_env()


@pytest.fixture
def env_factory():
    """``make_toy_env(**kwargs)`` for tests that need other env settings."""
    return make_toy_env


def small_config(**kwargs):
    """An APPO config sized for tests."""
    from prompt_gym.agents.appo.config import APPOConfig

    options = {"seed": 0, "learning_rate": 1e-2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 2,
               "anchor_check_interval": 1000, "anchor_samples": 1, "final_samples": 1} | kwargs
    return APPOConfig(**options)


def lora_config(**kwargs):
    from prompt_gym.agents.appo.config import ModelConfig

    return ModelConfig(**({"lora_target_modules": ["q_proj", "v_proj", "lm_head"]} | kwargs))


@pytest.fixture
def make_agent(word_lm, toy_env):
    """Builds an APPO agent on the toy env with a fresh tiny LM: ``make_agent(**config_overrides)``."""
    from prompt_gym.agents.appo.agent import APPOAgent

    def build(env=None, **kwargs):
        model, tokenizer = word_lm
        return APPOAgent(env or toy_env, small_config(**kwargs), lora_config(), model=model, tokenizer=tokenizer)

    return build
