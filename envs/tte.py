"""Test-time editing (TTE-StablePrompt): the agent writes a prompt for one input at a time."""

from __future__ import annotations

from typing import Any

from prompt_gym.envs.prompt_tune import PromptTuneEnv
from prompt_gym.envs.vector import PromptTuneVectorEnv
from prompt_gym.episode import EpisodeSampler
from prompt_gym.tasks import Task
from prompt_gym.tte import TTESampler


class TTEEnv(PromptTuneEnv):
    r"""Write a prompt for one input the agent can see; the reward is the target's result on that input.

    ## Description

    Test-time editing (TTE-StablePrompt): input-dependent prompts. Each episode shows the agent
    ``num_demos`` input/output demonstrations from the validation split *and the current input*
    (a training example, never its answer), in the meta-prompt
    :data:`prompt_gym.tte.TTE_REQUEST`; the agent writes a prompt for that input only, and the
    target reads ``"{prompt}\nInput: {input}\nOutput:"`` for it alone. Everything else is
    :class:`~prompt_gym.envs.prompt_tune.PromptTuneEnv`'s, so an agent written for it trains here
    unchanged.

    ## Action Space

    As ``PromptTuneEnv``: one token per step (``action_mode="token"``) or the whole prompt in one
    step (``"text"``).

    ## Observation Space

    As ``PromptTuneEnv``; the meta-prompt also holds the current input.

    ## Rewards

    0 until the prompt is finished, then ``reward`` on the current input alone: with the default
    ``"stableprompt"``, ``30 * correct + gap`` (the paper's TTE code uses ``-CE + 10 * correct``).

    ## Starting State

    ``reset(seed)`` draws one training input and the demonstrations (never that input) with
    ``self.np_random``.

    ## Episode End

    As ``PromptTuneEnv``.

    ## Info

    As ``PromptTuneEnv``.

    ## Attributes agents may read

    The same list as ``PromptTuneEnv`` (``task``, ``scorer``, ``tokenizer``, ``action_mode``,
    ``max_prompt_tokens``, ``evaluations_per_episode``, ``observation_length``, ``pad_token_id``,
    ``eos_token_id``, ``sampler``). Here ``evaluations_per_episode`` is 1 and ``sampler`` is a
    :class:`~prompt_gym.tte.TTESampler`. Evaluation writes one prompt per test input:
    :func:`prompt_gym.tte.evaluate_tte` with ``env.unwrapped.sampler`` and ``env.unwrapped.scorer``.

    ## Arguments

    ``PromptTuneEnv``'s, except:

    | argument | default | meaning |
    |---|---|---|
    | ``num_demos`` | 3 | demonstrations in the meta-prompt (the paper's) |
    | ``reward_batch_size`` | not accepted | the reward batch is the current input; passing it raises ``TypeError`` |
    | ``meta_prompt_template`` | ``None`` | as ``PromptTuneEnv``'s, plus a ``{current}`` field for the input |

    A ``meta_prompt_template`` of ``None`` is :data:`prompt_gym.tte.TTE_REQUEST`.

    Works for any registered task (``gym.make("PromptTune-TTE-SST2-v0", task="mrpc")``), and as a
    native vector env (``gym.make_vec``: :class:`TTEVectorEnv`).

    ## Example

    >>> import gymnasium as gym
    >>> import prompt_gym
    >>> env = gym.make("PromptTune-TTE-SST2-v0", task="toy", action_mode="text")
    >>> obs, info = env.reset(seed=0)
    >>> "This is the input my friend must answer" in obs
    True
    >>> env.unwrapped.evaluations_per_episode
    1

    ## Version History

    * v0: initial release.
    """

    def __init__(self, task: str | Task = "sst2", *, num_demos: int = 3, **kwargs: Any) -> None:
        if "reward_batch_size" in kwargs:
            raise TypeError("Test-time editing scores each prompt on its own input alone (evaluations_per_episode "
                            "is 1): it takes no reward_batch_size; drop the argument.")
        super().__init__(task, num_demos=num_demos, **kwargs)

    def _make_sampler(
        self, num_demos: int, reward_batch_size: int, max_meta_prompt_tokens: int, meta_prompt_template: str | None
    ) -> EpisodeSampler:
        return TTESampler(self.task, self.tokenizer, num_demos, max_meta_prompt_tokens, request=meta_prompt_template)

    def _meta_prompt_charset(self) -> str:
        """Every character a meta-prompt can hold, now including the current input of any split."""
        inputs = "".join(example.input for split in self.task.splits.values() for example in split)
        return "".join(sorted(set(super()._meta_prompt_charset()) | set(inputs)))


class TTEVectorEnv(PromptTuneVectorEnv):
    """``num_envs`` copies of :class:`TTEEnv` sharing one target, one batched target call per step.

    What :class:`~prompt_gym.envs.vector.PromptTuneVectorEnv` is for ``PromptTuneEnv`` (SAME_STEP
    autoreset, sub-environment ``i`` of ``reset(seed=s)`` equals ``TTEEnv.reset(seed=s + i)``, the
    same spec sheet): ``gym.make_vec("PromptTune-TTE-SST2-v0", num_envs=4)``.
    """

    env_class = TTEEnv
