"""Environment plumbing shared by the agents: the env contract and one batched view of single and vector envs.

Agents know environments only through Gymnasium's interface and the attributes that
:class:`PromptEnv` declares, read through :meth:`EnvAdapter.attr`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

if TYPE_CHECKING:
    from prompt_gym.tasks import Task


class PromptEnv(Protocol):
    """What agents may read from a prompt-gym env's ``env.unwrapped`` (and nothing else).

    ``PromptTuneEnv`` and the TTE env document the same list in their spec sheets ("Attributes
    agents may read"); an env of your own that offers these attributes works with every agent.

    Attributes:
        task: The task (splits, verbalizers, manual prompt); agents validate prompts on its validation split.
        scorer: The target that scores prompts (``num_evaluations`` counts its evaluations).
        tokenizer: The env's tokenizer (the agent LLM's, in token mode).
        action_mode: ``"token"`` or ``"text"``.
        max_prompt_tokens: Longest prompt an episode accepts.
        evaluations_per_episode: Target evaluations one finished episode costs.
        observation_length: Width of a token-mode observation (meta-prompt and prompt, left-padded).
        pad_token_id: Padding id of token-mode observations.
        eos_token_id: The token that ends an episode in token mode.
        sampler: The episode sampler: ``sampler.sample(rng).meta_ids`` draws a meta-prompt.

    Optional: ``judge_ahead(prompts)`` scores, in one target call, prompts that coming episodes on
    the current reward batch will submit (see ``PromptTuneEnv.judge_ahead``); without it each
    episode is judged when it ends.
    """

    task: Task
    scorer: Any
    tokenizer: Any
    action_mode: str
    max_prompt_tokens: int
    evaluations_per_episode: int
    observation_length: int
    pad_token_id: int
    eos_token_id: int
    sampler: Any


PROMPT_ENV_ATTRIBUTES = frozenset(PromptEnv.__annotations__)
"""The names :class:`PromptEnv` declares: what :meth:`EnvAdapter.attr` reads."""


@dataclass
class Trajectory:
    """One episode as the learner sees it.

    Attributes:
        context: Token ids of the meta-prompt (the observation at the episode's start).
        actions: Token ids the agent wrote.
        reward: The episode's reward (given at its end).
        info: The env's final ``info`` (``accuracy``, ``gap``, ``prompt``...).
    """

    context: list[int]
    actions: list[int] = field(default_factory=list)
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def action_mode_of(space: gym.Space) -> str:
    """``"token"`` for a ``Discrete`` action space, ``"text"`` for ``Text``."""
    if isinstance(space, spaces.Discrete):
        return "token"
    if isinstance(space, spaces.Text):
        return "text"
    raise TypeError(f"LLM agents act with token ids (Discrete) or whole prompts (Text), not {space}.")


def split_observation(observation: Any) -> list[Any]:
    """Turn an observation (single or batched) into a list of per-row observations."""
    if isinstance(observation, dict):
        ids = np.asarray(observation["input_ids"])
        mask = np.asarray(observation["attention_mask"])
        if ids.ndim == 1:
            return [{"input_ids": ids, "attention_mask": mask}]
        return [{"input_ids": ids[i], "attention_mask": mask[i]} for i in range(ids.shape[0])]
    if isinstance(observation, str):
        return [observation]
    if isinstance(observation, (list, tuple)) and all(isinstance(o, str) for o in observation):
        return list(observation)
    raise TypeError(
        "Expected a token observation (dict with input_ids and attention_mask) or a text observation (str, "
        f"or a tuple of str from a vector env), got {type(observation).__name__}."
    )


def is_batched(observation: Any) -> bool:
    """Whether ``observation`` comes from a vector env."""
    if isinstance(observation, dict):
        return np.asarray(observation["input_ids"]).ndim == 2
    return not isinstance(observation, str)


def final_infos(infos: dict[str, Any], dones: np.ndarray) -> list[dict[str, Any] | None]:
    """Per-row last ``info`` of the episodes that ended in a SAME_STEP vector step (``None`` elsewhere)."""
    final = infos.get("final_info", {})
    rows: list[dict[str, Any] | None] = []
    for i, done in enumerate(dones):
        if not done:
            rows.append(None)
            continue
        keys = [k for k in final if not k.startswith("_") and np.asarray(final.get(f"_{k}", [True] * len(dones)))[i]]
        rows.append({k: final[k][i] for k in keys})
    return rows


class EnvAdapter:
    """A single env or a SAME_STEP vector env behind one batched, autoresetting interface.

    Args:
        env: ``gym.make(...)`` or ``gym.make_vec(..., vector_kwargs={"autoreset_mode": SAME_STEP})``.

    Raises:
        ValueError: A vector env that does not autoreset in the same step.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.is_vector = isinstance(env, gym.vector.VectorEnv)
        if self.is_vector:
            mode = env.metadata.get("autoreset_mode")
            if mode not in (gym.vector.AutoresetMode.SAME_STEP, "SameStep", "same_step"):
                raise ValueError(
                    f"The vector env autoresets in mode {mode!r}; LLM agents need SAME_STEP. Build it with "
                    'gym.make_vec(env_id, n, vectorization_mode="sync", '
                    'vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}).'
                )
        self.num_envs = env.num_envs if self.is_vector else 1
        self.action_mode = action_mode_of(env.single_action_space if self.is_vector else env.action_space)

    def attr(self, name: str) -> Any:
        """A :class:`PromptEnv` attribute of the (first) underlying env, such as ``task`` or ``scorer``.

        Raises:
            AttributeError: ``name`` is not part of :class:`PromptEnv`, or the env lacks it (not a prompt-gym env).
        """
        if name not in PROMPT_ENV_ATTRIBUTES:
            raise AttributeError(f"Agents read only the PromptEnv attributes {sorted(PROMPT_ENV_ATTRIBUTES)}, "
                                 f"not {name!r}.")
        target = self.env.unwrapped
        if hasattr(target, name):
            return getattr(target, name)
        if self.is_vector and hasattr(self.env, "get_attr"):
            return self.env.get_attr(name)[0]
        raise AttributeError(f"The environment has no attribute {name!r}; agents need a prompt-gym env "
                             "(see prompt_gym.agents.rollout.PromptEnv).")

    def target_evaluations(self) -> int:
        """Evaluations the env's target(s) made so far (summed over the distinct scorers of a vector env's rows)."""
        if self.is_vector and hasattr(self.env, "get_attr") and not hasattr(self.env.unwrapped, "scorer"):
            scorers = {id(s): s for s in self.env.get_attr("scorer")}.values()
            return int(sum(s.num_evaluations for s in scorers))
        return int(self.attr("scorer").num_evaluations)

    def judge_ahead(self, prompts: list[Any]) -> int:
        """Let a single env score the prompts its coming episodes will submit in one target call.

        See ``PromptTuneEnv.judge_ahead``: same rewards and evaluation counts, one batched target
        call instead of one per episode. Returns how many prompts were scored ahead; 0 for a vector
        env (it already scores its rows together) or an env without ``judge_ahead``.
        """
        judge_ahead = None if self.is_vector else getattr(self.env.unwrapped, "judge_ahead", None)
        return int(judge_ahead(prompts)) if judge_ahead is not None else 0

    def reset(self, seed: int | None = None) -> Any:
        """Reset every row; returns the (batched, for vector envs) observation."""
        observation, _ = self.env.reset(seed=seed)
        return observation

    def step(self, actions: list[Any]) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any] | None]]:
        """Step every row; finished rows restart at once.

        Returns:
            ``(observation, rewards, dones, final_infos)``: ``final_infos[i]`` is row ``i``'s last
            ``info`` when its episode ended in this step, else ``None``.
        """
        if not self.is_vector:
            observation, reward, terminated, truncated, info = self.env.step(actions[0])
            done = bool(terminated or truncated)
            if done:
                observation, _ = self.env.reset()
            return observation, np.array([reward], dtype=float), np.array([done]), [info if done else None]
        batch = np.asarray(actions, dtype=np.int64) if self.action_mode == "token" else tuple(actions)
        observation, rewards, terminated, truncated, infos = self.env.step(batch)
        dones = np.logical_or(terminated, truncated)
        return observation, np.asarray(rewards, dtype=float), dones, final_infos(infos, dones)

    def rng_states(self) -> list[dict[str, Any]]:
        """The bit-generator states of the envs' ``np_random`` (JSON-ready)."""
        return [generator.bit_generator.state for generator in self._generators()]

    def set_rng_states(self, states: list[dict[str, Any]]) -> None:
        """Restore what :meth:`rng_states` returned."""
        generators = []
        for state in states:
            generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
            generator.bit_generator.state = state
            generators.append(generator)
        if len(generators) != self.num_envs and not (self.is_vector and len(generators) == 1):
            raise ValueError(f"Got {len(generators)} env RNG states for {self.num_envs} envs.")
        if not self.is_vector:
            self.env.unwrapped.np_random = generators[0]
        elif len(generators) == self.num_envs and hasattr(self.env, "set_attr") and self._per_env_rngs():
            self.env.set_attr("np_random", generators)
        else:
            self.env.np_random = generators[0]

    def _per_env_rngs(self) -> bool:
        try:
            return len(self.env.get_attr("np_random")) == self.num_envs
        except (AttributeError, NotImplementedError):
            return False

    def _generators(self) -> list[np.random.Generator]:
        if not self.is_vector:
            return [self.env.unwrapped.np_random]
        if hasattr(self.env, "get_attr") and self._per_env_rngs():
            return list(self.env.get_attr("np_random"))
        return [self.env.np_random]
