"""The agent interface: Stable-Baselines3's ``predict``/``learn``/``save``/``load`` shape.

The loop every agent runs (and a user can write by hand)::

    obs, info = env.reset(seed=0)
    state = None
    while not done_training:
        action, state = agent.predict(obs, state)
        obs, reward, terminated, truncated, info = env.step(action)

``env`` may be one environment or a vector environment (``gym.make_vec`` with
``AutoresetMode.SAME_STEP``); then observations, actions and rewards are batched.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any


class Agent(abc.ABC):
    """Base class of prompt-gym agents.

    Attributes:
        env: The environment the agent trains on (may be ``None`` for an agent loaded only to act).
        num_timesteps: Environment steps taken in ``learn`` so far (summed over vector rows).
    """

    env: Any = None
    num_timesteps: int = 0

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
    def learn(self, total_timesteps: int | None, callback: Any = None, progress_bar: bool = True) -> Agent:
        """Train until ``total_timesteps`` environment steps (counted from the agent's creation); returns self."""

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write everything needed to act again (weights and config) into the folder ``path``."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any) -> Agent:
        """Rebuild an agent saved with :meth:`save`, optionally attached to ``env``."""

    def act(self, observation: Any, deterministic: bool = False) -> Any:
        """Shorthand for ``predict(observation, deterministic=deterministic)[0]`` (text mode, one step)."""
        return self.predict(observation, deterministic=deterministic)[0]


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` (the checks of the configs' ``__post_init__``)."""
    if not condition:
        raise ValueError(message)
