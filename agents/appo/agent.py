"""The StablePrompt agent: an LLM policy with LoRA, trained by APPO.

APPO is PPO whose KL reference is an *anchor*: a frozen copy of the policy that moves only after
validated progress (see ``docs/appo.md`` and the reference digest §2.2). Each update:

1. collect ``batch_size`` episodes (prompts) with the current policy;
2. per-token rewards ``-kl_coef * (log pi - log pi_anchor)`` plus the env reward at the last token;
3. GAE, then ``ppo_epochs`` passes of the clipped surrogate + clipped value loss;
4. every ``anchor_check_interval`` updates, sample ``anchor_samples`` prompts from the policy and
   from the anchor on the same meta-prompt and score both on the **validation** split: promote
   (anchor <- policy) when the policy is better by more than ``anchor_threshold``, roll back
   (policy <- anchor, optimizer state cleared) when it is worse by more than that.

Unlike the paper's public code, the anchor really is the KL reference, promotion copies weights
(no aliasing), rollback keeps the optimizer attached to the trained parameters, and prompts are
selected on validation only.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prompt_gym import checkpoint as ckpt
from prompt_gym.agents.appo import loss as L
from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.agents.appo.generation import Decoder, DecodeState
from prompt_gym.agents.appo.policy import ANCHOR, POLICY, APPOPolicy
from prompt_gym.agents.base import Agent
from prompt_gym.agents.pool import PromptPool
from prompt_gym.agents.rollout import EnvAdapter, Trajectory, final_infos, is_batched, split_observation
from prompt_gym.callbacks import as_callback
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.logging import Logger
from prompt_gym.meta_prompts import has_chat_template


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global generator and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class APPOAgent(Agent):
    """StablePrompt's APPO agent.

    Args:
        env: A prompt-gym env (token or text mode), a SAME_STEP vector env of them, or ``None`` to act only.
        config: Algorithm settings.
        model_config: Model and LoRA settings.
        model: A loaded causal LM (plain, without adapters); loaded from ``model_config.model`` when ``None``.
            Pass the env target's model to share one copy of the weights.
        tokenizer: The model's tokenizer (required with ``model``); must be the env's tokenizer.
        logger: Where metrics go; an in-memory :class:`~prompt_gym.logging.Logger` by default.

    Attributes:
        num_updates: PPO updates done. ``promotions`` / ``rollbacks``: anchor decisions so far.
        pool: The best prompts by validation accuracy.
    """

    def __init__(
        self, env: Any = None, config: APPOConfig | None = None, model_config: ModelConfig | None = None,
        model: Any = None, tokenizer: Any = None, logger: Logger | None = None,
    ) -> None:
        self.config = config or APPOConfig()
        self.model_config = model_config or ModelConfig()
        seed_everything(self.config.seed)
        if model is None:
            from prompt_gym.models import shared_causal_lm

            model, tokenizer = shared_causal_lm(self.model_config.model, dtype=self.model_config.dtype,
                                                device=self.config.device)
        elif tokenizer is None:
            raise ValueError("Pass the model's tokenizer together with the model (tokenizer=...).")
        self.tokenizer = tokenizer
        self.env = EnvAdapter(env) if env is not None else None
        self._check_vocab(model)
        self.policy = APPOPolicy(model, self.model_config)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.decoder = Decoder(self.policy, self.pad_id, self.config.temperature)
        self.optimizer = torch.optim.Adam(self.policy.trainable_parameters(), lr=self.config.learning_rate)
        self._lr_horizon: int | None = None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: self._lr_factor(step))
        self.pool = PromptPool(self.config.pool_size)
        self.logger = logger or Logger()
        self.num_updates = self.num_timesteps = self.promotions = self.rollbacks = 0
        self.last_stats: dict[str, float] = {}
        self._buffer: list[Trajectory] = []
        self._current: dict[int, Trajectory] = {}
        self._generated: dict[int, tuple[str, list[int]]] = {}
        self._last_context: list[int] | None = None

    # ------------------------------------------------------------------ acting
    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]:
        """Next token (token mode, KV cache kept in ``state``) or whole prompt (text mode) per row."""
        rows = split_observation(observation)
        batched = is_batched(observation)
        self.policy.eval()
        if isinstance(rows[0], dict):
            tokens, state = self._next_tokens(rows, state, episode_start, deterministic)
            return (np.asarray(tokens, dtype=np.int64) if batched else tokens[0]), state
        written = self.write_prompts([self._encode(row) for row in rows], deterministic=deterministic)
        self._generated = {i: (text, ids) for i, (text, ids) in enumerate(written)}
        texts = [text for text, _ in written]
        return (tuple(texts) if batched else texts[0]), None

    def _next_tokens(
        self, rows: list[dict[str, np.ndarray]], state: DecodeState | None, episode_start: Any, deterministic: bool
    ) -> tuple[list[int], DecodeState]:
        contexts = [row["input_ids"][row["attention_mask"].astype(bool)].tolist() for row in rows]
        if state is None or len(state.tokens) != len(rows):
            state = self.decoder.prefill(contexts)
        else:
            starts = np.zeros(len(rows), bool) if episode_start is None else np.atleast_1d(episode_start)
            restart = [i for i, c in enumerate(contexts) if starts[i] or c[:-1] != state.tokens[i]]
            feed = [None if i in restart else c[-1] for i, c in enumerate(contexts)]
            if len(restart) < len(rows):
                self.decoder.feed(state, feed)
            if restart:
                self.decoder.restart(state, restart, [contexts[i] for i in restart])
        return self.decoder.sample(state, deterministic), state

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

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=not has_chat_template(self.tokenizer)))

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([t for t in ids if t != self.eos_id], skip_special_tokens=True).strip()

    # ------------------------------------------------------------------ experience
    def remember(self, observation: Any, action: Any, reward: Any, terminated: Any, truncated: Any, info: Any) -> None:
        """Hand one (batched) transition to the agent, exactly as ``env.step`` returned it.

        Finished episodes go into the batch; call :meth:`update` when :attr:`batch_ready`.
        """
        rows = split_observation(observation)
        dones = np.logical_or(np.atleast_1d(terminated), np.atleast_1d(truncated))
        if is_batched(observation):
            finals, actions = final_infos(info, dones), list(action)
        else:
            finals, actions = [info if dones[0] else None], [action]
        self._record(rows, actions, np.atleast_1d(reward), dones, finals)

    def _record(self, rows: list[Any], actions: list[Any], rewards: np.ndarray, dones: np.ndarray,
                finals: list[dict[str, Any] | None]) -> None:
        for i, row in enumerate(rows):
            trajectory = self._current.pop(i, None)
            if trajectory is None:
                context = row["input_ids"][row["attention_mask"].astype(bool)].tolist() if isinstance(row, dict) \
                    else self._encode(row)
                trajectory = Trajectory(context)
            trajectory.actions += self._action_ids(i, actions[i])
            if dones[i]:
                trajectory.reward, trajectory.info = float(rewards[i]), dict(finals[i] or {})
                self._buffer.append(trajectory)
            else:
                self._current[i] = trajectory

    def _action_ids(self, row: int, action: Any) -> list[int]:
        if not isinstance(action, str):
            return [int(action)]
        text, ids = self._generated.get(row, (None, []))
        return list(ids) if text == action else self._encode(action) or [self.eos_id]

    @property
    def batch_ready(self) -> bool:
        """Whether ``batch_size`` episodes have finished since the last update."""
        return len(self._buffer) >= self.config.batch_size

    # ------------------------------------------------------------------ learning
    def learn(
        self, total_timesteps: int | None = None, callback: Any = None, progress_bar: bool = True,
        total_updates: int | None = None,
    ) -> APPOAgent:
        """Train until ``total_timesteps`` env steps or ``total_updates`` updates (totals, counted from the start).

        Each update starts from a fresh ``env.reset`` (seeded with ``config.seed`` before the first
        update), runs ``predict``/``step``/``remember`` until a batch is full, then calls :meth:`update`.
        """
        if self.env is None:
            raise ValueError("learn() needs an environment: APPOAgent(env, ...) or APPOAgent.load(path, env=env).")
        if total_timesteps is None and total_updates is None:
            raise ValueError("Give total_timesteps or total_updates.")
        if self.config.anneal_lr and total_updates is None:
            raise ValueError("anneal_lr needs total_updates (the schedule's length).")
        self._lr_horizon = total_updates
        callback = as_callback(callback)
        callback.init_callback(self)
        callback.on_training_start(locals())
        from tqdm.auto import tqdm

        bar = tqdm(total=total_updates, initial=self.num_updates, disable=not progress_bar, desc="APPO", unit="update")
        keep_going = True
        while keep_going and not self._finished(total_timesteps, total_updates):
            observation = self.env.reset(seed=self.config.seed if self.num_updates == 0 else None)
            state, self._buffer, self._current = None, [], {}
            while keep_going and not self.batch_ready:
                action, state = self.predict(observation, state)
                actions = list(action) if self.env.is_vector else [action]
                next_observation, rewards, dones, finals = self.env.step(actions)
                self._record(split_observation(observation), actions, rewards, dones, finals)
                self.num_timesteps += self.env.num_envs
                observation = next_observation
                callback.update_locals(locals())
                keep_going = callback.on_step()
            if not keep_going:
                break
            callback.on_rollout_end()
            stats = self.update()
            bar.update(1)
            bar.set_postfix(reward=f"{stats['rollout/reward']:.2f}", val_acc=f"{self._best_val():.3f}")
            keep_going = callback.on_update_end()
        bar.close()
        callback.on_training_end()
        return self

    def _finished(self, total_timesteps: int | None, total_updates: int | None) -> bool:
        return (total_updates is not None and self.num_updates >= total_updates) or (
            total_timesteps is not None and self.num_timesteps >= total_timesteps)

    def _lr_factor(self, step: int) -> float:
        if not self.config.anneal_lr or not self._lr_horizon:
            return 1.0
        return max(0.0, 1.0 - step / self._lr_horizon)

    def update(self) -> dict[str, float]:
        """One APPO update on the oldest ``batch_size`` finished episodes, then the anchor check when due."""
        if not self.batch_ready:
            raise RuntimeError(f"update() needs {self.config.batch_size} finished episodes, have {len(self._buffer)}.")
        batch, self._buffer = self._buffer[: self.config.batch_size], self._buffer[self.config.batch_size :]
        stats = self._ppo_update(batch)
        self.num_updates += 1
        self.scheduler.step()
        self._last_context = batch[-1].context
        stats |= {
            "rollout/reward": float(np.mean([t.reward for t in batch])),
            "rollout/prompt_tokens": float(np.mean([len(t.actions) for t in batch])),
            "train/learning_rate": self.optimizer.param_groups[0]["lr"],
            "time/updates": self.num_updates,
            "time/timesteps": self.num_timesteps,
        }
        if all("accuracy" in t.info for t in batch):
            stats["rollout/accuracy"] = float(np.mean([t.info["accuracy"] for t in batch]))
        if self.num_updates % self.config.anchor_check_interval == 0:
            stats |= self.anchor_check(self._last_context)
        stats["time/target_evaluations"] = self._target_evaluations()
        for key, value in stats.items():
            self.logger.record(key, value)
        self.logger.dump(self.num_updates)
        self.last_stats = stats
        return stats

    def _ppo_update(self, batch: list[Trajectory]) -> dict[str, float]:
        cfg, policy = self.config, self.policy
        contexts, actions = [t.context for t in batch], [t.actions for t in batch]
        device = policy.device
        policy.eval()
        with torch.no_grad():
            old_logprobs, old_values, mask = policy.sequence_logprobs(contexts, actions, self.pad_id)
            with policy.use_adapter(ANCHOR):
                anchor_logprobs, _, _ = policy.sequence_logprobs(contexts, actions, self.pad_id)
            kl = L.kl_to_anchor(old_logprobs, anchor_logprobs) * mask
            scores = torch.tensor([t.reward for t in batch], device=device, dtype=torch.float32)
            rewards = L.token_rewards(scores, kl, mask, cfg.kl_coef)
            advantages, returns = L.gae(rewards, old_values, mask, cfg.gamma, cfg.gae_lambda)
            if cfg.whiten_advantages:
                advantages = L.whiten(advantages, mask)
        policy.train()
        totals: dict[str, float] = {}
        steps = 0
        for _ in range(cfg.ppo_epochs):
            for rows in torch.randperm(len(batch)).split(cfg.minibatch_size):
                index = rows.tolist()
                logprobs, values, mb_mask = policy.sequence_logprobs(
                    [contexts[i] for i in index], [actions[i] for i in index], self.pad_id)
                width = mb_mask.shape[1]
                loss, step_stats = L.ppo_loss(
                    logprobs, values, old_logprobs[index, :width], old_values[index, :width],
                    advantages[index, :width], returns[index, :width], mb_mask, cfg.clip_range,
                    cfg.clip_range_value, cfg.vf_coef)
                self.optimizer.zero_grad()
                loss.backward()
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                for key, value in step_stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                steps += 1
        policy.eval()
        stats = {f"train/{key}": value / steps for key, value in totals.items()}
        stats["anchor/kl"] = float(L.masked_mean(kl, mask))
        return stats

    # ------------------------------------------------------------------ anchor
    def anchor_check(self, context: list[int]) -> dict[str, float]:
        """Score k policy and k anchor prompts on validation; promote or roll back (see the module doc).

        With ``fixed_reference`` only the policy's prompts are scored (for the log and the pool).
        """
        k = self.config.anchor_samples
        written = self.write_prompts([context] * k)
        if not self.config.fixed_reference:
            written += self.write_prompts([context] * k, adapter=ANCHOR)
        results = self.validate([text for text, _ in written])
        policy_acc = float(np.mean([r["accuracy"] for r in results[:k]]))
        stats = {"eval/val_accuracy": policy_acc}
        if not self.config.fixed_reference:
            anchor_acc = float(np.mean([r["accuracy"] for r in results[k:]]))
            delta = policy_acc - anchor_acc
            if delta > self.config.anchor_threshold:
                self.promote()
            elif delta < -self.config.anchor_threshold and self.config.rollback:
                self.rollback()
            stats |= {"anchor/policy_val_accuracy": policy_acc, "anchor/anchor_val_accuracy": anchor_acc,
                      "anchor/delta": delta}
        return stats | {"anchor/promotions": self.promotions, "anchor/rollbacks": self.rollbacks,
                        "eval/best_val_accuracy": self._best_val()}

    def promote(self) -> None:
        """Copy the policy into the anchor (the KL ball moves to the validated policy)."""
        self.policy.copy_adapter(POLICY, ANCHOR)
        self.promotions += 1

    def rollback(self) -> None:
        """Copy the anchor into the policy and, by default, clear the optimizer's moments."""
        self.policy.copy_adapter(ANCHOR, POLICY)
        if self.config.reset_optimizer_on_rollback:
            self.optimizer.state.clear()
        self.rollbacks += 1

    def validate(self, prompts: list[str]) -> list[dict[str, Any]]:
        """Score prompts on the task's validation split and offer them to the pool."""
        results = evaluate_prompts(self.env.attr("scorer"), self.env.attr("task"), prompts, split="validation")
        for result in results:
            self.pool.add(result["prompt"], result["accuracy"], result["gap"], self.num_updates)
        return results

    def select_prompt(self) -> dict[str, Any]:
        """Sample ``final_samples`` prompts (plus the greedy one) from the policy, validate them, return the pool's best.

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
        env = self.env
        if env.is_vector and hasattr(env.env, "get_attr") and not hasattr(env.env.unwrapped, "scorer"):
            scorers = {id(s): s for s in env.env.get_attr("scorer")}.values()
            return int(sum(s.num_evaluations for s in scorers))
        return int(env.attr("scorer").num_evaluations)

    def _max_prompt_tokens(self) -> int:
        if self.config.max_prompt_tokens is not None:
            return self.config.max_prompt_tokens
        if self.env is not None:
            return int(self.env.attr("max_prompt_tokens"))
        raise ValueError("Set APPOConfig.max_prompt_tokens (the agent has no env to read it from).")

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

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the config, both adapters (safetensors via ``save_pretrained``), the value heads and the pool."""
        from prompt_gym.agents.appo.persistence import save_agent

        save_agent(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any) -> APPOAgent:
        """Rebuild a saved agent; ``model=``/``tokenizer=`` pass a loaded base model instead of the saved spec."""
        from prompt_gym.agents.appo.persistence import load_agent

        return load_agent(cls, Path(path), env, **kwargs)

    def save_checkpoint(self, root: str | Path) -> Path:
        """Write a resumable checkpoint (weights, optimizer, scheduler, RNGs, pool, counters) under ``root``."""
        from prompt_gym.agents.appo.persistence import write_checkpoint

        return ckpt.save_checkpoint(root, self.num_updates, lambda folder: write_checkpoint(self, folder))

    def load_checkpoint(self, root: str | Path) -> Path:
        """Restore the newest verified checkpoint under ``root`` into this agent; returns its folder."""
        from prompt_gym.agents.appo.persistence import read_checkpoint

        path = ckpt.latest_checkpoint(root)
        read_checkpoint(self, path)
        return path

    def describe(self) -> dict[str, Any]:
        """Config and counters as JSON-ready data."""
        return {"agent": "appo", "config": asdict(self.config), "model_config": asdict(self.model_config),
                "num_updates": self.num_updates, "num_timesteps": self.num_timesteps,
                "promotions": self.promotions, "rollbacks": self.rollbacks}
