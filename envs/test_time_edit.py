"""Test-time editing (TTE-StablePrompt): the agent writes a prompt for one input at a time."""

from __future__ import annotations

from typing import Any

from prompt_gym.envs.prompt_tune import PromptTuneEnv
from prompt_gym.envs.vector import PromptTuneVectorEnv
from prompt_gym.episode import EpisodeSampler
from prompt_gym.tasks import Task
from prompt_gym.tte import TTESampler


class TestTimeEditEnv(PromptTuneEnv):
    """Input-dependent prompts: the agent sees the current input; the reward is the target's result on it.

    The same spaces, modes (token and text), info keys and arguments as :class:`PromptTuneEnv`, so
    an agent written for it trains here unchanged. What differs:

    * ``reset`` draws one training input and ``num_demos`` (default 3, as in the paper)
      demonstrations from the validation split; the meta-prompt
      (:data:`prompt_gym.tte.TTE_REQUEST`) shows the demonstrations and the current
      input (never its answer).
    * The reward batch is that one input: with the default ``"stableprompt"`` reward, ``30 *
      correct + gap`` (the paper's TTE code uses ``-CE + 10 * correct``).
    * ``reward_batch_size`` is fixed to 1.

    Works for any registered task (``gym.make("PromptTune-TTE-SST2-v0", task="mrpc")``), and as a
    native vector env (``gym.make_vec``: :class:`TestTimeEditVectorEnv`).
    Evaluation writes one prompt per test input: :func:`prompt_gym.tte.evaluate_tte`
    with ``env.unwrapped.sampler`` and ``env.unwrapped.scorer``.

    Example:
        >>> import gymnasium as gym
        >>> import prompt_gym
        >>> env = gym.make("PromptTune-TTE-SST2-v0", task="toy", action_mode="text")
        >>> obs, info = env.reset(seed=0)
        >>> "This is the input my friend must answer" in obs
        True
    """

    def __init__(self, task: str | Task = "sst2", *, num_demos: int = 3, reward_batch_size: int = 1,
                 **kwargs: Any) -> None:
        if reward_batch_size != 1:
            raise ValueError("Test-time editing scores each prompt on its own input: reward_batch_size must "
                             f"be 1, got {reward_batch_size}.")
        super().__init__(task, num_demos=num_demos, reward_batch_size=1, **kwargs)

    def _make_sampler(
        self, num_demos: int, reward_batch_size: int, max_meta_prompt_tokens: int
    ) -> EpisodeSampler:
        return TTESampler(self.task, self.tokenizer, num_demos, max_meta_prompt_tokens)

    def _meta_prompt_charset(self) -> str:
        """Every character a meta-prompt can hold, now including the current input of any split."""
        inputs = "".join(example.input for split in self.task.splits.values() for example in split)
        return "".join(sorted(set(super()._meta_prompt_charset()) | set(inputs)))


class TestTimeEditVectorEnv(PromptTuneVectorEnv):
    """``num_envs`` copies of :class:`TestTimeEditEnv` sharing one target, one batched target call per step.

    What :class:`~prompt_gym.envs.vector.PromptTuneVectorEnv` is for :class:`PromptTuneEnv`
    (SAME_STEP autoreset, sub-environment ``i`` of ``reset(seed=s)`` equals
    ``TestTimeEditEnv.reset(seed=s + i)``): ``gym.make_vec("PromptTune-TTE-SST2-v0", num_envs=4)``.
    """

    env_class = TestTimeEditEnv
