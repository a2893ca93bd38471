"""The one run pipeline behind ``prompt-gym train`` and ``prompt-gym compare``, for every registered agent.

A :class:`Run` goes through four steps; the commands differ only in what they do between them
(``train`` guards its folder and writes ``run.json``; ``compare`` gives a budget and caches test scores):

1. ``Run(settings, resume)``: find the newest verified checkpoint (fails fast, before any model loads);
2. :meth:`Run.load`: the agent LLM (a fresh copy: LLM agents add adapters in place), the target
   (the agent model with its adapters off, one copy of the weights, unless another is named) behind a
   :class:`~prompt_gym.budget.BudgetedScorer` that counts every evaluation, and the env;
3. :meth:`Run.start`: the log and TensorBoard events (cut back to the checkpoint when resuming), the
   agent, the checkpoint's weights and the target's state (evaluation counts and score cache,
   :mod:`prompt_gym.runs.target_state`, saved in every checkpoint);
4. :meth:`Run.execute`: ``learn`` (up to ``updates``, or until the budget less the selection reserve is
   spent), select a prompt on validation, score it and the manual and empty prompts on test.
   On a test-time editing env the policy instead writes one prompt per test input.
"""

from __future__ import annotations

import platform
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import gymnasium as gym

import prompt_gym
from prompt_gym.agents.base import Agent
from prompt_gym.agents.registry import get_agent_spec
from prompt_gym.budget import BudgetedScorer, BudgetExhausted, NoProgress
from prompt_gym.calibration import calibration_key
from prompt_gym.callbacks import Callback, CheckpointCallback
from prompt_gym.checkpoint import checkpoint_step, extra_checkpoint_files, latest_checkpoint, load_json, save_json
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.logging import LOG_FILE, Logger, logged_value, read_log, truncate_log
from prompt_gym.models import DEFAULT_MODEL, load_causal_lm, resolve_device
from prompt_gym.remote.runs import UsageLogCallback, run_target, target_usage
from prompt_gym.runs.folders import TEST_TIME_PROMPTS_FILE
from prompt_gym.runs.settings import RunSettings
from prompt_gym.runs.target_state import load_target_state, save_target_state
from prompt_gym.testing import build_tiny_lm
from prompt_gym.tte import TTESampler, evaluate_tte

CHECKPOINTS = "checkpoints"
EVALUATIONS_KEY = "time/target_evaluations"
UNLIMITED_STEPS = 2**62
"""``total_timesteps`` handed to ``learn`` under a budget: training ends when the budget refuses a target call."""


