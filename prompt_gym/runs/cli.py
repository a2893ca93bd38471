"""The ``prompt-gym`` command line (the ``console_scripts`` entry point).

Subcommands:
    envs    list the registered environments
    train   train any registered agent on an environment (checkpoints, resume, results.json; prompt_gym.runs.train)
    eval    test accuracy (or generation metric) of one or more prompts on an environment's task
    compare several agents on one env under one budget of target evaluations (prompt_gym.runs.compare_cli)
    report  one table from several comparison folders run apart (prompt_gym.runs.report_cli)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym

import prompt_gym
from prompt_gym.agents.registry import AGENTS
from prompt_gym.checkpoint import save_json
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.runs.compare_cli import add_compare_parser
from prompt_gym.runs.report_cli import add_report_parser
from prompt_gym.runs.settings import DEFAULT_AGENT, DEFAULT_ENV, SETTINGS_FILE
from prompt_gym.runs.train import add_train_parser


def _envs(_: argparse.Namespace) -> int:
    for env_id in prompt_gym.ENV_IDS:
        print(env_id)
    return 0


def _read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompt_file:
        path = Path(args.prompt_file)
        if not path.is_file():
            raise SystemExit(f"--prompt-file: no such file {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise SystemExit(f"--prompt-file: {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                             "save it as UTF-8") from None
        prompts += [line.rstrip("\n") for line in text.splitlines() if line.strip()]
    if args.empty_prompt:
        prompts.append("")
    if not prompts and not args.manual_prompt:
        raise SystemExit("Give at least one prompt: --prompt TEXT, --prompt-file FILE (one per line), --empty-prompt "
                         "or --manual-prompt.")
    return prompts


def _eval(args: argparse.Namespace) -> int:
    prompts = _read_prompts(args)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise SystemExit(f"--json: the folder of {args.json} does not exist; create it first")
    kwargs = {"target": args.target_model} if args.target_model else {}
    if args.test_split:
        kwargs["test_split"] = args.test_split
    if args.calibration:
        kwargs["calibration"] = args.calibration
    env = gym.make(args.env, **kwargs).unwrapped
    if args.manual_prompt:
        prompts.append(env.task.manual_prompt)
    results = evaluate_prompts(env.scorer, env.task, prompts, split=args.split, progress=True)
    for result in results:
        print(f"{result['accuracy']:.4f}  ({result['metric']}, {args.split}, n={result['num_examples']})  "
              f"{result['prompt']!r}")
    if args.json:
        save_json(args.json, results)
    return 0


def _train_agent(argv: Sequence[str]) -> str:
    """The agent whose config flags ``train`` offers: ``--agent``'s, else the resumed run's, else the default."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--agent")
    pre.add_argument("--resume")
    known, _ = pre.parse_known_args(list(argv)[1:])
    if known.agent is not None:
        return known.agent
    saved = Path(known.resume or "") / SETTINGS_FILE
    if known.resume and saved.is_file():
        try:
            return str(json.loads(saved.read_text(encoding="utf-8"))["agent"])
        except (ValueError, KeyError, TypeError):  # an unreadable run.json: --resume reports it
            pass
    return DEFAULT_AGENT


def build_parser(agent: str = DEFAULT_AGENT) -> argparse.ArgumentParser:
    """Return the argument parser of the ``prompt-gym`` command (``train`` offers ``agent``'s config flags)."""
    parser = argparse.ArgumentParser(prog="prompt-gym", description="Prompt tuning as reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    envs = sub.add_parser("envs", help="list the registered environments")
    envs.set_defaults(run=_envs)

    evaluate = sub.add_parser("eval", help="accuracy of prompts on an environment's task (test split by default)")
    evaluate.add_argument("--env", default=DEFAULT_ENV, help="environment id (see `prompt-gym envs`)")
    evaluate.add_argument("--prompt", action="append", help="a prompt to evaluate (repeatable)")
    evaluate.add_argument("--prompt-file", help="a file with one prompt per line")
    evaluate.add_argument("--empty-prompt", action="store_true", help="also evaluate the empty prompt")
    evaluate.add_argument("--manual-prompt", action="store_true", help="also evaluate the task's manual prompt")
    evaluate.add_argument("--split", default="test", choices=("test", "validation", "train"))
    evaluate.add_argument("--test-split", help="which file serves as test (SST-2: validation=872, test=1821)")
    evaluate.add_argument("--calibration", choices=("batch", "content-free"),
                          help="score with the target's class bias removed per prompt (see docs/rewards.md)")
    evaluate.add_argument("--target", "--target-model", dest="target_model",
                          help="target: a model spec (default: the env's) or a served model, "
                               "openai:<base_url>#<model> (see docs/remote-target.md)")
    evaluate.add_argument("--json", help="also write the results to this JSON file")
    evaluate.set_defaults(run=_eval)

    add_train_parser(sub, agent)
    add_compare_parser(sub)
    add_report_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    agent = _train_agent(argv) if argv[:1] == ["train"] else DEFAULT_AGENT
    if agent not in AGENTS:
        raise SystemExit(f"prompt-gym train: unknown agent {agent!r}; choose from {', '.join(AGENTS)}.")
    args = build_parser(agent).parse_args(argv)
    args.argv = argv
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
