"""The ``prompt-gym`` command line.

Subcommands:
    envs    list the registered environments
    eval    test accuracy of one or more prompts on an environment's task
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _envs(_: argparse.Namespace) -> int:
    import prompt_gym

    for env_id in prompt_gym.ENV_IDS:
        print(env_id)
    return 0


def _read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompt_file:
        path = Path(args.prompt_file)
        if not path.is_file():
            raise SystemExit(f"--prompt-file: no such file {path}")
        prompts += [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.empty_prompt:
        prompts.append("")
    if not prompts:
        raise SystemExit("Give at least one prompt: --prompt TEXT, --prompt-file FILE (one per line) or --empty-prompt.")
    return prompts


def _eval(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import prompt_gym  # noqa: F401  (registers the environments)
    from prompt_gym.evaluation import evaluate_prompts

    prompts = _read_prompts(args)
    kwargs = {"target": args.target_model} if args.target_model else {}
    if args.test_split:
        kwargs["test_split"] = args.test_split
    env = gym.make(args.env, **kwargs).unwrapped
    results = evaluate_prompts(env.scorer, env.task, prompts, split=args.split, progress=True)
    for result in results:
        print(f"{result['accuracy']:.4f}  ({args.split}, n={result['num_examples']})  {result['prompt']!r}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``prompt-gym`` command."""
    parser = argparse.ArgumentParser(prog="prompt-gym", description="Prompt tuning as reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    envs = sub.add_parser("envs", help="list the registered environments")
    envs.set_defaults(run=_envs)

    evaluate = sub.add_parser("eval", help="accuracy of prompts on an environment's task (test split by default)")
    evaluate.add_argument("--env", default="PromptTune-SST2-v0", help="environment id (see `prompt-gym envs`)")
    evaluate.add_argument("--prompt", action="append", help="a prompt to evaluate (repeatable)")
    evaluate.add_argument("--prompt-file", help="a file with one prompt per line")
    evaluate.add_argument("--empty-prompt", action="store_true", help="also evaluate the empty prompt")
    evaluate.add_argument("--split", default="test", choices=("test", "validation", "train"))
    evaluate.add_argument("--test-split", help="which file serves as test (SST-2: validation=872, test=1821)")
    evaluate.add_argument("--target-model", help="target model spec (default: smollm2-135m-instruct)")
    evaluate.add_argument("--json", help="also write the results to this JSON file")
    evaluate.set_defaults(run=_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
