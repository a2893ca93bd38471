"""The agent interface: Stable-Baselines3's ``predict``/``learn``/``save``/``load`` shape, plus what a run needs.

The loop every agent runs (and a user can write by hand)::

    obs, info = env.reset(seed=0)
    state = None
    while not done_training:
        action, state = agent.predict(obs, state)
        obs, reward, terminated, truncated, info = env.step(action)

``env`` may be one environment or a vector environment (``gym.make_vec`` with
``AutoresetMode.SAME_STEP``); then observations, actions and rewards are batched.

A run (``prompt-gym train`` / ``compare``) relies on this class and nothing else: it calls
:meth:`Agent.learn`, reserves :meth:`Agent.selection_evaluations` of its budget for
:meth:`Agent.select_prompt`, reads :attr:`Agent.logger`, the counters, and checkpoints the agent
when :attr:`Agent.supports_checkpoints`.
"""

from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any, ClassVar

from prompt_gym.logging import Logger


class Agent(abc.ABC):
    """Base class of prompt-gym agents.

    Attributes:
        env: The environment the agent trains on (may be ``None`` for an agent loaded only to act).
        logger: Where the agent's metrics go (``None``: it records none).
        num_timesteps: Environment steps taken in ``learn`` so far (summed over vector rows).
        num_updates: Learning steps done (what the agent calls an update: a PPO update, a batch...).
        promotions: Anchor promotions so far (APPO); ``None`` for agents without an anchor.
        rollbacks: Anchor rollbacks so far (APPO); ``None`` for agents without an anchor.
        wall_time_s: Training wall time before the current ``learn`` call (restored on resume).
        supports_checkpoints: Whether :meth:`save_checkpoint` / :meth:`load_checkpoint` are implemented.
    """

    env: Any = None
    logger: Logger | None = None
    num_timesteps: int = 0
    num_updates: int = 0
    promotions: int | None = None
    rollbacks: int | None = None
    wall_time_s: float = 0.0
    supports_checkpoints: ClassVar[bool] = False
    _learn_started: float | None = None

    @abc.abstractmethod
    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]:
        """Choose the action for ``observation``.

        Args:
            observation: One observation, or a batch from a vector env.
            state: What the previous call returned (the KV cache in token mode); ``None`` at first.
            episode_start: Flags (one per row) that mark the first step of an episode.
            deterministic: Greedy instead of sampled actions.

        Returns:
            ``(action, state)``: the action (batched like ``observation``) and the state to pass next time.
        """

    @abc.abstractmethod
    def learn(
        self, total_timesteps: int | None = None, total_updates: int | None = None, callback: Any = None,
        progress_bar: bool = False,
    ) -> Agent:
        """Train until ``total_timesteps`` env steps or ``total_updates`` updates (totals from the agent's creation).

        Args:
            total_timesteps: Stop once :attr:`num_timesteps` reaches it (``None``: no step limit).
            total_updates: Stop once :attr:`num_updates` reaches it (``None``: no update limit).
            callback: A :class:`~prompt_gym.callbacks.Callback`, a list of them, or ``None``.
            progress_bar: Show a progress bar over updates.

        Returns:
            ``self``.
        """

    @abc.abstractmethod
    def select_prompt(self) -> dict[str, Any]:
        """The agent's best prompt, chosen on the validation split only.

        Returns:
            At least ``{"prompt": str, "val_accuracy": float}``.
        """

    def selection_evaluations(self) -> int:
        """Most target evaluations :meth:`select_prompt` can spend (a run reserves this much of its budget)."""
        return 0

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write everything needed to act again (weights and config) into the folder ``path``."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any) -> Agent:
        """Rebuild an agent saved with :meth:`save`, optionally attached to ``env``."""

    def save_checkpoint(self, root: str | Path) -> Path:
        """Write a resumable checkpoint under ``root``; returns its folder (see :attr:`supports_checkpoints`)."""
        raise NotImplementedError(f"{type(self).__name__} does not write checkpoints.")

    def load_checkpoint(self, root: str | Path) -> Path:
        """Restore the newest verified checkpoint under ``root`` (or that step folder); returns its folder."""
        raise NotImplementedError(f"{type(self).__name__} does not read checkpoints.")

    def act(self, observation: Any, deterministic: bool = False) -> Any:
        """Shorthand for ``predict(observation, deterministic=deterministic)[0]`` (text mode, one step)."""
        return self.predict(observation, deterministic=deterministic)[0]

    def start_clock(self) -> None:
        """Start timing a ``learn`` call; :meth:`elapsed` adds it to the time of earlier calls and runs."""
        self.wall_time_s = self.elapsed()
        self._learn_started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of training wall time so far (earlier ``learn`` calls and resumed runs included)."""
        if self._learn_started is None:
            return self.wall_time_s
        return self.wall_time_s + time.perf_counter() - self._learn_started
