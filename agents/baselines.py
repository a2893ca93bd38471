"""Non-learning baselines: a fixed (manual) prompt, and random search over prompts the untrained LLM writes.

Both implement the :class:`~prompt_gym.agents.base.Agent` interface, so they run in the same loop
and the same comparison as the learning agents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prompt_gym import checkpoint as ckpt
from prompt_gym.agents.configs import LLMAgentConfig, ModelConfig, SelectionConfig, ValidationConfig, require
from prompt_gym.agents.llm import LLMPromptAgent
from prompt_gym.agents.pool import PromptPool
from prompt_gym.agents.rollout import EnvAdapter, is_batched, split_observation
from prompt_gym.agents.selection import SelectingAgent, best_unvalidated, mean_accuracy
from prompt_gym.callbacks import Callback, as_callback
from prompt_gym.logging import Logger


class ManualAgent(SelectingAgent):
    """Always writes the same prompt: the task's hand-written one, or ``prompt``.

    Args:
        env: A prompt-gym env (token or text mode, single or vector).
        prompt: The prompt; ``None`` takes the task's ``manual_prompt``.
        logger: Where the validation result goes; in memory by default.

    In token mode ``predict`` emits the prompt's tokens one per step, then EOS.
    """

    name = "manual"
    log_selection = True

    def __init__(self, env: Any = None, prompt: str | None = None, logger: Logger | None = None) -> None:
        self.env = EnvAdapter(env) if env is not None else None
        if prompt is None:
            if self.env is None:
                raise ValueError("Give the prompt, or an env whose task has a manual prompt.")
            prompt = self.env.attr("task").manual_prompt
        self.prompt = prompt
        self.config = SelectionConfig(pool_size=1, final_samples=0)
        self.logger = logger or Logger()
        self.pool = PromptPool(self.config.pool_size)

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]:
        """The prompt (text mode), or its next token (token mode).

        In token mode ``state`` is each row's position in the prompt (pass ``None`` or set
        ``episode_start`` at the start of an episode); after the prompt comes EOS.
        """
        rows = split_observation(observation)
        batched = is_batched(observation)
        if not isinstance(rows[0], dict):
            return (tuple(self.prompt for _ in rows) if batched else self.prompt), None
        tokenizer = self.env.attr("tokenizer")
        ids = [*tokenizer.encode(self.prompt, add_special_tokens=False), tokenizer.eos_token_id]
        positions = np.zeros(len(rows), dtype=np.int64) if state is None else np.array(state, dtype=np.int64)
        if episode_start is not None:
            positions[np.atleast_1d(episode_start).astype(bool)] = 0
        tokens = np.array([ids[min(p, len(ids) - 1)] for p in positions], dtype=np.int64)
        return (tokens if batched else int(tokens[0])), positions + 1

    def learn(
        self, total_timesteps: int | None = None, total_updates: int | None = None, callback: Any = None,
        progress_bar: bool = False,
    ) -> ManualAgent:
        """Nothing to learn: callbacks get ``on_training_start`` and ``on_training_end``; returns self."""
        callback = as_callback(callback)
        callback.init_callback(self)
        callback.on_training_start(locals())
        callback.on_training_end()
        return self

    def selection_candidates(self) -> list[str]:
        """The prompt itself (scored on the validation split by ``select_prompt``)."""
        return [self.prompt]

    def save(self, path: str | Path) -> None:
        """Write ``agent.json`` (the prompt) into the folder ``path``."""
        Path(path).mkdir(parents=True, exist_ok=True)
        ckpt.save_json(Path(path) / "agent.json", {"agent": self.name, "prompt": self.prompt})

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any) -> ManualAgent:
        """Rebuild a saved manual agent."""
        return cls(env, prompt=ckpt.load_json(Path(path) / "agent.json")["prompt"], **kwargs)


@dataclass
class RandomSearchConfig(LLMAgentConfig, ValidationConfig):
    """Random search (APE-style): sample prompts from the untrained agent LLM, keep the best.

    Each batch writes ``batch_size`` prompts, each played as one env episode (its reward is the
    cheap screening score on the episode's reward batch). Every ``eval_interval`` batches the
    ``eval_samples`` best-rewarded prompts of the batches since the last check are validated;
    :meth:`RandomSearchAgent.select_prompt` validates the ``1 + final_samples`` best-rewarded
    prompts not validated yet, and the pool's best on validation wins.

    Attributes:
        batch_size: Prompts written per batch (one batched generation).
    """

    batch_size: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}.")


class RandomSearchAgent(LLMPromptAgent):
    """Samples prompts from the untrained LLM for the whole budget; selects on validation (no learning).

    Args:
        env: A prompt-gym env (single, token or text mode).
        config: Search settings.
        model_config: The agent LLM (LoRA settings unused: nothing is trained).
        model: A loaded causal LM without adapters; ``tokenizer`` with it.
        tokenizer: The model's tokenizer.
        logger: Where metrics go.

    Attributes:
        candidates: Every prompt played so far with its episode reward, ``(reward, prompt)``.
    """

    name = "random-search"
    config_class = RandomSearchConfig
    trains_policy = False
    log_selection = True

    def __init__(
        self, env: Any = None, config: RandomSearchConfig | None = None, model_config: ModelConfig | None = None,
        model: Any = None, tokenizer: Any = None, logger: Logger | None = None,
    ) -> None:
        super().__init__(env, config or RandomSearchConfig(), model_config, model, tokenizer, logger)
        self.candidates: list[tuple[float, str]] = []
        self._validated: set[str] = set()
        self._since_check: list[tuple[float, str]] = []

    def learning_step(self, callback: Callback) -> dict[str, float]:
        """Write and play one batch of prompts; validate the best-rewarded ones when due."""
        batch = self.play_group(self.config.batch_size, same_meta_prompt=False)
        callback.on_rollout_end()
        scored = [(t.reward, self._decode(t.actions)) for t in batch]
        self.candidates += scored
        self._since_check += scored
        self.num_updates += 1
        stats = {"rollout/reward": float(np.mean([r for r, _ in scored]))}
        if self.num_updates % self.config.eval_interval == 0:
            results = self.validate(best_unvalidated(self._since_check, self.config.eval_samples, self._validated))
            self._since_check = []
            self.log_validation(stats | mean_accuracy(results))
        return stats

    def selection_candidates(self) -> list[str]:
        """The ``1 + final_samples`` best-rewarded prompts not validated yet."""
        return best_unvalidated(self.candidates, 1 + self.config.final_samples, self._validated)

    def saved_state(self) -> dict[str, Any]:
        """The candidates and the prompts validated so far (in ``agent.json``)."""
        return {"candidates": self.candidates, "validated": sorted(self._validated)}

    def restore_saved_state(self, meta: dict[str, Any]) -> None:
        """Restore the candidates and the validated prompts."""
        self.candidates = [(float(r), str(p)) for r, p in meta["candidates"]]
        self._validated = set(meta["validated"])

    def checkpoint_state(self) -> dict[str, Any]:
        """The prompts played since the last check and whether the first reset is still due (in ``state.json``)."""
        return {"since_check": self._since_check, "first_reset": self._first_reset}

    def restore_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`checkpoint_state` wrote."""
        self._since_check = [(float(r), str(p)) for r, p in state["since_check"]]
        self._first_reset = bool(state["first_reset"])
