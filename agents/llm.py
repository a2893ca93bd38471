"""What every LLM prompt-writing agent shares: acting, playing whole episodes, the learn loop.

:class:`LLMPromptAgent` holds the agent LLM as a :class:`~prompt_gym.agents.lora_policy.LoRAPolicy`
(LoRA ``default`` = the policy, ``anchor`` = a frozen copy of the starting policy) and samples with
a :class:`~prompt_gym.agents.decoding.Decoder`. APPO, the baselines and the group policy gradient
all build on it, so they write, validate and select prompts the same way. A subclass implements
:meth:`~LLMPromptAgent.learning_step` (one update); :meth:`~LLMPromptAgent.learn` runs the loop
around it (callbacks, progress bar, totals).

:meth:`~LLMPromptAgent.play_group` plays whole episodes (APPO can run the ``predict``/``step`` loop
instead): it writes a batch of prompts for one meta-prompt in one batched generation, feeds each
to the env (token by token, or whole in text mode) and reads the reward. ``reset(seed=s)`` with one
``s`` shows the same meta-prompt and reward batch (the env's determinism contract): that is how a
group of prompts is judged on the same examples.
"""

from __future__ import annotations

import abc
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from tqdm.auto import tqdm

from prompt_gym import checkpoint as ckpt
from prompt_gym.agents.configs import LLMAgentConfig, ModelConfig
from prompt_gym.agents.decoding import Decoder
from prompt_gym.agents.lora_policy import POLICY, LoRAPolicy
from prompt_gym.agents.pool import PromptPool
from prompt_gym.agents.rollout import EnvAdapter, Trajectory, is_batched, split_observation
from prompt_gym.agents.selection import SelectingAgent
from prompt_gym.agents.training_state import check_same_config, read_training_state, write_training_state
from prompt_gym.callbacks import Callback, as_callback
from prompt_gym.logging import Logger
from prompt_gym.meta_prompts import has_chat_template
from prompt_gym.models import padding_id, shared_causal_lm

