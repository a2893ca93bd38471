"""``prompt-gym train``: one run of any registered agent, with checkpoints, resume and a test report.

Outputs in the run folder: ``run.json`` (the settings, for ``--resume``), ``log.jsonl`` and
TensorBoard events, ``checkpoints/``, ``curves.png``, ``best_prompts.json`` and ``results.json``
(config, seeds, versions; the learned prompt chosen on validation and its test accuracy next to the
manual and the empty prompt). On a test-time editing env there is no single prompt to choose: the
trained policy writes one prompt per test input (greedy), ``test_time_prompts.json`` keeps them,
and ``results.json`` reports their accuracy as ``learned``.

Run folders are safe (:mod:`prompt_gym.runs.folders`, ``docs/reliability.md``); ``run.json`` is
written only once the models and the env are loaded. ``--resume`` continues from the newest
checkpoint that verifies, with the evaluation count of that checkpoint.

The flags of the agent's config and of the LLM's :class:`~prompt_gym.agents.configs.ModelConfig`
are generated from those dataclasses (:mod:`prompt_gym.runs.flags`): ``prompt-gym train --agent
pg-group --help`` lists pg-group's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prompt_gym.agents.appo.config import PRESETS, APPOConfig
from prompt_gym.agents.configs import ModelConfig
from prompt_gym.agents.registry import AGENTS, get_agent_spec
from prompt_gym.agents.selection import SelectingAgent
from prompt_gym.callbacks import Callback
from prompt_gym.checkpoint import save_json
from prompt_gym.logging import read_log
from prompt_gym.runs.cli_types import non_negative_int, positive_int
from prompt_gym.runs.flags import add_config_flags, field_default, given
from prompt_gym.runs.folders import check_run_folder, clean_failed_start, remove_outputs
from prompt_gym.runs.pipeline import Run
from prompt_gym.runs.plotting import plot_curves
from prompt_gym.runs.settings import DEFAULT_AGENT, DEFAULT_ENV, SETTINGS_FILE, RunSettings, read_settings

ENV_FLAGS = ("action_mode", "task", "max_prompt_tokens", "num_demos", "reward_batch_size", "test_split", "calibration",
             "meta_prompt_template")
"""``train`` flags that are ``gym.make`` arguments (``RunSettings.env_kwargs``)."""
RUN_FLAGS = ("env", "agent", "agent_model", "target_model", "num_envs", "save_every")
"""``train`` flags that are fields of :class:`RunSettings` (``--out``, ``--updates`` aside)."""
AGENT_SKIP = ("max_prompt_tokens",)
"""Config fields without a flag: ``--max-prompt-tokens`` is the env's setting, which the agent reads."""


def _default(name: str) -> Any:
    """The default of a :class:`RunSettings` field (for ``--help``)."""
    return field_default(RunSettings.__dataclass_fields__[name])