class Run:
    """One agent on one env: load, start (or resume), learn, select, test.

    Args:
        settings: What to run.
        resume: Continue from the newest checkpoint under ``<out>/checkpoints`` that verifies.

    Attributes:
        resumed_from: The update of the checkpoint the run continues from (``None``: a fresh start).
        env: The env the agent trains on (one env, or the native vector env); after :meth:`load`.
        unwrapped: One unwrapped env with the same settings: the task, the target (test scoring,
            outside any budget) and the episode sampler; after :meth:`load`.
        scorer: The :class:`~prompt_gym.budget.BudgetedScorer` around the target that ``env`` scores
            with: it counts every evaluation of the run and enforces a budget; after :meth:`load`.
        agent: The agent; after :meth:`start`.
        log_file: The run's ``log.jsonl``; after :meth:`start`.

    Raises:
        prompt_gym.checkpoint.CheckpointError: ``resume`` and no checkpoint verifies.
        ValueError: ``resume`` with fewer ``updates`` than the checkpoint has done.
    """

    def __init__(self, settings: RunSettings, resume: bool = False) -> None:
        self.settings = settings
        self.spec = get_agent_spec(settings.agent)
        self.out = Path(settings.out)
        self.checkpoint = latest_checkpoint(self.out / CHECKPOINTS) if resume else None
        self.resumed_from = checkpoint_step(self.checkpoint) if self.checkpoint is not None else None
        if self.resumed_from is not None and settings.updates is not None and self.resumed_from > settings.updates:
            raise ValueError(f"{self.out} has done {self.resumed_from} updates already; give --updates "
                             f"{self.resumed_from} or more.")
        self.env: Any = None
        self.agent: Agent | None = None
        self._free_streak = 0  # the budget's free streak at the checkpoint; execute() sets it after the limit

    def load(self) -> None:
        """Load the agent LLM (LLM agents), the target behind a counting :class:`BudgetedScorer`, and the env."""
        settings, spec = self.settings, self.spec
        kwargs = {"action_mode": spec.action_mode} | settings.env_kwargs
        own_target = _task(settings).has_own_target
        self.model_spec = settings.agent_model or (None if own_target else DEFAULT_MODEL)
        self.model = self.tokenizer = None
        if spec.uses_llm and self.model_spec is None:  # a tiny random LM over the env's own tokenizer
            self.tokenizer = gym.make(settings.env, **kwargs).unwrapped.tokenizer
            self.model = build_tiny_lm(self.tokenizer, seed=settings.seed).to(resolve_device(settings.config.device))
        elif spec.uses_llm:
            self.model, self.tokenizer = load_causal_lm(self.model_spec, dtype=settings.model_config.dtype,
                                                        device=settings.config.device)
        if self.model_spec is not None:
            kwargs["tokenizer"] = self.tokenizer if spec.uses_llm else self.model_spec
        if settings.target_model is not None:
            kwargs["target"] = run_target(settings.target_model, str(self.out))  # a remote one counts in the run
        elif "target" not in kwargs and not own_target:
            kwargs["target"] = (self.model, self.tokenizer) if spec.uses_llm else self.model_spec
        self.unwrapped = gym.make(settings.env, **kwargs).unwrapped  # one env's task, target and sampler
        self.scorer = BudgetedScorer(self.unwrapped.scorer)
        shared = {k: v for k, v in kwargs.items() if k != "target"} | {"scorer": self.scorer}
        # one env, or the native vector env: one shared scorer, every finished prompt of a step scored in one call
        self.env = (gym.make(settings.env, **shared) if settings.num_envs == 1
                    else gym.make_vec(settings.env, settings.num_envs, **shared))

    def start(self, log_folder: Path | None = None, tensorboard: bool = True, require_count: bool = False) -> None:
        """Open the log, build the agent and, when resuming, load the checkpoint and the target's state.

        The target's counts and score cache come from the checkpoint; a checkpoint written before
        they were saved there restores the evaluation count logged at its update instead.

        Args:
            log_folder: Where ``log.jsonl`` goes (default: the run folder).
            tensorboard: Also write TensorBoard events (a resumed run's hide the steps after its checkpoint).
            require_count: Refuse to resume when neither the checkpoint nor the log has the evaluation
                count (a budgeted run must not count from 0 again); otherwise warn and count from 0.

        Raises:
            RuntimeError: ``require_count`` and the count is missing.
        """
        self.log_file = Path(log_folder or self.out) / LOG_FILE
        if self.resumed_from is None:
            self.log_file.unlink(missing_ok=True)  # a fresh start: a log left by an earlier attempt is stale
            records = []
        else:
            records = truncate_log(self.log_file, self.resumed_from)
        self.logger = Logger(self.log_file.parent, tensorboard=tensorboard,
                             purge_step=None if self.resumed_from is None else self.resumed_from + 1)
        config, options = (None, self.settings.config) if self.spec.config is None else (self.settings.config, {})
        self.agent = self.spec.build(self.env, config, model=self.model, tokenizer=self.tokenizer,
                                     model_config=self.settings.model_config, model_spec=self.model_spec,
                                     logger=self.logger, **options)
        if self.checkpoint is not None:
            self.agent.load_checkpoint(self.checkpoint)
            counts = load_target_state(self.scorer, self.checkpoint)
            if counts is None:  # a checkpoint written before the target's state was saved in it
                self._restore_evaluations(records, require_count)
            else:
                self._free_streak = int(counts["free_streak"])

    def _restore_evaluations(self, records: list[dict[str, Any]], required: bool) -> None:
        """Set the evaluation count to the one logged at the checkpoint's update."""
        count = logged_value(records, self.resumed_from, EVALUATIONS_KEY)
        if count is None and required:
            raise RuntimeError(f"{self.out}: the log has no evaluation count for checkpoint update "
                               f"{self.resumed_from}; delete the run folder to start that run again.")
        if count is None:
            warnings.warn(f"The log has no {EVALUATIONS_KEY} for update {self.resumed_from}: target evaluations "
                          "are counted from 0 again.", stacklevel=3)
            return
        self.scorer.num_evaluations = int(count)

    def execute(
        self, budget: int | None = None, callbacks: list[Callback] | None = None, progress_bar: bool = False,
        test_cache: Path | None = None,
    ) -> dict[str, Any]:
        """Learn, select on validation, test; returns the run's results (what ``results.json`` holds).

        Args:
            budget: Most target evaluations, selection included (``None``: no limit). Training stops
                when its next call could eat into :meth:`Agent.selection_evaluations`.
            callbacks: Run next to the checkpoint callback (for example a wall-time budget).
            progress_bar: Show progress bars.
            test_cache: A JSON file caching test accuracies by prompt across runs.

        Raises:
            ValueError: ``budget`` cannot pay for the selection and one training episode, or what it
                leaves after the selection cannot pay for the agent's first learning step.
        """
        agent, scorer, settings = self.agent, self.scorer, self.settings
        reserve = agent.selection_evaluations()
        if budget is not None:
            needed = reserve + (0 if self.spec.config is None else self.unwrapped.evaluations_per_episode)
            if budget < needed:
                raise ValueError(f"Budget {budget} is too small for {settings.agent!r} on {settings.env}: its prompt "
                                 f"selection alone may need {reserve} evaluations, and one training episode more; "
                                 f"give --budget {needed} or more.")
        saver = [CheckpointCallback(self.out / CHECKPOINTS, settings.save_every)] if agent.supports_checkpoints else []
        started = time.perf_counter()
        scorer.limit = None if budget is None else budget - reserve
        scorer.free_streak = self._free_streak  # setting the limit restarted it; a resumed run continues it
        stopped_by = "updates" if settings.updates is not None else "steps"
        try:
            with extra_checkpoint_files(lambda folder: save_target_state(scorer, folder)):
                agent.learn(total_timesteps=None if settings.updates is not None else UNLIMITED_STEPS,
                            total_updates=settings.updates, progress_bar=progress_bar,
                            callback=[*saver, UsageLogCallback(scorer), *(callbacks or [])])
        except NoProgress as stop:  # free (cached) evaluations only: the run would never spend its budget
            stopped_by = "no_progress"
            warnings.warn(f"{settings.agent} seed {settings.seed}: {stop}", stacklevel=2)
        except BudgetExhausted:  # the training budget is spent: the normal end of a budgeted run
            stopped_by = "budget"
        self.logger.close()
        if stopped_by == "budget" and agent.num_updates == 0:
            raise ValueError(f"Budget {budget} is too small for {settings.agent!r} on {settings.env}: after the "
                             f"{reserve} evaluations kept for its prompt selection, the {budget - reserve} left could "
                             "not pay for its first learning step (several episodes scored in one target call); "
                             "give a larger --budget.")
        scorer.limit = budget
        task, tte = self.unwrapped.task, isinstance(self.unwrapped.sampler, TTESampler)
        chosen = None if tte else agent.select_prompt()
        evaluations = scorer.num_evaluations  # training and selection; test scoring is not counted
        prompts = {"manual": task.manual_prompt, "empty": ""} | ({} if tte else {"learned": chosen["prompt"]})
        test = score_on_test(self.unwrapped.scorer, task, prompts, cache_file=test_cache, progress=progress_bar)
        if tte:
            test["learned"] = self._tte_learned()
        return {
            "env": settings.env, "agent": settings.agent, "seed": settings.seed, "settings": settings.to_dict(),
            "versions": versions(), "num_updates": agent.num_updates, "num_timesteps": agent.num_timesteps,
            "promotions": agent.promotions, "rollbacks": agent.rollbacks,
            "target_evaluations": evaluations, "target_usage": target_usage(scorer), "budget": budget,
            "selection_reserve": reserve, "stopped_by": stopped_by, "resumed_from_update": self.resumed_from,
            # this process's time plus the training time a resumed run had before its checkpoint
            "wall_time_s": round(agent.wall_time_s + time.perf_counter() - started, 1),
            "selected_on": None if tte else "validation", "selected": chosen,
            "policy_accuracy": policy_accuracy_trend(read_log(self.log_file)),
            "test": {name: test[name] for name in ("learned", "manual", "empty")},
        }

    def _tte_learned(self) -> dict[str, Any]:
        """The policy writes one prompt per test input (greedy); score each on its input, keep them on disk."""
        def write(meta_prompts: list[str]) -> list[str]:
            return list(self.agent.predict(tuple(meta_prompts), deterministic=True)[0])

        sampler = self.unwrapped.sampler
        result = evaluate_tte(sampler, self.unwrapped.scorer, write, split="test", seed=self.settings.seed)
        inputs = [example.input for example in sampler.task.split("test")]
        save_json(self.out / TEST_TIME_PROMPTS_FILE, [
            {"input": text, "prompt": prompt, "score": score}
            for text, prompt, score in zip(inputs, result["prompts"], result["scores"], strict=True)])
        return {"prompt": f"one per input ({TEST_TIME_PROMPTS_FILE})", "accuracy": result["accuracy"],
                "num_examples": result["num_examples"]}


