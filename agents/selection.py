"""Validating prompts, keeping the best ones and choosing the final prompt: one implementation for every agent.

:class:`SelectingAgent` is the base of the agents that select prompts (the LLM agents, the SB3
bridge, the manual baseline). It scores prompts on the task's **validation** split only, offers
them to the :class:`~prompt_gym.agents.pool.PromptPool`, and is the one place that logs validation
(``eval/val_accuracy``, ``eval/best_val_accuracy``, ``time/target_evaluations`` and the counters).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from prompt_gym.agents.base import Agent
from prompt_gym.agents.configs import SelectionConfig
from prompt_gym.agents.pool import PromptPool
from prompt_gym.agents.rollout import EnvAdapter
from prompt_gym.calibration import extra_evaluations_per_prompt
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.logging import Logger


def mean_accuracy(results: list[dict[str, Any]]) -> dict[str, float]:
    """``eval/val_accuracy``: the mean validation accuracy of the prompts just validated (none: nothing)."""
    return {"eval/val_accuracy": float(np.mean([r["accuracy"] for r in results]))} if results else {}


def best_unvalidated(scored: list[tuple[float, str]], count: int, validated: set[str]) -> list[str]:
    """The ``count`` best-rewarded distinct prompts of ``scored`` (``(reward, prompt)``) not in ``validated``.

    Screening on the training reward before validating: what random search (and APPO with
    ``selection="screened"``) validates. The chosen prompts are added to ``validated``.
    """
    chosen: list[str] = []
    for _, prompt in sorted(scored, key=lambda item: -item[0]):
        if len(chosen) == count:
            break
        if prompt not in validated and prompt not in chosen:
            chosen.append(prompt)
    validated.update(chosen)
    return chosen


class SelectingAgent(Agent):
    """An :class:`~prompt_gym.agents.base.Agent` that validates prompts, keeps a pool and selects from it.

    A subclass sets ``config`` (a :class:`~prompt_gym.agents.configs.SelectionConfig`), ``env``
    (an :class:`~prompt_gym.agents.rollout.EnvAdapter`), ``pool`` and ``logger``, and implements
    :meth:`selection_candidates`.

    Attributes:
        log_selection: Whether :meth:`select_prompt` logs the validation it runs (the agents whose
            log would otherwise hold no validation: the manual prompt and random search).
    """

    config: SelectionConfig
    env: EnvAdapter | None
    pool: PromptPool
    logger: Logger
    log_selection: ClassVar[bool] = False

    def validate(self, prompts: list[str], pool: bool = True) -> list[dict[str, Any]]:
        """Score prompts on the task's validation split; offer them to the pool (found at this update) if ``pool``."""
        if not prompts:
            return []
        results = evaluate_prompts(self.env.attr("scorer"), self.env.attr("task"), prompts, split="validation")
        for result in results if pool else ():
            self.pool.add(result["prompt"], result["accuracy"], result.get("gap", 0.0), self.num_updates)
        return results

    def log_record(self, stats: dict[str, float]) -> dict[str, float]:
        """Add ``time/target_evaluations`` and ``time/wall_s`` to ``stats``; record and dump them at this update."""
        stats = dict(stats) | {"time/target_evaluations": self.env.target_evaluations(), "time/wall_s": self.elapsed()}
        for key, value in stats.items():
            self.logger.record(key, value)
        self.logger.dump(self.num_updates)
        return stats

    def log_validation(self, stats: dict[str, float]) -> dict[str, float]:
        """Log ``stats`` of a validation check with the best validation accuracy so far and the counters."""
        return self.log_record(dict(stats) | {"eval/best_val_accuracy": self.best_val_accuracy(),
                                              "time/updates": self.num_updates, "time/timesteps": self.num_timesteps})

    def best_val_accuracy(self) -> float:
        """The pool's best validation accuracy (``nan`` while the pool is empty)."""
        best = self.pool.best()
        return best["val_accuracy"] if best else float("nan")

    def selection_evaluations(self) -> int:
        """Most target evaluations :meth:`select_prompt` can spend: ``1 + final_samples`` prompts on validation.

        A calibrated target may also score each prompt's calibration inputs (see
        :func:`prompt_gym.calibration.extra_evaluations_per_prompt`).
        """
        per_prompt = len(self.env.attr("task").split("validation")) + extra_evaluations_per_prompt(self.env.attr("scorer"))
        return (1 + self.config.final_samples) * per_prompt

    @abc.abstractmethod
    def selection_candidates(self) -> list[str]:
        """The (at most ``1 + final_samples``) prompts :meth:`select_prompt` validates before choosing."""

    def select_prompt(self) -> dict[str, Any]:
        """Validate :meth:`selection_candidates`, then return the pool's best by ``config.select_by`` (validation only).

        Returns:
            The pool entry: ``prompt``, ``val_accuracy``, ``val_gap`` and the ``update`` it was found at.

        Raises:
            RuntimeError: No prompt was ever validated.
        """
        results = self.validate(self.selection_candidates())
        if self.log_selection and results:
            self.log_validation(mean_accuracy(results))
        best = self.pool.best(self.config.select_by)
        if best is None:
            raise RuntimeError(f"{type(self).__name__} has no prompt yet: call learn() before select_prompt().")
        return dict(best)