def add_train_parser(sub: argparse._SubParsersAction, agent: str = DEFAULT_AGENT) -> argparse.ArgumentParser:
    """Add ``train`` to the ``prompt-gym`` subcommands, with the config flags of ``agent``.

    Args:
        sub: The subcommands.
        agent: Whose config (and, for LLM agents, ``ModelConfig``) the generated flags come from.
    """
    spec = get_agent_spec(agent)
    train = sub.add_parser(
        "train", help="train an agent; writes logs, checkpoints, curves and a test report",
        description="Train one agent on one env. Agents: " + "; ".join(f"{n}: {s.summary}" for n, s in AGENTS.items())
                    + f". The agent flags below are {agent!r}'s; `--agent NAME --help` lists another's.")
    run = train.add_argument_group("run")
    run.add_argument("--env", help=f"environment id (default {DEFAULT_ENV}; see `prompt-gym envs`)")
    run.add_argument("--agent", default=None, choices=sorted(AGENTS), help=f"the agent (default {DEFAULT_AGENT})")
    run.add_argument("--agent-model", help="agent model spec (default: the default model; a tiny random LM on the toy "
                                           "env)")
    run.add_argument("--target", "--target-model", dest="target_model",
                     help="target: a model spec (default: the agent model, one shared copy) or a served model, "
                          "openai:<base_url>#<model> (see docs/remote-target.md)")
    run.add_argument("--updates", type=positive_int, help="total updates (with --resume: the new total)")
    run.add_argument("--out", help="run folder (new or empty, unless --overwrite)")
    run.add_argument("--overwrite", action="store_true",
                     help="start a new run in --out even if it holds one: the earlier run's outputs are deleted")
    run.add_argument("--save-every", type=positive_int, help=f"updates between checkpoints (default "
                                                             f"{_default('save_every')})")
    run.add_argument("--resume", help="continue the run in this folder from its newest verified checkpoint "
                                      "(with the saved settings; only --updates may change)")
    run.add_argument("--num-envs", type=positive_int, help=f"parallel environments (vector env when > 1; default "
                                                           f"{_default('num_envs')})")
    env = train.add_argument_group("env (gym.make arguments; default: the env's)")
    env.add_argument("--action-mode", choices=("token", "text"), help="env action mode (default: the agent's)")
    env.add_argument("--max-prompt-tokens", type=positive_int, help="longest prompt")
    env.add_argument("--num-demos", type=non_negative_int, help="demonstrations in the meta-prompt")
    env.add_argument("--reward-batch-size", type=positive_int, help="training examples per reward")
    env.add_argument("--test-split", help="which file serves as test (SST-2: validation=872, test=1821)")
    env.add_argument("--calibration", choices=("batch", "content-free"),
                     help="remove the target's class bias per prompt (changes the task; see docs/rewards.md)")
    env.add_argument("--meta-prompt-template", help="the meta-prompt's wording: a string with a {pairs} field for the "
                                                    "demonstrations and an optional {count} (default: the env's)")
    env.add_argument("--task", help="registered task to run the env on instead of its own (for example "
                                    "--env PromptTune-TTE-SST2-v0 --task mrpc: test-time editing on MRPC)")
    options = train.add_argument_group(f"agent ({agent}'s config; default: the config's)")
    config_dests = {} if spec.config is None else add_config_flags(options, spec.config_class(),
                                                                   skip=(*spec.fixed, *AGENT_SKIP))
    if spec.config is not None and issubclass(spec.config_class(), APPOConfig):
        options.add_argument("--preset", choices=sorted(PRESETS),
                             help="named APPO settings (paper: the StablePrompt code's); the flags override it")
    model_dests = {}
    if spec.uses_llm:
        model = train.add_argument_group("agent LLM (ModelConfig)")
        model_dests = add_config_flags(model, ModelConfig, skip=("model",))
    train.set_defaults(run=run_train_command, config_dests=config_dests, model_dests=model_dests,
                       preset=None, options={o: a.dest for a in train._actions for o in a.option_strings})
    return train


def config_from_args(args: argparse.Namespace) -> Any:
    """The agent's config from the preset and the flags given (``None`` for an agent without a config).

    Raises:
        ValueError: A value the config refuses (its message names the field).
    """
    spec = get_agent_spec(args.agent or DEFAULT_AGENT)
    options = given(args, args.config_dests)
    if args.preset is not None:
        options = PRESETS[args.preset] | options
    return spec.make_config(**options) if spec.config is not None else None


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """Build settings from ``prompt-gym train``'s parsed arguments (unset flags: the defaults of the dataclasses)."""
    agent = args.agent or DEFAULT_AGENT
    spec = get_agent_spec(agent)
    env_kwargs = {name: getattr(args, name) for name in ENV_FLAGS if getattr(args, name) is not None}
    env_kwargs.setdefault("action_mode", spec.action_mode)  # saved in run.json: a resumed run keeps its mode
    run = {name: getattr(args, name) for name in RUN_FLAGS if getattr(args, name) is not None}
    return RunSettings(**run | {"agent": agent, "out": args.out, "updates": args.updates, "env_kwargs": env_kwargs,
                                "env": args.env or DEFAULT_ENV,
                                "config": config_from_args(args),
                                "model_config": ModelConfig(**given(args, args.model_dests))})


def _setting_of(dest: str, args: argparse.Namespace) -> str:
    """The ``run.json`` path a ``train`` flag sets (``lr`` -> ``config.learning_rate``)."""
    if dest in ENV_FLAGS:
        return f"env_kwargs.{dest}"
    if dest in args.config_dests:
        return f"config.{args.config_dests[dest]}"
    if dest in args.model_dests:
        return f"model_config.{args.model_dests[dest]}"
    return dest


def resume_conflicts(settings: RunSettings, args: argparse.Namespace, written: dict[str, str]) -> list[str]:
    """The flags given with ``--resume`` whose value differs from the run's saved setting.

    Args:
        settings: The saved settings (:func:`~prompt_gym.runs.settings.read_settings`).
        args: ``prompt-gym train``'s parsed arguments.
        written: ``{dest: the flag as written}`` of every flag given on the command line.

    Returns:
        One line per conflict: the flag, its value, the saved setting and its value.
    """
    merged = argparse.Namespace(**(vars(args) | {"out": settings.out, "updates": settings.updates,
                                                 "agent": args.agent or settings.agent}))
    new, old = settings_from_args(merged).to_dict(), settings.to_dict()
    conflicts = []
    for dest, flag in sorted(written.items()):
        if dest in ("resume", "updates", "out", "overwrite", "preset"):
            continue
        path = _setting_of(dest, args)
        if _lookup(new, path) != _lookup(old, path):
            value = "" if isinstance(getattr(args, dest), bool) else f" {getattr(args, dest)}"
            conflicts.append(f"{flag}{value} (the run has {path} = {_lookup(old, path)!r})")
    if "out" in written and Path(args.out).resolve() != Path(settings.out).resolve():
        conflicts.append(f"--out {args.out} (the run is in {settings.out})")
    return conflicts


