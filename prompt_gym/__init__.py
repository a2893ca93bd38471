"""prompt-gym: prompt tuning as reinforcement learning, in Gymnasium's shape.

Importing the package registers the environments (``PromptTune-SST2-v0``, ``PromptTune-Toy-v0``,
...) with Gymnasium. It imports neither torch nor transformers: models load when an environment
or agent is made.

Example:
    >>> import gymnasium as gym
    >>> import prompt_gym
    >>> env = gym.make("PromptTune-Toy-v0")
    >>> obs, info = env.reset(seed=0)
"""

from __future__ import annotations

__version__ = "0.1.0"

from prompt_gym.tasks import get_task, list_tasks, make_task, register_task  # noqa: E402

__all__ = ["ENV_IDS", "__version__", "get_task", "list_tasks", "make_task", "register_task"]

# Imported last, for its side effect of registering the environments.
from gymnasium.envs.registration import registry as _registry  # noqa: E402

import prompt_gym.envs  # noqa: E402,F401

ENV_IDS: tuple[str, ...] = tuple(
    env_id for env_id, spec in _registry.items() if str(spec.entry_point).startswith("prompt_gym.")
)
"""Every environment id this package registers."""