VALIDATION_STREAM = 7919
"""Second seed word of the generator behind :meth:`LLMPromptAgent.validation_contexts`."""


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global generator and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LLMPromptAgent(SelectingAgent):
    """Base class of agents that write prompts with an LLM.

    Args:
        env: A prompt-gym env (token or text mode; a SAME_STEP vector env where the subclass sets
            :attr:`accepts_vector_env`), or ``None`` to act only.
        config: The agent's settings (an :class:`~prompt_gym.agents.configs.LLMAgentConfig` subclass).
        model_config: Model and LoRA settings.
        model: A loaded causal LM without adapters (changed in place: LoRA layers are added);
            loaded from ``model_config.model`` when ``None``. Pass the env target's model to share
            one copy of the weights.
        tokenizer: The model's tokenizer (required with ``model``); must be the env's tokenizer.
        logger: Where metrics go; in memory by default.

    Saving writes ``agent.json`` (configs, counters, the pool and :meth:`saved_state`) and, when
    :attr:`trains_policy`, the policy adapter; a checkpoint adds the training state
    (:mod:`~prompt_gym.agents.training_state`) with :meth:`checkpoint_state`. APPO keeps its own layout.

    Attributes:
        optimizer: The torch optimizer of the trained parameters (``None``: the agent does not train).
        scheduler: Its learning-rate scheduler, if any.
        config_class: The config dataclass :meth:`load` rebuilds from ``agent.json``.
        trains_policy: Whether the agent trains the policy adapter (and so saves it).
        accepts_vector_env: Whether the agent trains on a vector env (``False``: one env at a time).
        policy_acc: The last ``eval/policy_accuracy`` measured (``nan`` before the first).
    """

    name = "llm"
    config_class: ClassVar[type[LLMAgentConfig]] = LLMAgentConfig
    trains_policy: ClassVar[bool] = True
    accepts_vector_env: ClassVar[bool] = False
    supports_checkpoints = True
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None

    def __init__(
        self, env: Any, config: LLMAgentConfig, model_config: ModelConfig | None = None, model: Any = None,
        tokenizer: Any = None, logger: Logger | None = None,
    ) -> None:
        self.config = config
        self.model_config = model_config or ModelConfig()
        seed_everything(config.seed)
        if model is None:
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
        self.policy = LoRAPolicy(model, self.model_config)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = padding_id(tokenizer)
        self.decoder = Decoder(self.policy, self.pad_id, config.temperature)
        self.rng = np.random.default_rng(config.seed)
        self.pool = PromptPool(config.pool_size)
        self.logger = logger or Logger()
        self.num_updates = self.num_timesteps = 0
        self._first_reset = True
        self._last_context: list[int] | None = None
        self._generated: dict[int, tuple[str, list[int]]] = {}  # text-mode predict's (text, ids) by row
        self.policy_acc = float("nan")

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
        if same_meta_prompt:  # every episode is judged on this reward batch: score the prompts in one target call
            text_mode = self.env.action_mode == "text"
            self.env.judge_ahead([text if text_mode else ids for text, ids in written])
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

    # ------------------------------------------------------------------ learning
    def learn(
        self, total_timesteps: int | None = None, total_updates: int | None = None, callback: Any = None,
        progress_bar: bool = False,
    ) -> LLMPromptAgent:
        """Run :meth:`learning_step` until ``total_timesteps`` env steps or ``total_updates`` updates.

        Totals count from the agent's creation (a resumed agent continues its count). A fresh agent
        first runs :meth:`measure_start` (update 0). Callbacks get ``on_training_start``,
        ``on_update_end`` after every update (returning ``False`` stops training) and
        ``on_training_end``; the per-step hooks are the subclass's (see :meth:`learning_step`).
        ``progress_bar`` shows updates with :meth:`progress`.

        Returns:
            ``self``.
        """
        if self.env is None:
            raise ValueError(f"learn() needs an environment: {type(self).__name__}(env, ...) or "
                             f"{type(self).__name__}.load(path, env=env).")
        if total_timesteps is None and total_updates is None:
            raise ValueError("Give total_timesteps or total_updates.")
        self.prepare_learning(total_timesteps, total_updates)
        callback = as_callback(callback)
        callback.init_callback(self)
        callback.on_training_start(locals())
        self.start_clock()
        bar = tqdm(total=total_updates, initial=self.num_updates, disable=not progress_bar,
                   desc=type(self).__name__, unit="update")
        if self.num_updates == 0 and not self.logger.history:
            self.measure_start()
        while not self._finished(total_timesteps, total_updates):
            stats = self.learning_step(callback)
            if stats is None:
                break
            bar.update(1)
            bar.set_postfix(self.progress(stats))
            if not callback.on_update_end():
                break
        bar.close()
        callback.on_training_end()
        return self

    def prepare_learning(self, total_timesteps: int | None, total_updates: int | None) -> None:
        """Check and note the totals before training starts (nothing by default)."""

    def measure_start(self) -> None:
        """Measure the starting policy before the first update of a fresh agent (nothing by default)."""

    @abc.abstractmethod
    def learning_step(self, callback: Callback) -> dict[str, float] | None:
        """Collect experience and do one update (``num_updates`` grows by one); returns the update's statistics.

        Args:
            callback: The training callback; call its ``on_step`` (and ``update_locals``) after env
                steps, ``on_rollout_end`` before the update. ``on_update_end`` is :meth:`learn`'s.

        Returns:
            The statistics (``rollout/reward`` at least), or ``None`` when the callback stopped
            training before the update.
        """

    def progress(self, stats: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows after an update (the mean reward by default)."""
        return {"reward": f"{stats.get('rollout/reward', float('nan')):.2f}"}

    def _finished(self, total_timesteps: int | None, total_updates: int | None) -> bool:
        """Whether ``learn`` has reached ``total_timesteps`` env steps or ``total_updates`` updates."""
        return (total_updates is not None and self.num_updates >= total_updates) or (
            total_timesteps is not None and self.num_timesteps >= total_timesteps)

    # ------------------------------------------------------------------ selection
    def validation_contexts(self, count: int) -> list[list[int]]:
        """``count`` fixed meta-prompts for measuring the policy, the same at every check of a run.

        They are drawn from the env's episode sampler (demonstrations from the validation split) with
        a generator of their own, seeded by ``config.seed``, so they do not disturb the training stream.
        """
        rng = np.random.default_rng([self.config.seed, VALIDATION_STREAM])
        sampler = self.env.attr("sampler")
        return [list(sampler.sample(rng).meta_ids) for _ in range(count)]

    def policy_accuracy(
        self, count: int, adapter: str = POLICY, pool: bool = True
    ) -> tuple[float, list[dict[str, Any]]]:
        """The policy's own accuracy: the mean validation accuracy of ``count`` prompts it samples.

        One prompt is sampled (at the config's temperature) from each of the fixed
        :meth:`validation_contexts` and scored on the whole validation split; with ``pool`` the
        prompts also go to the pool. This measures the policy, not the best prompt found so far.

        Returns:
            ``(mean accuracy, per-prompt results)``.
        """
        written = self.write_prompts(self.validation_contexts(count), adapter=adapter)
        results = self.validate([text for text, _ in written], pool=pool)
        accuracy = float(np.mean([r["accuracy"] for r in results]))
        if adapter == POLICY:
            self.policy_acc = accuracy
        return accuracy, results

    def selection_candidates(self) -> list[str]:
        """The greedy prompt and ``final_samples`` sampled ones, for the last meta-prompt seen in training."""
        context = self._last_context
        if context is None:
            context = self.env.attr("sampler").sample(np.random.default_rng(self.config.seed)).meta_ids
        written = self.write_prompts([context], deterministic=True)
        if self.config.final_samples:
            written += self.write_prompts([context] * self.config.final_samples)
        return [text for text, _ in written]

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path) -> None:
        """Write ``agent.json`` (configs, counters, :meth:`saved_state`, pool) and the policy adapter into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.trains_policy:
            self.policy.model.save_pretrained(path / "adapters", selected_adapters=[POLICY])
        ckpt.save_json(path / "agent.json", {
            "agent": self.name, "config": asdict(self.config), "model_config": asdict(self.model_config),
            "num_updates": self.num_updates, "num_timesteps": self.num_timesteps, **self.saved_state(),
            "pool": self.pool.to_list()})

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any) -> LLMPromptAgent:
        """Rebuild a saved agent (``model=``/``tokenizer=`` pass the base LLM instead of loading the saved spec)."""
        path = Path(path)
        meta = ckpt.load_json(path / "agent.json")
        agent = cls(env, cls.config_class(**meta["config"]), ModelConfig(**meta["model_config"]), **kwargs)
        agent._restore(path, meta)
        return agent

    def _restore(self, path: Path, meta: dict[str, Any]) -> None:
        """Load the policy adapter, counters, pool and saved state that :meth:`save` wrote into ``path``."""
        if self.trains_policy:
            weights = load_file(str(path / "adapters" / "adapter_model.safetensors"), device=str(self.policy.device))
            set_peft_model_state_dict(self.policy.model, weights, adapter_name=POLICY)
        self.num_updates, self.num_timesteps = int(meta["num_updates"]), int(meta["num_timesteps"])
        self.pool = PromptPool.from_list(meta["pool"], self.config.pool_size)
        self.restore_saved_state(meta)

    def saved_state(self) -> dict[str, Any]:
        """What the subclass adds to ``agent.json`` (JSON-ready; nothing by default)."""
        return {}

    def restore_saved_state(self, meta: dict[str, Any]) -> None:
        """Restore what :meth:`saved_state` wrote (``meta`` is the whole ``agent.json``)."""

    def checkpoint_state(self) -> dict[str, Any]:
        """What the subclass adds to a checkpoint's ``state.json`` (JSON-ready; nothing by default)."""
        return {}

    def restore_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`checkpoint_state` wrote (``state`` is the whole ``state.json``)."""

    def save_checkpoint(self, root: str | Path) -> Path:
        """Write a resumable checkpoint (:meth:`save`, optimizer, RNGs, counters) under ``root``; returns its folder."""
        def write(folder: Path) -> None:
            self.save(folder / "agent")
            write_training_state(self, folder, self.checkpoint_state())

        return ckpt.save_checkpoint(root, self.num_updates, write)

    def load_checkpoint(self, root: str | Path) -> Path:
        """Restore the newest verified checkpoint under ``root`` (or that step folder) into this agent.

        Raises:
            prompt_gym.checkpoint.CheckpointError: It was written with a different configuration.
        """
        path = ckpt.latest_checkpoint(root)
        meta = ckpt.load_json(path / "agent" / "agent.json")
        check_same_config(self, meta, path)
        self._restore(path / "agent", meta)
        self.restore_checkpoint_state(read_training_state(self, path))
        return path
