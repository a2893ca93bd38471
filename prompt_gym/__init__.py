"""prompt-gym: prompt tuning as reinforcement learning, in Gymnasium's shape.

Importing the package registers the built-in tasks (:mod:`prompt_gym.toy`,
:mod:`prompt_gym.task_suite`) and the environments (``PromptTune-SST2-v0``, ``PromptTune-Toy-v0``,
...) with Gymnasium. It imports neither torch nor transformers: models load when an environment
or agent is made.

Example:
    >>> import gymnasium as gym
    >>> import prompt_gym
    >>> env = gym.make("PromptTune-Toy-v0")
    >>> obs, info = env.reset(seed=0)
"""

from __future__ import annotations

from gymnasium.envs.registration import registry as _registry

# The task modules and prompt_gym.envs are imported for their side effect: registration.
import prompt_gym.envs  # noqa: F401
import prompt_gym.task_suite  # noqa: F401
import prompt_gym.toy  # noqa: F401
from prompt_gym.tasks import get_task, list_tasks, make_task, register_task

__version__ = "0.1.0"

__all__ = ["ENV_IDS", "__version__", "get_task", "list_tasks", "make_task", "register_task"]

ENV_IDS: tuple[str, ...] = tuple(
    env_id for env_id, spec in _registry.items() if str(spec.entry_point).startswith("prompt_gym.")
)
"""Every environment id this package registers."""
