"""What every LLM prompt-writing agent shares: acting, playing whole episodes, validating, selecting.

:class:`LLMPromptAgent` holds the agent LLM as an :class:`~prompt_gym.agents.appo.policy.APPOPolicy`
(LoRA ``default`` = the policy, ``anchor`` = a frozen copy of the starting policy) and samples with
the APPO :class:`~prompt_gym.agents.appo.generation.Decoder`. APPO, the baselines and the group
policy gradient all build on it, so they write, validate and select prompts the same way.
Subclasses implement ``learn``.

The baselines and the group policy gradient play whole episodes with :meth:`~LLMPromptAgent.play_group`
(APPO runs the ``predict``/``step`` loop instead): the agent writes a batch of prompts for one
meta-prompt in a single batched generation, then feeds each one to the env (token by token in
token mode, whole in text mode) and reads the env's reward. ``reset(seed=s)`` with the same ``s``
shows the same meta-prompt and reward batch (the env's determinism contract), which is
how a group of prompts is judged on the same examples.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from prompt_gym.agents.appo.config import ModelConfig, check_writer_fields
from prompt_gym.agents.appo.generation import Decoder
from prompt_gym.agents.appo.policy import POLICY, APPOPolicy
from prompt_gym.agents.base import Agent, require
from prompt_gym.agents.pool import PromptPool
from prompt_gym.agents.rollout import EnvAdapter, Trajectory, is_batched, split_observation
from prompt_gym.callbacks import as_callback
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.logging import Logger
from prompt_gym.meta_prompts import has_chat_template


@dataclass
class LLMAgentConfig:
    """Settings every LLM prompt-writing agent has.

    Attributes:
        seed: Seeds torch, numpy and python, the first env reset and the agent's own generator.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; used when the agent loads its model.
        temperature: Sampling temperature (no top-k/top-p, as in the APPO agent).
        max_prompt_tokens: Longest prompt; ``None`` reads the env's ``max_prompt_tokens``.
        eval_interval: Updates (batches) between validation checks that feed the prompt pool.
        eval_samples: Prompts validated at each check.
        pool_size: Best prompts kept, by validation accuracy.
        final_samples: Extra prompts validated by :meth:`LLMPromptAgent.select_prompt`.
    """

    seed: int = 0
    device: str = "auto"
    temperature: float = 1.0
    max_prompt_tokens: int | None = None
    eval_interval: int = 5
    eval_samples: int = 2
    pool_size: int = 5
    final_samples: int = 4

    def __post_init__(self) -> None:
        check_writer_fields(self)
        require(self.eval_interval >= 1, f"eval_interval must be a positive number of updates, "
                                         f"got {self.eval_interval}.")
        require(self.eval_samples >= 1, f"eval_samples must be positive, got {self.eval_samples}.")


class WriterConfig(Protocol):
    """The config fields :class:`LLMPromptAgent` reads (``LLMAgentConfig`` and ``APPOConfig`` have them)."""

    seed: int
    device: str
    temperature: float
    max_prompt_tokens: int | None
    pool_size: int
    final_samples: int


VALIDATION_STREAM = 7919
"""Second seed word of the generator behind :meth:`LLMPromptAgent.validation_contexts`."""


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global generator and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LLMPromptAgent(Agent):
    """Base class of agents that write prompts with an LLM.

    Args:
        env: A prompt-gym env (token or text mode; a SAME_STEP vector env where the subclass sets
            :attr:`accepts_vector_env`), or ``None`` to act only.
        config: The agent's settings (an :class:`LLMAgentConfig` subclass, or ``APPOConfig``).
        model_config: Model and LoRA settings.
        model: A loaded causal LM without adapters (changed in place: LoRA layers are added);
            loaded from ``model_config.model`` when ``None``. Pass the env target's model to share
            one copy of the weights.
        tokenizer: The model's tokenizer (required with ``model``); must be the env's tokenizer.
        logger: Where metrics go; in memory by default.

    Attributes:
        accepts_vector_env: Whether the agent trains on a vector env (``False``: one env at a time).
        pool: The best prompts by validation accuracy.
        num_updates: Learning steps done (what a subclass calls an update).
    """

    name = "llm"
    accepts_vector_env = False

    def __init__(
        self, env: Any, config: WriterConfig, model_config: ModelConfig | None = None, model: Any = None,
        tokenizer: Any = None, logger: Logger | None = None,
    ) -> None:
        self.config = config
        self.model_config = model_config or ModelConfig()
        seed_everything(config.seed)
        if model is None:
            from prompt_gym.models import shared_causal_lm

            model, tokenizer = shared_causal_lm(self.model_config.model, dtype=self.model_config.dtype,
                                                device=config.device)
        elif tokenizer is None:
            raise ValueError("Pass the model's tokenizer together with the model (tokenizer=...).")
        self.env = EnvAdapter(env) if env is not None else None
        if self.env is not None and self.env.is_vector and not self.accepts_vector_env:
            raise ValueError(f"{type(self).__name__} plays episodes one env at a time; pass gym.make(...), "
                             "not a vector env.")
        self._check_vocab(model)
        self.tokenizer = tokenizer
        self.policy = APPOPolicy(model, self.model_config)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.decoder = Decoder(self.policy, self.pad_id, config.temperature)
        self.rng = np.random.default_rng(config.seed)
        self.pool = PromptPool(config.pool_size)
        self.logger = logger or Logger()
        self.num_updates = self.num_timesteps = 0
        self._first_reset = True
        self._last_context: list[int] | None = None
        self._generated: dict[int, tuple[str, list[int]]] = {}  # text-mode predict's (text, ids) by row
        self.policy_acc = float("nan")  # the last eval/policy_accuracy measured
        self.wall_time_s = 0.0  # training wall time before the current learn() call (restored on resume)
        self._learn_started = time.perf_counter()

    def _check_vocab(self, model: Any) -> None:
        if self.env is None or self.env.action_mode != "token":
            return
        space = self.env.env.single_action_space if self.env.is_vector else self.env.env.action_space
        rows = model.get_input_embeddings().num_embeddings
        if space.n > rows:
            raise ValueError(
                f"The env's token actions go up to {space.n - 1} but the agent model has {rows} embeddings: the env "
                "uses another tokenizer. Make the env with the agent's tokenizer: gym.make(id, tokenizer=tokenizer)."
            )

    # ------------------------------------------------------------------ acting
    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]:
        """Next token (token mode, KV cache kept in ``state``) or whole prompt (text mode) per row."""
        rows = split_observation(observation)
        batched = is_batched(observation)
        self.policy.eval()
        if isinstance(rows[0], dict):
            state = self.decoder.step(state, [self._context(row) for row in rows], episode_start)
            tokens = self.decoder.sample(state, deterministic)
            return (np.asarray(tokens, dtype=np.int64) if batched else tokens[0]), state
        written = self.write_prompts([self._encode(row) for row in rows], deterministic=deterministic)
        self._generated = {i: (text, ids) for i, (text, ids) in enumerate(written)}
        texts = [text for text, _ in written]
        return (tuple(texts) if batched else texts[0]), None

    def write_prompts(
        self, contexts: list[list[int]], deterministic: bool = False, adapter: str = POLICY
    ) -> list[tuple[str, list[int]]]:
        """Write one prompt per context with ``adapter`` (``"default"`` = policy, ``"anchor"``).

        Returns:
            ``(text, token_ids)`` per context; the ids include the EOS token when one was sampled.
        """
        self.policy.eval()
        with self.policy.use_adapter(adapter):
            outputs = self.decoder.generate(contexts, self._max_prompt_tokens(), self.eos_id, deterministic)
        return [(self._decode(ids), ids) for ids in outputs]

    def _context(self, row: Any) -> list[int]:
        """Token ids of one observation row: the unpadded ``input_ids`` (token mode) or the encoded text."""
        if isinstance(row, dict):
            return row["input_ids"][row["attention_mask"].astype(bool)].tolist()
        return self._encode(row)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=not has_chat_template(self.tokenizer)))

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([t for t in ids if t != self.eos_id], skip_special_tokens=True).strip()

    def _max_prompt_tokens(self) -> int:
        if self.config.max_prompt_tokens is not None:
            return self.config.max_prompt_tokens
        if self.env is not None:
            return int(self.env.attr("max_prompt_tokens"))
        raise ValueError(f"Set {type(self.config).__name__}.max_prompt_tokens "
                         "(the agent has no env to read it from).")

    # ------------------------------------------------------------------ episodes
    def play_group(self, size: int, same_meta_prompt: bool) -> list[Trajectory]:
        """Write ``size`` prompts and play each as one env episode.

        Args:
            size: Number of prompts (episodes).
            same_meta_prompt: Judge every prompt on one meta-prompt and reward batch (``reset(seed=s)``
                with one ``s``); otherwise each episode continues the env's own random stream.

        Returns:
            One finished :class:`Trajectory` per prompt (reward and final ``info`` filled in).
        """
        if self.env is None:
            raise ValueError("This agent has no environment; pass one to the constructor.")
        seeds = self._reset_seeds(size, same_meta_prompt)
        context = self._reset(seeds[0])
        written = self.write_prompts([context] * size)
        trajectories = []
        for index, (_, ids) in enumerate(written):
            if index > 0:
                context = self._reset(seeds[index])
            trajectories.append(self._play(context, ids))
        self._last_context = context
        return trajectories

    def _reset_seeds(self, size: int, same: bool) -> list[int | None]:
        if same:
            return [int(self.rng.integers(2**31))] * size
        first = self.config.seed if self._first_reset else None
        self._first_reset = False
        return [first] + [None] * (size - 1)

    def _reset(self, seed: int | None) -> list[int]:
        """Reset the env; returns the new episode's context."""
        return self._context(split_observation(self.env.reset(seed=seed))[0])

    def _play(self, context: list[int], ids: list[int]) -> Trajectory:
        """Feed one written prompt to the env (whole, or token by token ending with EOS); returns the episode."""
        text_mode = self.env.action_mode == "text"
        steps: list[Any] = [self._decode(ids)] if text_mode else [*ids, self.eos_id][: len(ids) or 1]
        if not text_mode and steps[-1] != self.eos_id and len(steps) < int(self.env.attr("max_prompt_tokens")):
            steps.append(self.eos_id)  # the agent stopped at its own length limit: end the episode here
        for fed, action in enumerate(steps, start=1):
            _, rewards, dones, finals = self.env.step([action])
            self.num_timesteps += 1
            if dones[0]:
                actions = list(ids) if text_mode else steps[:fed]
                return Trajectory(context, actions or [self.eos_id], float(rewards[0]), dict(finals[0] or {}))
        raise RuntimeError("The environment did not end the episode after the prompt's last token.")

    def start_clock(self) -> None:
        """Start timing a ``learn`` call; :meth:`elapsed` adds it to the time of earlier calls and runs."""
        self.wall_time_s = self.elapsed()
        self._learn_started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of training wall time so far (earlier ``learn`` calls and resumed runs included)."""
        return self.wall_time_s + time.perf_counter() - self._learn_started

    def _finished(self, total_timesteps: int | None, total_updates: int | None) -> bool:
        """Whether ``learn`` has reached ``total_timesteps`` env steps or ``total_updates`` updates."""
        return (total_updates is not None and self.num_updates >= total_updates) or (
            total_timesteps is not None and self.num_timesteps >= total_timesteps)

    def run_updates(
        self, one_update: Callable[[], dict[str, float]], total_timesteps: int | None, total_updates: int | None,
        callback: Any, progress_bar: bool,
    ) -> None:
        """Call ``one_update`` until the totals are reached: the ``learn`` loop of the group-playing agents.

        Callbacks get ``on_training_start``, ``on_update_end`` after every update (returning False
        stops training) and ``on_training_end``; these agents play whole groups of episodes, so
        there is no per-step hook. ``progress_bar`` shows updates with the last mean reward.
        """
        if total_timesteps is None and total_updates is None:
            raise ValueError("Give total_timesteps or total_updates.")
        from tqdm.auto import tqdm

        callback = as_callback(callback)
        callback.init_callback(self)
        callback.on_training_start(locals())
        self.start_clock()
        bar = tqdm(total=total_updates, initial=self.num_updates, disable=not progress_bar,
                   desc=type(self).__name__, unit="update")
        while not self._finished(total_timesteps, total_updates):
            stats = one_update()
            bar.update(1)
            bar.set_postfix(reward=f"{stats.get('rollout/reward', float('nan')):.2f}")
            if not callback.on_update_end():
                break
        bar.close()
        callback.on_training_end()

    # ------------------------------------------------------------------ selection
    def validate(self, prompts: list[str]) -> list[dict[str, Any]]:
        """Score prompts on the task's validation split and offer them to the pool."""
        results = evaluate_prompts(self.env.attr("scorer"), self.env.attr("task"), prompts, split="validation")
        for result in results:
            self.pool.add(result["prompt"], result["accuracy"], result.get("gap", 0.0), self.num_updates)
        return results

    def log_validation(self, stats: dict[str, float]) -> dict[str, float]:
        """Add the best validation accuracy and the budget counters to ``stats``, then record and dump them."""
        stats = dict(stats)
        stats["eval/best_val_accuracy"] = self._best_val()
        stats["time/target_evaluations"] = self._target_evaluations()
        stats["time/updates"] = self.num_updates
        stats["time/timesteps"] = self.num_timesteps
        stats["time/wall_s"] = self.elapsed()
        for key, value in stats.items():
            self.logger.record(key, value)
        self.logger.dump(self.num_updates)
        return stats

    def validation_contexts(self, count: int) -> list[list[int]]:
        """``count`` fixed meta-prompts for measuring the policy, the same at every check of a run.

        They are drawn from the env's episode sampler (demonstrations from the validation split) with
        a generator of their own, seeded by ``config.seed``, so they do not disturb the training stream.
        """
        rng = np.random.default_rng([self.config.seed, VALIDATION_STREAM])
        sampler = self.env.attr("sampler")
        return [list(sampler.sample(rng).meta_ids) for _ in range(count)]

    def policy_accuracy(self, count: int, adapter: str = POLICY) -> tuple[float, list[dict[str, Any]]]:
        """The policy's own accuracy: the mean validation accuracy of ``count`` prompts it samples.

        One prompt is sampled (at the config's temperature) from each of the fixed
        :meth:`validation_contexts` and scored on the whole validation split; the prompts also go
        to the pool. This measures the policy, not the best prompt found so far.

        Returns:
            ``(mean accuracy, per-prompt results)``.
        """
        written = self.write_prompts(self.validation_contexts(count), adapter=adapter)
        results = self.validate([text for text, _ in written])
        accuracy = float(np.mean([r["accuracy"] for r in results]))
        if adapter == POLICY:
            self.policy_acc = accuracy
        return accuracy, results

    def selection_evaluations(self) -> int:
        """Most target evaluations :meth:`select_prompt` can spend (reserve this much of a budget)."""
        return (1 + self.config.final_samples) * len(self.env.attr("task").split("validation"))

    def select_prompt(self) -> dict[str, Any]:
        """Validate the greedy prompt and ``final_samples`` sampled ones, then return the pool's best.

        The choice uses the validation split only; report its test accuracy separately.
        """
        context = self._last_context
        if context is None:
            context = self.env.attr("sampler").sample(np.random.default_rng(self.config.seed)).meta_ids
        written = self.write_prompts([context], deterministic=True)
        if self.config.final_samples:
            written += self.write_prompts([context] * self.config.final_samples)
        self.validate([text for text, _ in written])
        return dict(self.pool.best())

    def _best_val(self) -> float:
        best = self.pool.best()
        return best["val_accuracy"] if best else float("nan")

    def _target_evaluations(self) -> int:
        """Evaluations the env's target(s) made so far (summed over the distinct scorers of a vector env)."""
        env = self.env
        if env.is_vector and hasattr(env.env, "get_attr") and not hasattr(env.env.unwrapped, "scorer"):
            scorers = {id(s): s for s in env.env.get_attr("scorer")}.values()
            return int(sum(s.num_evaluations for s in scorers))
        return int(env.attr("scorer").num_evaluations)