def _task(settings: RunSettings) -> Any:
    """The task the env will run (its own, or ``env_kwargs["task"]``)."""
    task = settings.env_kwargs.get("task", gym.spec(settings.env).kwargs.get("task", "sst2"))
    return task if not isinstance(task, str) else prompt_gym.get_task(task)


def score_on_test(
    target: Any, task: Any, prompts: dict[str, str], cache_file: Path | None = None, progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Test accuracy of each named prompt (outside any budget), cached by prompt in ``cache_file`` when given.

    Returns:
        ``{name: {"prompt", "accuracy", "num_examples"}}``.
    """
    examples = task.split("test")
    fingerprint = zlib.crc32("\n".join(e.input for e in examples).encode())

    calibration = calibration_key(target)
    scored_as = f"{task.name}/{len(examples)}/{fingerprint:08x}" + (f"/{calibration}" if calibration else "")

    def key(prompt: str) -> str:
        return f"{scored_as}\t{prompt}"

    cache = load_json(cache_file) if cache_file is not None and cache_file.is_file() else {}
    if not isinstance(cache, dict):
        raise ValueError(f"{cache_file} is not a JSON object; delete it (a cache).")
    missing = sorted({prompt for prompt in prompts.values() if key(prompt) not in cache})
    if missing:
        for prompt, result in zip(missing, evaluate_prompts(target, task, missing, split="test", progress=progress),
                                  strict=True):
            cache[key(prompt)] = result["accuracy"]
        if cache_file is not None:
            save_json(cache_file, cache)
    return {name: {"prompt": prompt, "accuracy": float(cache[key(prompt)]), "num_examples": len(examples)}
            for name, prompt in prompts.items()}


def policy_accuracy_trend(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The policy's own validation accuracy at its first and last measurement (``None`` if never measured)."""
    points = [(r["step"], r["eval/policy_accuracy"]) for r in records if r.get("eval/policy_accuracy") is not None]
    if not points:
        return None
    return {"first_update": points[0][0], "first": points[0][1], "last_update": points[-1][0], "last": points[-1][1]}


def versions() -> dict[str, str]:
    """Versions of python and the libraries that shape results."""
    # Imported here so that the command line (``prompt-gym envs``, ``--help``) starts without torch.
    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "prompt_gym": prompt_gym.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "gymnasium": gym.__version__}
