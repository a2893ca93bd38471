"""The prompt-tuning environment."""

from __future__ import annotations

import string
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prompt_gym.calibration import CALIBRATIONS, extra_evaluations_per_prompt
from prompt_gym.checks import check_choice, check_int, check_optional_int, check_type
from prompt_gym.data import Example
from prompt_gym.episode import Episode, EpisodeSampler
from prompt_gym.models import padding_id
from prompt_gym.rewards import PromptJudge, RewardFunction
from prompt_gym.scoring import Scorer
from prompt_gym.targets import Target, make_scorer, make_tokenizer
from prompt_gym.tasks import Task, get_task

PROMPT_CHARSET = string.printable
"""Characters the text-mode action space samples from (any string is accepted as an action)."""

ACTION_MODES = ("token", "text")


class PromptTuneEnv(gym.Env):
    r"""Write a prompt; a frozen target LLM runs the task with it; the reward is how well it did.

    ## Description

    The StablePrompt formulation of prompt tuning. Each episode shows the agent a meta-prompt (a
    task-agnostic request plus ``num_demos`` input/output demonstrations drawn from the task's
    validation split); the agent writes a prompt; the target LLM reads ``"{prompt}\nInput:
    {input}\nOutput:"`` for ``reward_batch_size`` training examples and its next-token scores of
    the verbalizer words decide each answer (with ``calibration``, after dividing out the class bias
    the target shows with the same prompt on a fixed set of inputs: :mod:`prompt_gym.calibration`).

    ## Action Space

    * ``action_mode="token"`` (default): ``Discrete(len(tokenizer))``, one token of the prompt per
      step (the env tokenizer, which is the agent's).
    * ``action_mode="text"``: ``Text`` (printable characters, spaces, newlines): the whole prompt
      in one step. Any Python string is accepted.

    ## Observation Space

    * token mode: ``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))``
      with ``L = max_meta_prompt_tokens + max_prompt_tokens``: the meta-prompt followed by the
      prompt written so far, left-padded with the tokenizer's pad id (mask 0).
    * text mode: ``Text``: the meta-prompt string.

    ## Rewards

    0 until the prompt is finished, then ``reward`` (default ``"stableprompt"``:
    ``30 * accuracy + gap``, see :mod:`prompt_gym.rewards`; also ``"accuracy"`` and ``"margin"``,
    or a callable ``f(scores, gaps, **reward_kwargs) -> (rewards, parts)``) computed on the reward
    batch. Generation tasks (instruction induction): the target writes an
    answer greedily and the task metric scores it; ``"stableprompt"`` is ``30 *`` the mean
    metric, ``"accuracy"`` the mean metric, and ``info["accuracy"]`` holds the mean metric.

    ## Starting State

    ``reset(seed)`` draws the demonstrations and the reward batch with ``self.np_random``.

    ## Episode End

    Terminates (``terminated=True``) when

    1. token mode: the agent emits the tokenizer's EOS token, or the prompt reaches
       ``max_prompt_tokens`` tokens;
    2. text mode: after the single step.

    The env never truncates. A text-mode prompt longer than ``max_prompt_tokens`` tokens is cut to
    that length and flagged with ``info["prompt_truncated"] = True`` (the env also warns, once).

    ## Info

    ``meta_prompt``, ``prompt`` (decoded so far), ``demo_uids``; at the end ``reward``,
    ``accuracy``, ``gap`` and ``prompt_truncated``.

    ## Attributes agents may read

    The contract between envs and agents (``prompt_gym.agents.rollout.PromptEnv``); agents read
    these from ``env.unwrapped`` and nothing else:

    | attribute | meaning |
    |---|---|
    | ``task`` | the :class:`~prompt_gym.tasks.Task` (agents validate prompts on its validation split) |
    | ``scorer`` | the target (``scorer.num_evaluations`` counts its evaluations) |
    | ``tokenizer`` | the env tokenizer (the agent LLM's, in token mode) |
    | ``action_mode`` | ``"token"`` or ``"text"`` |
    | ``max_prompt_tokens`` | longest prompt an episode accepts |
    | ``evaluations_per_episode`` | target evaluations one finished episode costs (read-only) |
    | ``observation_length`` | width ``L`` of a token-mode observation |
    | ``pad_token_id`` | padding id of token-mode observations |
    | ``eos_token_id`` | the token that ends an episode in token mode |
    | ``sampler`` | the episode sampler (``sampler.sample(rng).meta_ids`` draws a meta-prompt) |

    The vector env (:class:`~prompt_gym.envs.vector.PromptTuneVectorEnv`) drives each
    sub-environment through four public members: :meth:`check_action`, :meth:`apply` (act without
    scoring), :attr:`reward_examples` (what a finished prompt is scored on) and :meth:`observation`.
    An agent that plays several prompts on one reset seed may call :meth:`judge_ahead` first: the
    target then scores them in one call, with the rewards and evaluation counts of one by one.

    ## Arguments

    | argument | default | meaning |
    |---|---|---|
    | ``task`` | ``"sst2"`` | task name (see ``prompt_gym.list_tasks()``) or a ``Task`` |
    | ``action_mode`` | ``"token"`` | ``"token"`` or ``"text"`` |
    | ``tokenizer`` | target's | env/agent tokenizer: object or model spec |
    | ``target`` | default model | model spec or ``(model, tokenizer)`` |
    | ``scorer`` | built | a ready scorer (shares one model between envs) |
    | ``reward`` / ``reward_kwargs`` | ``"stableprompt"`` | reward function (a name or a callable) and its options |
    | ``num_demos`` | 5 | demonstrations in the meta-prompt |
    | ``max_prompt_tokens`` | 48 | longest prompt |
    | ``reward_batch_size`` | 16 | training examples per reward |
    | ``max_meta_prompt_tokens`` | 512 | longest meta-prompt |
    | ``meta_prompt_template`` | ``None`` | the request the agent reads: ``{pairs}``, optional ``{count}`` (*) |
    | ``data_seed`` | 13 | few-shot split seed (LM-BFF 13/21/42/87/100) |
    | ``test_split`` | task's | test file (SST-2: ``"validation"`` = 872, or ``"test"`` = 1,821) |
    | ``scorer_batch_size`` | 32 | rows per target forward pass |
    | ``max_new_tokens`` | task's | generation tasks: longest target answer |
    | ``calibration`` | ``None`` | ``"batch"``, ``"content-free"``: remove the target's class bias (changes the task) |

    (*) ``{pairs}`` is where the demonstrations go, ``{count}`` their number as a word; ``None`` is
    :data:`~prompt_gym.meta_prompts.INSTRUCTION_INDUCTION`.

    ## Example

    >>> import gymnasium as gym
    >>> import prompt_gym
    >>> env = gym.make("PromptTune-Toy-v0", action_mode="text")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step("Classify the review sentiment")
    >>> terminated, info["accuracy"] >= 0.5
    (True, True)

    ## Version History

    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        task: str | Task = "sst2",
        *,
        action_mode: str = "token",
        tokenizer: Any = None,
        target: Target | None = None,
        scorer: Scorer | None = None,
        reward: str | RewardFunction = "stableprompt",
        reward_kwargs: dict[str, Any] | None = None,
        num_demos: int = 5,
        max_prompt_tokens: int = 48,
        reward_batch_size: int = 16,
        max_meta_prompt_tokens: int = 512,
        meta_prompt_template: str | None = None,
        data_seed: int = 13,
        test_split: str | None = None,
        scorer_batch_size: int = 32,
        max_new_tokens: int | None = None,
        calibration: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        check_choice("action_mode", action_mode, ACTION_MODES)
        check_choice("calibration", calibration, CALIBRATIONS)
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        check_type("task", task, (str, Task), "a task name (see prompt_gym.list_tasks()) or a Task")
        check_type("reward_kwargs", reward_kwargs, (dict, type(None)), "None or a dict of the reward's options")
        check_type("test_split", test_split, (str, type(None)), "None or a split file name ('validation', 'test')")
        check_int("num_demos", num_demos, minimum=0)
        check_int("max_prompt_tokens", max_prompt_tokens, minimum=1)
        check_int("reward_batch_size", reward_batch_size, minimum=1)
        check_int("max_meta_prompt_tokens", max_meta_prompt_tokens, minimum=1)
        check_int("data_seed", data_seed, minimum=0)
        check_int("scorer_batch_size", scorer_batch_size, minimum=1)
        check_optional_int("max_new_tokens", max_new_tokens, minimum=1)
        if isinstance(task, str):
            task = get_task(task, seed=data_seed, test_split=test_split)
        self.task = task
        self.action_mode = action_mode
        self.render_mode = render_mode
        self.max_prompt_tokens = max_prompt_tokens
        self.tokenizer = make_tokenizer(task, tokenizer, target)
        self.scorer = make_scorer(task, target, scorer, batch_size=scorer_batch_size, max_new_tokens=max_new_tokens,
                                  calibration=calibration)
        self.sampler = self._make_sampler(num_demos, reward_batch_size, max_meta_prompt_tokens, meta_prompt_template)
        self.judge = PromptJudge(self.scorer, reward, reward_kwargs)
        self.eos_token_id = self.tokenizer.eos_token_id
        self.pad_token_id = padding_id(self.tokenizer)
        self.vocab_size = len(self.tokenizer)
        self.observation_length = max_meta_prompt_tokens + max_prompt_tokens
        if action_mode == "token":
            box = spaces.Box(0, self.vocab_size - 1, shape=(self.observation_length,), dtype=np.int64)
            mask = spaces.Box(0, 1, shape=(self.observation_length,), dtype=np.int64)
            self.observation_space = spaces.Dict({"input_ids": box, "attention_mask": mask})
            self.action_space = spaces.Discrete(self.vocab_size)
        else:
            self.observation_space = spaces.Text(
                max_length=32 * max_meta_prompt_tokens, min_length=1, charset=self._meta_prompt_charset()
            )
            self.action_space = spaces.Text(max_length=8 * max_prompt_tokens, min_length=0, charset=PROMPT_CHARSET)
        self._episode: Episode | None = None
        self._done = False
        self._warned: set[str] = set()

    def _make_sampler(
        self, num_demos: int, reward_batch_size: int, max_meta_prompt_tokens: int, meta_prompt_template: str | None
    ) -> EpisodeSampler:
        """Build the episode sampler (subclasses change what an episode shows and scores)."""
        return EpisodeSampler(self.task, self.tokenizer, num_demos, reward_batch_size, max_meta_prompt_tokens,
                              request=meta_prompt_template)

    @property
    def evaluations_per_episode(self) -> int:
        """Target evaluations one finished episode costs: one per example of its reward batch.

        With ``calibration``, a prompt the target has not seen also costs its calibration inputs.
        An upper bound: pairs the scorer has already cached cost nothing.
        """
        return self.sampler.reward_batch_size + extra_evaluations_per_prompt(self.scorer)

    @property
    def reward_examples(self) -> list[Example]:
        """The training examples the current episode's prompt is scored on.

        Raises:
            RuntimeError: No episode has started (call :meth:`reset` first).
        """
        return self._current_episode().reward_examples

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Draw demonstrations and a reward batch; return the meta-prompt observation."""
        super().reset(seed=seed)
        self._episode = self.sampler.sample(self.np_random)
        self._done = False
        return self.observation(), self._info("")

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Append a token (token mode) or submit the whole prompt (text mode)."""
        finished, info = self.apply(action)
        reward = 0.0
        if finished:
            result = self.judge.judge([info["prompt"]], [self.reward_examples])[0]
            reward = result.pop("reward")
            info |= result
        return self.observation(), reward, finished, False, info

    def judge_ahead(self, prompts: Sequence[str | Sequence[int]]) -> int:
        """Score, in one target call, prompts that coming episodes on this reward batch will submit.

        An agent that writes several prompts for one meta-prompt and plays each as an episode
        reset with the same seed (APPO and pg-group do) can hand them all here first. The target
        scores them together, and :meth:`step` then takes each one's scores from here when an
        episode on the same reward examples ends with that prompt, instead of calling the target
        once per episode. Rewards, infos and evaluation counts are those of playing the prompts one
        by one; the evaluations are counted now rather than at each episode's end. Only the last
        call's prompts are kept, each for one episode.

        Args:
            prompts: Each prompt as the agent will submit it: the token ids it will step (token
                mode; the first EOS ends the prompt) or the action string (text mode).

        Returns:
            How many prompts were scored ahead: all of them, or as many as the target's remaining
            budget covers (``scorer.remaining`` of a :class:`~prompt_gym.budget.BudgetedScorer`);
            the rest are scored when their episodes end, as usual.

        Raises:
            RuntimeError: No episode has started (call :meth:`reset` first).
            TypeError, ValueError: A prompt of the wrong type for the action mode, or a token id
                outside the vocabulary (as :meth:`check_action`).
        """
        examples = self.reward_examples
        texts = [self._submitted_text(prompt) for prompt in prompts]
        remaining = getattr(self.scorer, "remaining", None)
        if remaining is not None:
            texts = texts[: max(0, remaining // max(1, len(examples)))]
        self.judge.judge_ahead(texts, examples)
        return len(texts)

    def _submitted_text(self, prompt: str | Sequence[int]) -> str:
        """The prompt text :meth:`step` will judge once ``prompt`` (an action string, or token ids) is submitted."""
        if self.action_mode == "text":
            if not isinstance(prompt, str):
                raise TypeError(f"In text mode a prompt is the action string, got {type(prompt).__name__}.")
            return self._text_prompt(prompt)[0].strip()
        ids = [self._token(token) for token in prompt]
        ids = ids[: ids.index(self.eos_token_id)] if self.eos_token_id in ids else ids
        return self.tokenizer.decode(ids[: self.max_prompt_tokens], skip_special_tokens=True).strip()

    def apply(self, action: Any) -> tuple[bool, dict[str, Any]]:
        """Apply ``action`` as :meth:`step` does, without scoring; return ``(finished, info)``.

        The vector env calls this on each sub-environment, then scores every finished prompt (on
        its :attr:`reward_examples`) in one target call. A finished episode stays finished until
        :meth:`reset`.

        Raises:
            RuntimeError, TypeError, ValueError: As :meth:`check_action`.
        """
        action = self.check_action(action)
        episode = self._episode
        truncated_prompt = False
        if self.action_mode == "token":
            token = action
            finished = token == self.eos_token_id or len(episode.prompt_ids) + 1 >= self.max_prompt_tokens
            if token != self.eos_token_id:
                episode.prompt_ids.append(token)
        else:
            action, ids, had_special, length = self._text_prompt(action)
            if had_special:
                self._warn_once("special tokens", "A prompt contained special tokens (such as the EOS or chat-template "
                                "markers); they are removed, as in token mode, so the target reads plain text. This "
                                "env says so only once.")
            truncated_prompt = length > self.max_prompt_tokens
            if truncated_prompt:
                self._warn_once("truncated", f"A prompt had {length} tokens; it was cut to max_prompt_tokens="
                                f"{self.max_prompt_tokens}. info['prompt_truncated'] flags every cut prompt; this "
                                "env says so only once.")
            episode.prompt_ids = ids
            finished = True
        info = self._info(self._prompt_text(action))
        if finished:
            self._done = True
            info["prompt_truncated"] = truncated_prompt
        return finished, info

    def check_action(self, action: Any) -> int | str:
        """Validate ``action`` for the current episode without changing anything; return it normalised.

        Raises:
            RuntimeError: The episode has ended or never started.
            TypeError: The action has the wrong type for the action mode.
            ValueError: A token id outside the vocabulary.
        """
        if self._episode is None or self._done:
            raise RuntimeError("The episode has ended (or never started); call reset() before step().")
        if self.action_mode == "token":
            return self._token(action)
        if not isinstance(action, str):
            raise TypeError(
                f"In text mode the action is the whole prompt as a str, got {type(action).__name__}; "
                "use action_mode='token' to act with token ids."
            )
        return action

    def _text_prompt(self, action: str) -> tuple[str, list[int], bool, int]:
        """What a text action submits: ``(text, token ids, had special tokens, length before the cut)``.

        Special tokens (EOS, chat markers...) are dropped, as token mode drops them, so the target
        reads plain text; a prompt past ``max_prompt_tokens`` tokens is cut to that length.
        """
        ids = list(self.tokenizer.encode(action, add_special_tokens=False))
        special = set(getattr(self.tokenizer, "all_special_ids", ())) - {getattr(self.tokenizer, "unk_token_id", None)}
        had_special = bool(special.intersection(ids))
        if had_special:
            ids = [token for token in ids if token not in special]
            action = self.tokenizer.decode(ids, skip_special_tokens=True)
        if len(ids) > self.max_prompt_tokens:
            action = self.tokenizer.decode(ids[: self.max_prompt_tokens], skip_special_tokens=True)
        return action, ids[: self.max_prompt_tokens], had_special, len(ids)

    def _warn_once(self, kind: str, message: str) -> None:
        """Warn with ``message`` the first time this env meets ``kind`` of prompt, not at every episode."""
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, stacklevel=4)

    def render(self) -> str | None:
        """Return the meta-prompt and the prompt so far as text (``render_mode="ansi"``)."""
        if self.render_mode != "ansi" or self._episode is None:
            return None
        return f"{self._episode.meta_prompt}{self._prompt_text(None)}"

    def _token(self, action: Any) -> int:
        if isinstance(action, (bool, str)) or not np.issubdtype(np.asarray(action).dtype, np.integer) \
                or np.asarray(action).ndim != 0:
            raise TypeError(f"In token mode the action is one integer token id, got {action!r}; "
                            "use action_mode='text' to submit a whole prompt string.")
        token = int(action)
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"Token id {token} is outside the vocabulary [0, {self.vocab_size}).")
        return token

    def _prompt_text(self, action: Any) -> str:
        if self.action_mode == "text" and isinstance(action, str):
            return action.strip()
        return self.tokenizer.decode(self._episode.prompt_ids, skip_special_tokens=True).strip()

    def observation(self) -> Any:
        """Return the current observation: left-padded ids and mask (token mode) or the meta-prompt (text mode).

        Raises:
            RuntimeError: No episode has started (call :meth:`reset` first).
        """
        episode = self._current_episode()
        if self.action_mode == "text":
            return episode.meta_prompt
        ids = episode.meta_ids + episode.prompt_ids
        input_ids = np.full(self.observation_length, self.pad_token_id, dtype=np.int64)
        mask = np.zeros(self.observation_length, dtype=np.int64)
        input_ids[self.observation_length - len(ids) :] = ids
        mask[self.observation_length - len(ids) :] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def _current_episode(self) -> Episode:
        if self._episode is None:
            raise RuntimeError("No episode has started; call reset() first.")
        return self._episode

    def _info(self, prompt: str) -> dict[str, Any]:
        return {"meta_prompt": self._episode.meta_prompt, "prompt": prompt, "demo_uids": list(self._episode.demo_uids)}

    def _meta_prompt_charset(self) -> str:
        """Every character a meta-prompt can contain: the request, the chat template, the demos."""
        rng = np.random.default_rng(0)
        sample = self.sampler.sample(rng).meta_prompt
        words = "".join(self.task.verbalizer or ()) + "".join(o for e in self.task.split("validation") for o in e.outputs)
        demos = "".join(example.input for example in self.task.split("validation"))
        return "".join(sorted(set(PROMPT_CHARSET) | set(sample) | set(words) | set(demos)))