def _lookup(data: dict[str, Any], path: str) -> Any:
    """``data["a"]["b"]`` for ``path="a.b"`` (``None`` where a key is missing: the env's default)."""
    for key in path.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def train(
    settings: RunSettings, resume: bool = False, progress_bar: bool = True, callbacks: list[Callback] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train, checkpoint, select a prompt on validation, report it on test; returns ``results.json``'s content.

    ``callbacks`` run next to the checkpoint callback (for example a wall-time budget).
    ``overwrite`` lets a new run replace the outputs of an earlier one in ``out``.

    Raises:
        FileExistsError: ``out`` is not empty and neither ``resume`` nor ``overwrite`` is set.
        prompt_gym.checkpoint.CheckpointError: ``resume`` and no checkpoint verifies.
        ValueError: ``resume`` with fewer ``updates`` than the checkpoint has done, or no ``updates``.
    """
    if settings.updates is None:
        raise ValueError("A training run needs updates (the total number of updates).")
    out = Path(settings.out)
    check_run_folder(out, resume, overwrite)
    run = Run(settings, resume=resume)
    with clean_failed_start(out, resume):
        run.load()
        if overwrite and not resume:
            remove_outputs(out)
        out.mkdir(parents=True, exist_ok=True)
        run.start()
        save_json(out / SETTINGS_FILE, settings.to_dict())  # last: the start succeeded
    results = run.execute(callbacks=callbacks, progress_bar=progress_bar)
    agent = run.agent
    best = agent.pool.to_list() if isinstance(agent, SelectingAgent) else [r for r in [results["selected"]] if r]
    save_json(out / "best_prompts.json", best)
    save_json(out / "results.json", results)
    plot_curves(read_log(run.log_file), out / "curves.png", title=f"{settings.agent} on {settings.env}")
    return results


def print_results(results: dict[str, Any]) -> None:
    """Print what ``prompt-gym train`` learned: the chosen prompt and the test accuracies."""
    test = results["test"]
    if results["selected"] is None:
        print(f"learned: one prompt per test input, written by the trained policy ({test['learned']['prompt']})")
    else:
        print(f"learned prompt (chosen on validation, val acc {results['selected']['val_accuracy']:.3f}): "
              f"{results['selected']['prompt']!r}")
    trend = results.get("policy_accuracy")
    if trend:
        print(f"policy's own validation accuracy (mean of prompts it samples): {trend['first']:.3f} at update "
              f"{trend['first_update']} -> {trend['last']:.3f} at update {trend['last_update']}")
    for name in ("learned", "manual", "empty"):
        print(f"test accuracy  {name:<8} {test[name]['accuracy']:.4f}  (n={test[name]['num_examples']})")


def written_flags(args: argparse.Namespace) -> dict[str, str]:
    """``{dest: option}`` of every option written on the command line (``--lr 1e-5`` counts even if it is the default).

    An abbreviation (``--batch`` for ``--batch-size``) counts when it names one option only, as argparse reads it.
    """
    written = {}
    for token in args.argv:
        if not token.startswith("--") or len(token) == 2:
            continue
        name = token.split("=", 1)[0]
        matches = [name] if name in args.options else [o for o in args.options if o.startswith(name)]
        if len(matches) == 1:
            written[args.options[matches[0]]] = matches[0]
    return written


def run_train_command(args: argparse.Namespace) -> int:
    """``prompt-gym train``: start or resume a run, then print the results."""
    if args.resume:
        if args.overwrite:
            raise SystemExit("prompt-gym train: --resume continues a run and --overwrite replaces it; give one.")
        settings = read_settings(args.resume, args.updates)
        conflicts = resume_conflicts(settings, args, written_flags(args))
        if conflicts:
            raise SystemExit(f"prompt-gym train: a resumed run keeps the settings saved in {args.resume}/run.json; "
                             "these flags differ from them: " + "; ".join(conflicts) + ". Drop them to resume, or "
                             "start a new run in another --out folder to use them.")
    else:
        try:  # the config's own checks, before anything else: a bad flag fails at once
            config_from_args(args)
        except ValueError as error:
            raise SystemExit(f"prompt-gym train: {error}") from None
        if not args.out or not args.updates:
            raise SystemExit("prompt-gym train needs --out RUN_FOLDER and --updates N (or --resume RUN_FOLDER).")
        settings = settings_from_args(args)
    print_results(train(settings, resume=bool(args.resume), overwrite=args.overwrite))
    print(f"outputs in {settings.out}")
    return 0
