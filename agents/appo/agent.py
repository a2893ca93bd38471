"""The StablePrompt agent: an LLM policy with LoRA, trained by APPO.

APPO is PPO whose KL reference is an *anchor*: a frozen copy of the policy that moves only after
validated progress (see ``docs/appo.md``, "The algorithm, as implemented"). Each update:

1. collect ``batch_size`` episodes (prompts) with the current policy (on a single env, all written
   for one meta-prompt and judged on one reward batch: ``shared_meta_prompt``);
2. add the ``elite_replay`` best episodes so far (self-imitation; 0 is the paper's on-policy PPO);
3. advantages: critic-free (``advantage="batch"``: return-to-go, KL penalty to the anchor included,
   minus the fresh episodes' mean return) or GAE with a value head (``"critic"``, the paper's);
4. ``ppo_epochs`` passes of the clipped surrogate (+ the clipped value loss with a critic), at the
   sampling temperature and without dropout, so the ratio is exactly 1 for unchanged weights;
5. at update 0 and every ``anchor_check_interval`` updates, measure the policy's own accuracy
   (``anchor_samples`` prompts from fixed validation meta-prompts, each scored on the whole
   **validation** split) against the anchor's pooled estimate: promote (anchor <- policy) when
   the policy is better by more than ``anchor_threshold``, roll back (policy <- anchor, optimizer
   state cleared) when it is worse by more than that.

Unlike the paper's public code, the anchor really is the KL reference, promotion copies weights
(no aliasing), rollback keeps the optimizer attached to the trained parameters, and prompts are
selected on validation only. Writing, validating and selecting prompts, the learn loop and the
LoRA policy come from :class:`~prompt_gym.agents.llm.LLMPromptAgent`, shared with the other LLM agents.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prompt_gym import checkpoint as ckpt
from prompt_gym.agents.appo import loss as L
from prompt_gym.agents.appo.config import APPOConfig
from prompt_gym.agents.appo.persistence import load_agent, read_checkpoint, save_agent, write_checkpoint
from prompt_gym.agents.configs import ModelConfig
from prompt_gym.agents.llm import LLMPromptAgent
from prompt_gym.agents.lora_policy import ANCHOR, POLICY, masked_mean
from prompt_gym.agents.rollout import Trajectory, final_infos, is_batched, split_observation
from prompt_gym.agents.selection import best_unvalidated
from prompt_gym.budget import BudgetExhausted
from prompt_gym.callbacks import Callback
from prompt_gym.logging import Logger


class APPOAgent(LLMPromptAgent):
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

    name = "appo"
    accepts_vector_env = True
    supports_checkpoints = True

    def __init__(
        self, env: Any = None, config: APPOConfig | None = None, model_config: ModelConfig | None = None,
        model: Any = None, tokenizer: Any = None, logger: Logger | None = None,
    ) -> None:
        if model_config is not None and model_config.lora_dropout > 0:
            raise ValueError(
                f"APPO needs lora_dropout=0 (got {model_config.lora_dropout}): PPO's ratio compares the log-probs "
                "of two passes, and dropout would make it differ from 1 for unchanged weights."
            )
        super().__init__(env, config or APPOConfig(), model_config, model, tokenizer, logger)
        self.optimizer = torch.optim.Adam(self.policy.trainable_parameters(), lr=self.config.learning_rate)
        self._lr_horizon: int | None = None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: self._lr_factor(step))
        self.promotions = self.rollbacks = 0
        self.anchor_scores: list[float] = []  # validation accuracies of anchor samples since the anchor last changed
        self.elites: list[Trajectory] = []  # the best episodes so far, replayed when config.elite_replay > 0
        self.screened: list[tuple[float, str]] = []  # selection="screened": (reward, prompt) of every training episode
        self.screened_at_check = 0  # ... how many of them the last anchor check had seen
        self.validated: set[str] = set()  # ... prompts validated for the pool so far
        self.last_stats: dict[str, float] = {}
        self._buffer: list[Trajectory] = []
        self._current: dict[int, Trajectory] = {}

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
                trajectory = Trajectory(self._context(row))
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
    def prepare_learning(self, total_timesteps: int | None, total_updates: int | None) -> None:
        """Refuse settings that cannot train on this env; note the learning-rate schedule's length.

        Each update starts from a fresh ``env.reset`` (seeded with ``config.seed`` before the first
        update), runs ``predict``/``step``/``remember`` until a batch is full, then calls :meth:`update`
        (see :meth:`learning_step`).
        """
        if self.config.shared_meta_prompt is True and self.env.is_vector:
            raise ValueError("shared_meta_prompt writes each update's prompts for one meta-prompt on a single env; "
                             "pass gym.make(...) instead of a vector env, or set shared_meta_prompt=False.")
        if self.config.anneal_lr and total_updates is None:
            raise ValueError("anneal_lr needs total_updates (the schedule's length).")
        self._lr_horizon = total_updates

    def learning_step(self, callback: Callback) -> dict[str, float] | None:
        """Collect a batch (one shared meta-prompt, or ``predict``/``step``), then :meth:`update`."""
        if self._shares_meta_prompt():
            self._buffer = self.play_group(self.config.batch_size, same_meta_prompt=True)
            keep_going = callback.on_step()
        else:
            keep_going = self._collect(callback)
        if not keep_going:
            return None
        callback.on_rollout_end()
        return self.update()

    def progress(self, stats: dict[str, float]) -> dict[str, str]:
        """The progress bar's reward, policy accuracy and best validation accuracy."""
        return {"reward": f"{stats['rollout/reward']:.2f}", "policy_acc": f"{self.policy_acc:.3f}",
                "best_val": f"{self.best_val_accuracy():.3f}"}

    def _shares_meta_prompt(self) -> bool:
        """Whether each update's prompts are written for one meta-prompt (``config.shared_meta_prompt``)."""
        if self.config.shared_meta_prompt is None:
            return self.env is not None and not self.env.is_vector
        return self.config.shared_meta_prompt

    def _collect(self, callback: Any) -> bool:
        """Run ``predict``/``step`` from a fresh reset until a batch is full; returns what ``on_step`` said.

        Finished episodes beyond the last batch (their target evaluations are paid) stay in the
        buffer and open the next batch; only unfinished ones, which cost no evaluation yet, are
        dropped by the reset.
        """
        observation = self.env.reset(seed=self.config.seed if self.num_updates == 0 else None)
        state, self._current = None, {}
        keep_going = True
        while keep_going and not self.batch_ready:
            action, state = self.predict(observation, state)
            actions = list(action) if self.env.is_vector else [action]
            next_observation, rewards, dones, finals = self.env.step(actions)
            self._record(split_observation(observation), actions, rewards, dones, finals)
            self.num_timesteps += self.env.num_envs
            observation = next_observation
            callback.update_locals(locals())
            keep_going = callback.on_step()
        return keep_going

    def measure_start(self) -> None:
        """Measure the starting policy (update 0) as every later check will; it is also the anchor's first estimate."""
        accuracy, results = self.policy_accuracy(self.config.anchor_samples, pool=not self._screens())
        if not self.config.fixed_reference:
            self.anchor_scores = [r["accuracy"] for r in results]
        self._log_update({"eval/policy_accuracy": accuracy, "eval/best_val_accuracy": self.best_val_accuracy(),
                          "time/updates": 0, "time/timesteps": self.num_timesteps})

    def _lr_factor(self, step: int) -> float:
        if not self.config.anneal_lr or not self._lr_horizon:
            return 1.0
        return max(0.0, 1.0 - step / self._lr_horizon)

    def update(self) -> dict[str, float]:
        """One APPO update on the oldest ``batch_size`` finished episodes, then the anchor check when due.

        Raises:
            BudgetExhausted: A target budget refused the anchor check's validation (re-raised after
                the update, which did happen, is logged).
        """
        if not self.batch_ready:
            raise RuntimeError(f"update() needs {self.config.batch_size} finished episodes, have {len(self._buffer)}.")
        batch, self._buffer = self._buffer[: self.config.batch_size], self._buffer[self.config.batch_size :]
        replayed = self._replayed(batch)
        stats = self._ppo_update(batch + replayed, fresh=len(batch))
        self._keep_elites(batch)
        if self._screens():
            self.screened += [(t.reward, self._decode(t.actions)) for t in batch]
        self.num_updates += 1
        self.scheduler.step()
        self._last_context = batch[-1].context
        stats |= {
            "rollout/reward": float(np.mean([t.reward for t in batch])),
            "rollout/prompt_tokens": float(np.mean([len(t.actions) for t in batch])),
            "train/replayed_episodes": len(replayed),
            "train/learning_rate": self.optimizer.param_groups[0]["lr"],
            "time/updates": self.num_updates,
            "time/timesteps": self.num_timesteps,
        }
        if all("accuracy" in t.info for t in batch):
            stats["rollout/accuracy"] = float(np.mean([t.info["accuracy"] for t in batch]))
        if self.num_updates % self.config.anchor_check_interval == 0:
            try:
                stats |= self.anchor_check()
            except BudgetExhausted:  # the budget refused the check's validation: still log the update done
                self._log_update(stats)
                raise
        self._log_update(stats)
        return stats

    def _replayed(self, batch: list[Trajectory]) -> list[Trajectory]:
        """The elites to train on with ``batch``: best first, none that ``batch`` already holds.

        With ``shared_meta_prompt`` they are replayed on the batch's meta-prompt (a prompt's reward
        does not depend on the meta-prompt it was written from), so every row shares one context.
        """
        fresh = {tuple(t.actions) for t in batch}
        chosen = [t for t in self.elites if tuple(t.actions) not in fresh][: self.config.elite_replay]
        if self._shares_meta_prompt():
            return [Trajectory(list(batch[0].context), list(t.actions), t.reward) for t in chosen]
        return chosen

    def _keep_elites(self, batch: list[Trajectory]) -> None:
        """Keep the ``elite_replay`` highest-reward episodes seen so far, one per distinct prompt."""
        if not self.config.elite_replay:
            return
        seen: set[tuple[int, ...]] = set()
        elites = []
        for trajectory in sorted(self.elites + batch, key=lambda t: -t.reward):
            if tuple(trajectory.actions) not in seen:
                seen.add(tuple(trajectory.actions))
                elites.append(Trajectory(list(trajectory.context), list(trajectory.actions), trajectory.reward))
        self.elites = elites[: self.config.elite_replay]

    def _log_update(self, stats: dict[str, float]) -> None:
        self.last_stats = self.log_record(stats)

    def _ppo_update(self, batch: list[Trajectory], fresh: int) -> dict[str, float]:
        """PPO passes over ``batch``: its first ``fresh`` episodes were just played, the rest are replayed elites.

        When a minibatch is the whole batch (the default), the first epoch's forward pass also gives
        the old log-probs (same weights, same rows, no dropout: the ratio is exactly 1 there), so the
        policy runs one forward pass fewer per update; without a critic the policy's gradient norm is
        read from the gradients the step computes anyway instead of from an extra backward pass.
        """
        cfg, policy = self.config, self.policy
        contexts, actions = [t.context for t in batch], [t.actions for t in batch]
        device = policy.device
        # every pass runs in eval mode (no dropout): the ratio is exactly 1 for unchanged weights
        policy.eval()
        first_pass = None
        if self._first_pass_gives_old_logprobs(len(batch)):
            first_pass = policy.sequence_logprobs(contexts, actions, self.pad_id, cfg.temperature, with_entropy=True)
        with torch.no_grad():
            if first_pass is None:
                old_logprobs, old_values, mask = policy.sequence_logprobs(contexts, actions, self.pad_id,
                                                                          cfg.temperature)
            else:
                old_logprobs, old_values, mask = first_pass[0].detach(), first_pass[1].detach(), first_pass[2]
            with policy.use_adapter(ANCHOR):
                anchor_logprobs, _, _ = policy.sequence_logprobs(contexts, actions, self.pad_id, cfg.temperature)
            kl = L.kl_to_anchor(old_logprobs, anchor_logprobs) * mask
            scores = torch.tensor([t.reward for t in batch], device=device, dtype=torch.float32)
            if cfg.advantage == "critic":
                rewards = L.token_rewards(scores, kl, mask, cfg.kl_coef)
                advantages, returns = L.gae(rewards, old_values, mask, cfg.gamma, cfg.gae_lambda)
            else:
                advantages, returns = L.batch_advantages(scores, kl, mask, cfg.kl_coef, baseline_rows=fresh), None
            if cfg.whiten_advantages:
                advantages = L.whiten(advantages, mask)
        totals: dict[str, float] = {}
        measured = steps = 0
        minibatches = [rows for _ in range(cfg.ppo_epochs)
                       for rows in torch.randperm(len(batch)).split(cfg.minibatch_size or len(batch))]
        for rows in minibatches:
            if first_pass is not None:  # the whole batch in its own order: the loss is a mean over rows
                index = list(range(len(batch)))
                logprobs, values, mb_mask, entropy = first_pass
                first_pass = None
            else:
                index = rows.tolist()
                logprobs, values, mb_mask, entropy = policy.sequence_logprobs(
                    [contexts[i] for i in index], [actions[i] for i in index], self.pad_id, cfg.temperature,
                    with_entropy=True)
            width = mb_mask.shape[1]
            loss, step_stats, value_part = self._loss(
                logprobs, values, old_logprobs[index, :width], old_values[index, :width],
                advantages[index, :width], None if returns is None else returns[index, :width], mb_mask)
            step_stats["entropy"] = float(masked_mean(entropy.detach(), mb_mask))
            if steps == 0 and value_part is not None:
                step_stats |= self._gradient_norms(loss, value_part)
            for key, value in step_stats.items():
                totals[key] = totals.get(key, 0.0) + value
            measured += 1
            if self._kl_too_far(step_stats["approx_kl"]):
                break
            self.optimizer.zero_grad()
            loss.backward()
            if steps == 0 and value_part is None:  # the loss is the policy loss: its gradient is in .grad
                totals["policy_grad_norm"] = self._adapter_grad_norm()
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            steps += 1
        stats = {f"train/{key}": value / measured for key, value in totals.items()}
        for key in ("policy_grad_norm", "value_grad_norm"):  # measured once, on the first minibatch
            if f"train/{key}" in stats:
                stats[f"train/{key}"] *= measured
        stats["train/gradient_steps"] = float(steps)
        stats["anchor/kl"] = float(masked_mean(kl, mask))
        stats["train/kl_share"] = L.kl_share(scores, kl, mask, cfg.kl_coef)
        return stats

    def _kl_too_far(self, approx_kl: float) -> bool:
        """Whether ``config.target_kl`` stops this update's PPO passes (Stable-Baselines3's rule: ``> 1.5 * target_kl``)."""
        return self.config.target_kl is not None and approx_kl > 1.5 * self.config.target_kl

    def _first_pass_gives_old_logprobs(self, batch_size: int) -> bool:
        """Whether the first PPO minibatch is the whole batch, so its forward pass can give the old log-probs."""
        return self.config.minibatch_size is None or self.config.minibatch_size >= batch_size

    def _loss(
        self, logprobs: torch.Tensor, values: torch.Tensor, old_logprobs: torch.Tensor, old_values: torch.Tensor,
        advantages: torch.Tensor, returns: torch.Tensor | None, mask: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor | None]:
        """The minibatch loss, its stats and the weighted value part (``None`` without a critic)."""
        cfg = self.config
        if returns is None:
            loss, stats = L.policy_loss(logprobs, old_logprobs, advantages, mask, cfg.clip_range)
            return loss, stats | {"loss": float(loss.detach())}, None
        p_loss, p_stats = L.policy_loss(logprobs, old_logprobs, advantages, mask, cfg.clip_range)
        v_loss, v_stats = L.value_loss(values, old_values, returns, mask, cfg.clip_range_value)
        value_part = cfg.vf_coef * v_loss
        loss = p_loss + value_part
        return loss, p_stats | v_stats | {"loss": float(loss.detach())}, value_part

    def _gradient_norms(self, loss: torch.Tensor, value_part: torch.Tensor) -> dict[str, float]:
        """Norms of the policy loss's and the (weighted) value loss's gradients on the LoRA adapter (critic only)."""
        adapter = self.policy.adapter_parameters(POLICY)

        def norm(part: torch.Tensor) -> float:
            grads = torch.autograd.grad(part, adapter, retain_graph=True, allow_unused=True)
            return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None) + 0.0))

        return {"policy_grad_norm": norm(loss - value_part), "value_grad_norm": norm(value_part)}

    def _adapter_grad_norm(self) -> float:
        """Norm of the gradient the last backward pass left on the policy's LoRA adapter."""
        grads = [p.grad for p in self.policy.adapter_parameters(POLICY) if p.grad is not None]
        return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads) + 0.0))

    # ------------------------------------------------------------------ anchor
    def anchor_check(self) -> dict[str, float]:
        """Measure the policy on validation; promote or roll back against the anchor (see the module doc).

        ``anchor_samples`` prompts are written by the policy from fixed validation meta-prompts
        (:meth:`~prompt_gym.agents.llm.LLMPromptAgent.validation_contexts`) and scored on the whole
        validation split: their mean is ``eval/policy_accuracy``, the policy's own accuracy. The
        anchor writes as many from the same meta-prompts; its estimate pools every anchor sample
        scored since the anchor last changed, so it sharpens while the anchor stays put. With
        ``fixed_reference`` only the policy is measured. With ``selection="screened"`` these samples
        stay out of the pool, and the ``screen_samples`` best-rewarded training prompts since the
        last check are validated for it instead (``eval/screened_val_accuracy``).
        """
        k, pool = self.config.anchor_samples, not self._screens()
        policy_acc, _ = self.policy_accuracy(k, pool=pool)
        stats = {"eval/policy_accuracy": policy_acc}
        if self._screens():
            since_check = self.screened[self.screened_at_check:]
            self.screened_at_check = len(self.screened)
            chosen = best_unvalidated(since_check, self.config.screen_samples, self.validated)
            screened = self.validate(chosen)
            if screened:
                stats["eval/screened_val_accuracy"] = float(np.mean([r["accuracy"] for r in screened]))
        if not self.config.fixed_reference:
            _, anchor_results = self.policy_accuracy(k, adapter=ANCHOR, pool=pool)
            self.anchor_scores += [r["accuracy"] for r in anchor_results]
            anchor_acc = float(np.mean(self.anchor_scores))
            delta = policy_acc - anchor_acc
            if delta > self.config.anchor_threshold:
                self.promote()
            elif delta < -self.config.anchor_threshold and self.config.rollback:
                self.rollback()
            stats |= {"anchor/anchor_val_accuracy": anchor_acc, "anchor/delta": delta,
                      "anchor/anchor_samples": len(self.anchor_scores)}
        return stats | {"anchor/promotions": self.promotions, "anchor/rollbacks": self.rollbacks,
                        "eval/best_val_accuracy": self.best_val_accuracy()}

    def _screens(self) -> bool:
        """Whether the pool takes only prompts screened on their training reward (``config.selection``)."""
        return self.config.selection == "screened"

    def selection_candidates(self) -> list[str]:
        """``"checks"``: the final policy's greedy and sampled prompts; ``"screened"``: the best-rewarded not yet validated."""
        if self._screens():
            return best_unvalidated(self.screened, 1 + self.config.final_samples, self.validated)
        return super().selection_candidates()

    def promote(self) -> None:
        """Copy the policy into the anchor (the KL ball moves to the validated policy)."""
        self.policy.copy_adapter(POLICY, ANCHOR)
        self.anchor_scores = []
        self.promotions += 1

    def rollback(self) -> None:
        """Copy the anchor into the policy and, by default, clear the optimizer's moments."""
        self.policy.copy_adapter(ANCHOR, POLICY)
        if self.config.reset_optimizer_on_rollback:
            self.optimizer.state.clear()
        self.rollbacks += 1

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the config, both adapters (safetensors via ``save_pretrained``), the value heads and the pool."""
        save_agent(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any) -> APPOAgent:
        """Rebuild a saved agent; ``model=``/``tokenizer=`` pass a loaded base model instead of the saved spec."""
        return load_agent(cls, Path(path), env, **kwargs)

    def save_checkpoint(self, root: str | Path) -> Path:
        """Write a resumable checkpoint (weights, optimizer, scheduler, RNGs, pool, counters) under ``root``."""
        return ckpt.save_checkpoint(root, self.num_updates, lambda folder: write_checkpoint(self, folder))

    def load_checkpoint(self, root: str | Path) -> Path:
        """Restore the newest verified checkpoint under ``root`` into this agent; returns its folder."""
        path = ckpt.latest_checkpoint(root)
        read_checkpoint(self, path)
        return path

    def describe(self) -> dict[str, Any]:
        """Config and counters as JSON-ready data."""
        return {"agent": "appo", "config": asdict(self.config), "model_config": asdict(self.model_config),
                "num_updates": self.num_updates, "num_timesteps": self.num_timesteps,
                "promotions": self.promotions, "rollbacks": self.rollbacks}
