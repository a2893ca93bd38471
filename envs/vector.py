"""The native vector environment: N prompt-tuning episodes in lockstep, one batched target call per step."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from prompt_gym.checks import check_int
from prompt_gym.envs.prompt_tune import PromptTuneEnv
from prompt_gym.rewards import PromptJudge, RewardFunction
from prompt_gym.tasks import Task


class PromptTuneVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~prompt_gym.envs.prompt_tune.PromptTuneEnv` sharing one target.

    ## Description

    Runs ``num_envs`` prompt-tuning episodes in lockstep. The sub-environments share one tokenizer,
    one task and one scorer (one loaded target model), and every prompt that finishes in a step is
    scored in **one** batched target call (``num_finished x reward_batch_size`` rows), instead of
    one call per environment. Made by ``gym.make_vec(env_id, num_envs=N)`` (the registered
    ``vector_entry_point``) or directly.

    Each sub-environment behaves exactly like a single ``PromptTuneEnv`` with the same arguments
    and seed: sub-environment ``i`` of ``reset(seed=s)`` is ``PromptTuneEnv.reset(seed=s + i)``
    (Gymnasium's convention), and it is reset without a seed when it autoresets.

    ## Autoreset

    ``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``. When a sub-environment's
    prompt is finished, the step that finishes it returns its reward and ``terminated=True``, and
    also already resets it: the returned observation is the first one of the next episode, and
    the last observation and info of the finished episode are in ``info["final_obs"]`` and
    ``info["final_info"]`` (with the masks ``info["_final_obs"]``/``info["_final_info"]``). No
    step is wasted on a reset, which matters for text mode, where every episode is one step.

    ## Action Space

    ``batch_space`` of the single action space: ``MultiDiscrete([V] * N)`` token ids in token mode,
    a ``Tuple`` of ``N`` ``Text`` prompts in text mode (any sequence of ``N`` strings is accepted).

    ## Observation Space

    ``batch_space`` of the single observation space: a ``Dict`` of ``(N, L)`` int64 arrays
    (``input_ids``, ``attention_mask``) in token mode, a tuple of ``N`` meta-prompt strings in text
    mode.

    ## Rewards

    As the single environment (0 until a prompt is finished). With
    ``reward_normalization="zscore"`` the rewards of the prompts finished in one step are
    normalised to zero mean and unit variance across those prompts (a step where one prompt
    finishes gives it 0); the raw reward is in ``info["raw_reward"]``.

    ## Episode End

    As the single environment: ``terminated`` at EOS or ``max_prompt_tokens`` (token mode), after
    one step (text mode); ``truncated`` is always False.

    ## Info

    The single environment's keys, batched by Gymnasium's rule (``info[key][i]`` with the mask
    ``info["_" + key]``), plus ``final_obs`` and ``final_info`` on the steps that finish prompts.

    ## Attributes agents may read

    ``task``, ``tokenizer``, ``scorer`` (shared by every sub-environment) and
    ``evaluations_per_episode`` directly; the rest of the single environment's list ("Attributes
    agents may read" in :class:`~prompt_gym.envs.prompt_tune.PromptTuneEnv`) through
    ``get_attr(name)``. Each step drives the sub-environments only through their public
    ``check_action``, ``apply``, ``reward_examples`` and ``observation``.

    ## Arguments

    | argument | default | meaning |
    |---|---|---|
    | ``num_envs`` | 1 | number of episodes run in lockstep |
    | ``task`` | ``"sst2"`` | as ``PromptTuneEnv`` (loaded once) |
    | ``reward`` / ``reward_kwargs`` | ``"stableprompt"`` | as ``PromptTuneEnv`` |
    | ``reward_normalization`` | ``None`` | ``"zscore"``: normalise the rewards of one step |
    | ``render_mode`` | ``None`` | ``"ansi"``: ``render()`` returns one string per episode |
    | ``**env_kwargs`` | | other ``PromptTuneEnv`` arguments (``action_mode``, ``target``, ``scorer``...) |

    ## Example

    >>> import gymnasium as gym
    >>> import prompt_gym
    >>> envs = gym.make_vec("PromptTune-Toy-v0", num_envs=4, action_mode="text")
    >>> obs, info = envs.reset(seed=0)
    >>> obs, rewards, terminated, truncated, info = envs.step(["Classify the review sentiment"] * 4)
    >>> bool(terminated.all()), info["final_info"]["accuracy"].shape
    (True, (4,))

    ## Version History

    * v0: initial release.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}
    env_class: type[PromptTuneEnv] = PromptTuneEnv
    """The sub-environment class (a subclass sets its own, e.g. test-time editing)."""

    def __init__(
        self,
        num_envs: int = 1,
        task: str | Task = "sst2",
        *,
        reward: str | RewardFunction = "stableprompt",
        reward_kwargs: dict[str, Any] | None = None,
        reward_normalization: str | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        check_int("num_envs", num_envs, minimum=1)
        common = {"reward": reward, "reward_kwargs": reward_kwargs, "render_mode": render_mode}
        first = self.env_class(task, **common, **env_kwargs)
        shared = {**env_kwargs, "tokenizer": first.tokenizer, "scorer": first.scorer}
        self.envs = [first] + [self.env_class(first.task, **common, **shared) for _ in range(num_envs - 1)]
        self.judge = PromptJudge(first.scorer, reward, reward_kwargs, normalize=reward_normalization)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.task, self.tokenizer, self.scorer = first.task, first.tokenizer, first.scorer
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, num_envs)
        self.action_space = batch_space(first.action_space, num_envs)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the sub-environments (all, or those in ``options["reset_mask"]``).

        Args:
            seed: ``None`` (fresh entropy), an int ``s`` (sub-environment ``i`` gets ``s + i``) or
                one seed per sub-environment.
            options: Passed to each sub-environment; ``"reset_mask"`` (a boolean array of shape
                ``(num_envs,)``) resets only the marked ones.
        """
        if seed is None or isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        elif isinstance(seed, (list, tuple, np.ndarray)):
            seeds = list(seed)
        else:
            raise TypeError(f"seed must be None, an int or one seed per sub-environment, got {seed!r}.")
        if len(seeds) != self.num_envs:
            raise ValueError(f"Pass one seed per sub-environment ({self.num_envs}), got {len(seeds)}.")
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be None or a dict, got {options!r}.")
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)))
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},).")
        infos: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            if mask[i]:
                infos = self._add_info(infos, env.reset(seed=seeds[i], options=options)[1], i)
        return self._observations(), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply one action per sub-environment; score every finished prompt in one target call.

        Every action is checked before any sub-environment changes: a bad action raises and leaves
        all of them as they were (the step is atomic).
        """
        if isinstance(actions, (str, bytes)) or np.ndim(actions) == 0 and not isinstance(actions, (list, tuple)):
            raise TypeError(f"Pass one action per sub-environment ({self.num_envs}) as a sequence, got {actions!r}.")
        actions = list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise ValueError(f"Expected {self.num_envs} actions (one per sub-env), got {len(actions)}.")
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            try:
                env.check_action(action)
            except (TypeError, ValueError, RuntimeError) as error:
                raise type(error)(f"Sub-environment {i}: {error} No sub-environment was stepped.") from None
        acted = [env.apply(action) for env, action in zip(self.envs, actions, strict=True)]
        finished = [i for i, (done, _) in enumerate(acted) if done]
        prompts = [acted[i][1]["prompt"] for i in finished]
        results = self.judge.judge(prompts, [self.envs[i].reward_examples for i in finished])
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=np.bool_)
        infos: dict[str, Any] = {}
        for i, result in zip(finished, results, strict=True):
            rewards[i] = result.pop("reward")
            terminations[i] = True
            final = {"final_obs": self.envs[i].observation(), "final_info": acted[i][1] | result}
            infos = self._add_info(infos, final, i)
            acted[i] = (True, self.envs[i].reset()[1])
        for i, (_, info) in enumerate(acted):
            infos = self._add_info(infos, info, i)
        return self._observations(), rewards, terminations, np.zeros(self.num_envs, dtype=np.bool_), infos

    @property
    def evaluations_per_episode(self) -> int:
        """Target evaluations one finished episode of any sub-environment costs (see ``PromptTuneEnv``)."""
        return self.envs[0].evaluations_per_episode

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Return attribute ``name`` of every sub-environment (as ``SyncVectorEnv.get_attr``)."""
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute ``name`` on every sub-environment: one value each, or the same for all."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs {self.num_envs} values (one per sub-env), got {len(values)}.")
        for env, value in zip(self.envs, values, strict=False):
            setattr(env, name, value)

    def render(self) -> tuple[str | None, ...] | None:
        """Return each sub-environment's text (``render_mode="ansi"``)."""
        if self.render_mode != "ansi":
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        """Close the sub-environments (the shared target stays loaded for other users)."""
        for env in self.envs:
            env.close()

    def _observations(self) -> Any:
        space, observations = self.single_observation_space, [env.observation() for env in self.envs]
        return concatenate(space, observations, create_empty_array(space, self.num_envs))
