"""Compare agents on one environment under one budget of target-LLM evaluations.

Protocol (``prompt-gym compare`` and :func:`run_comparison`; each run is one
:class:`~prompt_gym.runs.pipeline.Run`, the pipeline ``prompt-gym train`` uses too):

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
   adapters in place); the target is that copy with its adapters off (one copy of the weights),
   the task's own rule target (the toy task), or the ``target`` in ``env_kwargs``.
5. **Resumable.** ``<out>/runs/<agent>/seed-<s>/result.json`` is written atomically when a run
   finishes, and a rerun skips finished runs. Agents with checkpoints (``supports_checkpoints``) save one
   every ``checkpoint_every`` updates and a rerun resumes from the newest one that verifies
   (older ones are the fallback), with the target's evaluation counts and score cache restored from
   it, so a killed and rerun comparison counts and selects as an uninterrupted one.
   A remote target keeps its usage counters in the run folder (``target_usage.json``), and
   ``result.json`` reports them (``target_usage``). The
   output folder must be new, empty or an earlier comparison's; an earlier comparison whose start
   failed before any run finished or checkpointed may be rerun with corrected settings.

Outputs: ``results.md`` and ``results.csv`` (mean and std of test accuracy over seeds, evaluations
used, wall time, APPO promotions/rollbacks; with a remote target, its requests, tokens, cache hits and
errors; ``results.md`` also each agent minus random search, paired by seed), ``runs.csv`` (one row
per run) and
``learning_curves.png`` (best validation accuracy so far against evaluations, mean and band
over seeds), see :mod:`prompt_gym.runs.report`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_gym.agents.registry import get_agent_spec
from prompt_gym.calibration import extra_evaluations_per_prompt
from prompt_gym.checkpoint import CheckpointError, has_checkpoints, save_json
from prompt_gym.checks import check_int
from prompt_gym.logging import read_log
from prompt_gym.runs.pipeline import CHECKPOINTS, EVALUATIONS_KEY, Run
from prompt_gym.runs.report import write_report
from prompt_gym.runs.settings import RunSettings

CURVE_Y = "eval/best_val_accuracy"
CURVE_X = EVALUATIONS_KEY


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
    _check_out_folder(config)
    save_json(config.out / "config.json", _describe(config))
    _check_budget(config)
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


EXTENSIBLE_SETTINGS = ("agents", "seeds")
"""``config.json`` fields a comparison folder may grow: more agents or seeds resume into the same folder."""


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
    changed = sorted(k for k in new if k not in EXTENSIBLE_SETTINGS and old.get(k) != new[k])
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


def read_comparison(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The settings and the finished runs of a comparison folder (what ``prompt-gym report`` joins).

    Args:
        folder: A ``compare`` output folder.

    Returns:
        Its ``config.json`` and the ``result.json`` of every finished run, in the order of the
        settings' agents and then by seed (runs still in progress are left out).

    Raises:
        ValueError: ``folder`` holds no comparison, or one of its files is unreadable.
    """
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise ValueError(f"{folder} holds no comparison (no config.json); give the --out folder of a "
                         "`prompt-gym compare` run.")
    config = _read_json(path, "restore it from the command that made the folder")
    results = [_read_json(file, f"delete {file.parent} and rerun the comparison to redo that run")
               for file in sorted(folder.glob("runs/*/seed-*/result.json"))]
    order = {agent: index for index, agent in enumerate(config.get("agents", []))}
    results.sort(key=lambda result: (order.get(result["agent"], len(order)), result["agent"], result["seed"]))
    return config, results


def _has_progress(out: Path) -> bool:
    """Whether a comparison folder holds a finished run or a checkpoint (work that other settings must not mix with)."""
    return any(out.glob("runs/*/*/result.json")) or any(out.glob("runs/*/*/checkpoints/step-*"))


