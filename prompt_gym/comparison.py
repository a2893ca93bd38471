"""Compare agents on one environment under one budget of target-LLM evaluations.

Protocol (``prompt-gym compare`` and :func:`run_comparison`):

1. **Same budget for everyone**, counted in target-LLM example evaluations
   (``scorer.num_evaluations``: (prompt, input) pairs the target scored; cache hits are free, so a
   run whose agent keeps repeating prompts is stopped by the budget's ``NoProgress`` guard
   instead, see :mod:`prompt_gym.budget`; ``result.json``'s ``stopped_by`` says which ended it).
   Each (agent, seed) run gets a fresh target scorer wrapped in a
   :class:`~prompt_gym.budget.BudgetedScorer`. Training runs under ``budget - reserve``, where the
   reserve is the most that the agent's final prompt selection can spend (its
   ``selection_evaluations()``); a target call whose pairs could take the count past the limit
   is refused before it runs, which stops ``learn``.
   Selection then runs under the full budget. So every agent uses at most ``budget`` evaluations,
   including its own validation checks; the table reports what each really used.
2. **Select on validation, report on test.** Each agent's ``select_prompt()`` picks its prompt by
   validation accuracy; the harness then scores that one prompt on the test split (outside the
   budget, identically for every agent; test results are cached by prompt in ``test_cache.json``).
3. **Seeds.** Each seed seeds the agent and, with ``vary_data`` (default), also picks the
   few-shot split (``data_seed``: LM-BFF 13, 21, 42, 87, 100), as RLPrompt and LM-BFF report.
4. **Fresh models.** LLM agents get a fresh copy of the agent LLM per run (they add LoRA
   adapters in place); the target model is loaded once and shared, without adapters.
5. **Resumable.** ``<out>/runs/<agent>/seed-<s>/result.json`` is written atomically when a run
   finishes, and a rerun skips finished runs. Agents with checkpoints (``appo``, ``ppo``) save one
   every ``checkpoint_every`` updates and a rerun resumes from the newest one that verifies
   (older ones are the fallback), with the evaluation count restored from the run's log. The
   output folder must be new, empty or an earlier comparison's; an earlier comparison whose start
   failed before any run finished or checkpointed may be rerun with corrected settings.

Outputs: ``results.md`` and ``results.csv`` (mean and std of test accuracy over seeds, evaluations
used, wall time, APPO promotions/rollbacks), ``runs.csv`` (one row per run) and
``learning_curves.png`` (best validation accuracy so far against evaluations, mean and band
over seeds), see :mod:`prompt_gym.comparison_report`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_gym.budget import BudgetedScorer, BudgetExhausted, NoProgress
from prompt_gym.checks import check_int

CURVE_Y = "eval/best_val_accuracy"
CURVE_X = "time/target_evaluations"
UNLIMITED_STEPS = 2**62
"""``total_timesteps`` handed to ``learn``: training ends when the budget refuses a target call."""


@dataclass
class CompareConfig:
    """What to compare and where to write it.

    Attributes:
        env_id: A registered prompt-gym environment id.
        agents: Agent names (see ``prompt_gym.agents.AGENTS``).
        budget: Target-LLM evaluations per (agent, seed) run, selection included.
        seeds: One run per seed and agent.
        out: Output folder.
        agent_model: Model spec of the agent LLM; ``None`` uses the default model, or a tiny
            random LM over the env tokenizer on envs without a model (``PromptTune-Toy-v0``).
        env_kwargs: Extra ``gym.make`` arguments (``reward_batch_size``, ``max_prompt_tokens``...).
        agent_options: Per agent name, config fields (``{"appo": {"learning_rate": 1e-4}}``).
        vary_data: Also use each seed as the env's ``data_seed`` (few-shot split).
        checkpoint_every: Updates between checkpoints of agents that support resuming.
    """

    env_id: str
    agents: list[str]
    budget: int
    seeds: list[int]
    out: Path
    agent_model: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    vary_data: bool = True
    checkpoint_every: int = 5

    def __post_init__(self) -> None:
        from prompt_gym.agents.registry import get_agent_spec

        self.out = Path(self.out)
        if not self.agents:
            raise ValueError("Give at least one agent (--agents appo,manual,...).")
        if len(set(self.agents)) != len(self.agents) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"Agents and seeds must not repeat, got agents {self.agents} and seeds {self.seeds}.")
        for name in [*self.agents, *self.agent_options]:
            get_agent_spec(name)
        for name, options in self.agent_options.items():
            _check_agent_options(name, options)
        if not self.seeds:
            raise ValueError("Give at least one seed (--seeds 13,21,42).")
        for seed in self.seeds:
            check_int("every seed", seed, minimum=0)
        check_int("the budget (target evaluations)", self.budget, minimum=1)
        check_int("checkpoint_every", self.checkpoint_every, minimum=1)
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs must map gym.make arguments to values, got {self.env_kwargs!r}.")


def _check_agent_options(name: str, options: Any) -> None:
    """Options must be fields of the agent's config with finite numbers (JSON allows Infinity and NaN)."""
    from prompt_gym.agents.registry import get_agent_spec

    if not isinstance(options, dict):
        raise ValueError(f"agent_options[{name!r}] must map config fields to values, got {options!r}.")
    spec = get_agent_spec(name)
    if spec.config is None and options:
        raise ValueError(f"Agent {name!r} has no options, got {sorted(options)}.")
    if spec.config is not None:
        known = spec.config_fields()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"agent_options[{name!r}] has unknown fields {unknown}; the agent's config has "
                             f"{sorted(known)}.")
    for key, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"agent_options[{name!r}][{key!r}] must be a finite number, got {value}.")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace`` (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_dir(out: Path, agent: str, seed: int) -> Path:
    """Folder of one run: ``<out>/runs/<agent with ':' -> '-'>/seed-<seed>``."""
    return Path(out) / "runs" / re.sub(r"[^A-Za-z0-9_.-]", "-", agent) / f"seed-{seed}"


def run_comparison(config: CompareConfig, log: Any = print) -> list[dict[str, Any]]:
    """Run (or resume) every (agent, seed) and write the table and the plot.

    Args:
        config: What to run.
        log: Called with one progress line per run (``print`` by default).

    Returns:
        The per-run results, in ``agents`` then ``seeds`` order.
    """
    from prompt_gym.comparison_report import write_report

    _check_out_folder(config)
    _check_budget(config)
    write_json_atomic(config.out / "config.json", _describe(config))
    results = []
    for agent in config.agents:
        for seed in config.seeds:
            path = run_dir(config.out, agent, seed) / "result.json"
            if path.is_file():
                log(f"[skip] {agent} seed {seed}: finished earlier ({path})")
                results.append(_read_json(path, f"delete {path.parent} to run {agent} seed {seed} again"))
                continue
            result = run_one(config, agent, seed)
            log(f"[done] {agent} seed {seed}: test {result['test_accuracy']:.3f}, val {result['val_accuracy']:.3f}, "
                f"{result['evaluations']} evaluations, {result['wall_time_s']:.0f} s")
            results.append(result)
    write_report(results, config.out, config.budget, title=f"{config.env_id}, budget {config.budget}")
    return results


def _describe(config: CompareConfig) -> dict[str, Any]:
    return {"env_id": config.env_id, "agents": config.agents, "budget": config.budget, "seeds": config.seeds,
            "agent_model": config.agent_model, "env_kwargs": config.env_kwargs,
            "agent_options": config.agent_options, "vary_data": config.vary_data}


def _check_out_folder(config: CompareConfig) -> None:
    """Refuse a folder that holds anything but a comparison with the same settings (adding agents or seeds is fine)."""
    if config.out.exists() and not config.out.is_dir():
        raise ValueError(f"{config.out} is a file; --out takes a folder.")
    path = config.out / "config.json"
    if not path.is_file():
        if config.out.is_dir() and any(config.out.iterdir()):
            raise ValueError(f"{config.out} is not empty and holds no comparison (no config.json); pick a new or "
                             "empty --out folder.")
        config.out.mkdir(parents=True, exist_ok=True)
        return
    old, new = _read_json(path, "restore it, or use a new --out folder"), _describe(config)
    changed = sorted(k for k in new if k not in ("agents", "seeds") and old.get(k) != new[k])
    if changed and _has_progress(config.out):
        raise ValueError(f"{config.out} holds a comparison run with other settings ({', '.join(changed)} differ); "
                         "use another --out folder, or the original settings to resume.")
    if changed:  # an earlier start failed before any run finished or checkpointed: start afresh
        (config.out / "test_cache.json").unlink(missing_ok=True)
        shutil.rmtree(config.out / "runs", ignore_errors=True)


def _read_json(path: Path, fix: str) -> Any:
    """Read a JSON object written by a comparison.

    Raises:
        ValueError: The file is not a JSON object (the message names it and says ``fix``).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is unreadable ({error}); {fix}.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object; {fix}.")
    return data


def _has_progress(out: Path) -> bool:
    """Whether a comparison folder holds a finished run or a checkpoint (work that other settings must not mix with)."""
    return any(out.glob("runs/*/*/result.json")) or any(out.glob("runs/*/*/checkpoints/step-*"))


def _check_budget(config: CompareConfig) -> None:
    """Fail before any run when the budget cannot pay for an agent's prompt selection and one episode."""
    from prompt_gym.agents.registry import get_agent_spec

    env = _make_env(config, config.seeds[0], "text", scorer=None).unwrapped
    validation, episode = len(env.task.split("validation")), int(env.sampler.reward_batch_size)
    for name in config.agents:
        spec = get_agent_spec(name)
        prompts = 1 if spec.config is None else 1 + config.agent_options.get(name, {}).get(
            "final_samples", spec.config_default("final_samples"))
        needed = prompts * validation + (0 if spec.config is None else episode)
        if config.budget < needed:
            raise ValueError(f"Budget {config.budget} is too small for {name!r} on {config.env_id}: its prompt "
                             f"selection alone may need {prompts * validation} evaluations ({prompts} prompts x "
                             f"{validation} validation examples), and one training episode {episode} more; give "
                             f"--budget {needed} or more.")


def _make_env(config: CompareConfig, seed: int, action_mode: str, scorer: Any = None, tokenizer: Any = None) -> Any:
    import gymnasium as gym

    import prompt_gym  # noqa: F401  (registers the environments)

    kwargs = dict(config.env_kwargs) | {"action_mode": action_mode}
    if config.vary_data:
        kwargs["data_seed"] = seed
    if scorer is not None:
        kwargs["scorer"] = scorer
    if tokenizer is not None:
        kwargs["tokenizer"] = tokenizer
    return gym.make(config.env_id, **kwargs)


def _agent_model_spec(config: CompareConfig, probe: Any) -> str | None:
    """The agent LLM's spec; ``None`` on envs without a model (a tiny random LM, or learned SB3 embeddings)."""
    if config.agent_model is None and probe.unwrapped.task.default_scorer is not None:
        return None
    from prompt_gym.models import DEFAULT_MODEL

    return config.agent_model or DEFAULT_MODEL


def _fresh_llm(spec: str | None, probe: Any, seed: int) -> tuple[Any, Any]:
    """A fresh agent LLM for one run (LLM agents add adapters to it in place)."""
    if spec is None:
        from prompt_gym.testing import build_tiny_lm

        return build_tiny_lm(probe.unwrapped.tokenizer, seed=seed), probe.unwrapped.tokenizer
    from prompt_gym.models import load_causal_lm

    return load_causal_lm(spec)


def run_one(config: CompareConfig, agent_name: str, seed: int) -> dict[str, Any]:
    """Run one (agent, seed) under the budget, select on validation, test, and store the result atomically."""
    from prompt_gym.agents.registry import get_agent_spec, make_agent
    from prompt_gym.logging import Logger

    spec = get_agent_spec(agent_name)
    folder = run_dir(config.out, agent_name, seed)
    folder.mkdir(parents=True, exist_ok=True)
    probe = _make_env(config, seed, spec.action_mode)
    model_spec = _agent_model_spec(config, probe) if agent_name != "manual" else None
    model = tokenizer = None
    if spec.uses_llm:
        model, tokenizer = _fresh_llm(model_spec, probe, seed)
    target = probe.unwrapped.scorer
    scorer = BudgetedScorer(target)
    env_tokenizer = (tokenizer if spec.uses_llm else model_spec) if model_spec is not None else None
    env = _make_env(config, seed, spec.action_mode, scorer=scorer, tokenizer=env_tokenizer)
    resume_step = _truncate_log(folder)
    logger = Logger(folder / "log", tensorboard=False)
    agent = make_agent(agent_name, env, seed=seed, model=model, tokenizer=tokenizer, model_spec=model_spec,
                       logger=logger, **config.agent_options.get(agent_name, {}))
    reserve = int(agent.selection_evaluations())
    needed = reserve + (0 if spec.config is None else int(env.unwrapped.sampler.reward_batch_size))
    if config.budget < needed:
        raise ValueError(f"Budget {config.budget} is too small for {agent_name!r} on {config.env_id}: its prompt "
                         f"selection alone may need {reserve} evaluations, and one training episode more; give "
                         f"--budget {needed} or more.")
    callback = None
    if hasattr(agent, "save_checkpoint") and hasattr(agent, "load_checkpoint"):
        callback = _resume(agent, folder, resume_step, scorer, config.checkpoint_every)
    started = time.perf_counter()
    scorer.limit = config.budget - reserve
    stopped_by = "steps"
    try:
        agent.learn(UNLIMITED_STEPS, callback=callback, progress_bar=False)
    except NoProgress as stop:  # free (cached) evaluations only: the run would never spend its budget
        stopped_by = "no_progress"
        warnings.warn(f"{agent_name} seed {seed}: {stop}", stacklevel=2)
    except BudgetExhausted:  # the training budget is spent: the normal end of a budgeted run
        stopped_by = "budget"
    scorer.limit = config.budget
    best = agent.select_prompt()
    wall = time.perf_counter() - started
    logger.close()
    result = {
        "agent": agent_name, "seed": seed, "env_id": config.env_id, "budget": config.budget,
        "prompt": best["prompt"], "val_accuracy": best["val_accuracy"],
        "test_accuracy": _test_accuracy(config.out, target, env.unwrapped.task, best["prompt"]),
        "evaluations": scorer.num_evaluations, "selection_reserve": reserve, "wall_time_s": wall,
        "num_updates": int(getattr(agent, "num_updates", 0)), "num_timesteps": int(agent.num_timesteps),
        "promotions": getattr(agent, "promotions", None), "rollbacks": getattr(agent, "rollbacks", None),
        "resumed_from_update": resume_step, "stopped_by": stopped_by,
        "curve": _curve(logger.history, folder, scorer.num_evaluations, best),
    }
    write_json_atomic(folder / "result.json", result)
    return result


def _truncate_log(folder: Path) -> int | None:
    """On resume, drop log records newer than the newest verified checkpoint; return its update (``None``: fresh run).

    Raises:
        prompt_gym.checkpoint.CheckpointError: The run has checkpoints but none verifies (the
            message says to delete the run's folder to start it again).
    """
    from prompt_gym.checkpoint import STEP_NAME, CheckpointError, latest_checkpoint
    from prompt_gym.logging import truncate_log

    checkpoints, log_file = folder / "checkpoints", folder / "log" / "log.jsonl"
    if not (checkpoints.is_dir() and any(STEP_NAME.fullmatch(p.name) for p in checkpoints.iterdir())):
        log_file.unlink(missing_ok=True)  # the run stopped before its first checkpoint: start it again
        return None
    try:
        checkpoint = latest_checkpoint(checkpoints)
    except CheckpointError as error:
        raise CheckpointError(f"{error} To run it again from the start, delete {folder}.") from None
    step = int(STEP_NAME.fullmatch(checkpoint.name).group(1))
    truncate_log(log_file, step)
    return step


def _resume(agent: Any, folder: Path, step: int | None, scorer: BudgetedScorer, every: int) -> Any:
    """Load the newest checkpoint (restoring the evaluation count) and return the checkpoint callback."""
    from prompt_gym.callbacks import CheckpointCallback
    from prompt_gym.logging import logged_value, read_log

    if step is not None:
        agent.load_checkpoint(folder / "checkpoints" / f"step-{step:06d}")
        log_file = folder / "log" / "log.jsonl"
        count = logged_value(read_log(log_file), step, CURVE_X) if log_file.is_file() else None
        if count is None:
            raise RuntimeError(f"{folder}: the log has no evaluation count for checkpoint update {step}; delete "
                               "the run folder to start that run again.")
        scorer.num_evaluations = int(count)
    return CheckpointCallback(folder / "checkpoints", every)


def _curve(history: list[dict[str, Any]], folder: Path, used: int, best: dict[str, Any]) -> list[list[float]]:
    """``[[evaluations, best validation accuracy so far], ...]`` from the whole log, ending at the selection."""
    from prompt_gym.logging import read_log

    log_file = folder / "log" / "log.jsonl"
    records = read_log(log_file) if log_file.is_file() else history
    points = [[float(r[CURVE_X]), float(r[CURVE_Y])] for r in records
              if r.get(CURVE_X) is not None and r.get(CURVE_Y) is not None]
    final = [float(used), float(best["val_accuracy"])]
    return points if points and points[-1] == final else [*points, final]


def _test_accuracy(out: Path, scorer: Any, task: Any, prompt: str) -> float:
    """Test accuracy of ``prompt`` (cached by prompt across runs in ``test_cache.json``; outside the budget)."""
    from prompt_gym.evaluation import evaluate_prompts

    examples = task.split("test")
    fingerprint = zlib.crc32("\n".join(e.input for e in examples).encode())
    key = f"{task.name}/{len(examples)}/{fingerprint:08x}\t{prompt}"
    cache_file = Path(out) / "test_cache.json"
    cache = _read_json(cache_file, f"delete {cache_file} (a cache)") if cache_file.is_file() else {}
    if key not in cache:
        cache[key] = evaluate_prompts(scorer, task, [prompt], split="test")[0]["accuracy"]
        write_json_atomic(cache_file, cache)
    return float(cache[key])