def _check_budget(config: CompareConfig) -> None:
    """Fail before any run when the budget cannot pay for an agent's prompt selection and one episode."""
    seed = config.seeds[0]
    probe = Run(RunSettings(env=config.env_id, out=str(config.out), agent="manual", agent_model=config.agent_model,
                            env_kwargs=_env_kwargs(config, seed)))
    probe.load()  # the manual agent has no LLM: only the env and its target are loaded
    env = probe.unwrapped
    validation, episode = len(env.task.split("validation")), env.evaluations_per_episode
    per_prompt = validation + extra_evaluations_per_prompt(env.scorer)  # a calibrated target's calibration inputs
    for name in config.agents:
        spec = get_agent_spec(name)
        learns = spec.config is not None
        final = spec.config_fields().get("final_samples") if learns else None
        prompts = 1 + (config.agent_options.get(name, {}).get("final_samples", spec.config_default("final_samples"))
                       if final is not None else 0)
        needed = prompts * per_prompt + (episode if learns else 0)
        if config.budget < needed:
            raise ValueError(f"Budget {config.budget} is too small for {name!r} on {config.env_id}: its prompt "
                             f"selection alone may need {prompts * per_prompt} evaluations ({prompts} prompts x "
                             f"{per_prompt} on {validation} validation examples), and one training episode {episode} "
                             f"more; give --budget {needed} or more.")


def _env_kwargs(config: CompareConfig, seed: int) -> dict[str, Any]:
    """The ``gym.make`` arguments of one seed's runs (with ``vary_data``, the seed picks the few-shot split)."""
    return config.env_kwargs | ({"data_seed": seed} if config.vary_data else {})


def run_settings(config: CompareConfig, agent: str, seed: int) -> RunSettings:
    """The run of ``agent`` with ``seed``: its config from the options, the seed's data split (``vary_data``)."""
    spec = get_agent_spec(agent)
    options = config.agent_options.get(agent, {})
    env_kwargs = _env_kwargs(config, seed)
    # a target given by name is the run's target: a remote one keeps its usage counters in the run folder
    target = env_kwargs.pop("target") if isinstance(env_kwargs.get("target"), str) else None
    return RunSettings(
        env=config.env_id, out=str(run_dir(config.out, agent, seed)), agent=agent, agent_model=config.agent_model,
        target_model=target, save_every=config.checkpoint_every, env_kwargs=env_kwargs,
        config=spec.make_config(seed, **options) if spec.config is not None else options)


def run_one(config: CompareConfig, agent_name: str, seed: int) -> dict[str, Any]:
    """Run one (agent, seed) under the budget, select on validation, test, and store the result atomically.

    A run with checkpoints resumes from the newest one that verifies; one without starts again.

    Raises:
        prompt_gym.checkpoint.CheckpointError: The run has checkpoints but none verifies (the
            message says to delete the run's folder to start it again).
    """
    settings = run_settings(config, agent_name, seed)
    folder = Path(settings.out)
    try:
        run = Run(settings, resume=has_checkpoints(folder / CHECKPOINTS))
    except CheckpointError as error:
        raise CheckpointError(f"{error} To run it again from the start, delete {folder}.") from None
    run.load()
    run.start(log_folder=folder / "log", tensorboard=False, require_count=True)
    results = run.execute(budget=config.budget, test_cache=config.out / "test_cache.json")
    selected = results["selected"]
    result = {
        "agent": agent_name, "seed": seed, "env_id": config.env_id, "budget": config.budget,
        "prompt": selected["prompt"], "val_accuracy": selected["val_accuracy"],
        "test_accuracy": results["test"]["learned"]["accuracy"], "evaluations": results["target_evaluations"],
        "selection_reserve": results["selection_reserve"], "wall_time_s": results["wall_time_s"],
        "num_updates": results["num_updates"], "num_timesteps": results["num_timesteps"],
        "promotions": results["promotions"], "rollbacks": results["rollbacks"],
        "resumed_from_update": results["resumed_from_update"], "stopped_by": results["stopped_by"],
        "target_usage": results["target_usage"],
        "curve": _curve(read_log(run.log_file), results["target_evaluations"], selected),
    }
    save_json(folder / "result.json", result)
    return result


def _curve(records: list[dict[str, Any]], used: int, best: dict[str, Any]) -> list[list[float]]:
    """``[[evaluations, best validation accuracy so far], ...]`` from the whole log, ending at the selection."""
    points = [[float(r[CURVE_X]), float(r[CURVE_Y])] for r in records
              if r.get(CURVE_X) is not None and r.get(CURVE_Y) is not None]
    final = [float(used), float(best["val_accuracy"])]
    return points if points and points[-1] == final else [*points, final]
