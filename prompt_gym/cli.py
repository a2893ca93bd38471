"""The ``prompt-gym`` command line.

Subcommands:
    envs    list the registered environments
    train   train the APPO agent on an environment (checkpoints, resume, results.json)
    eval    test accuracy (or generation metric) of one or more prompts on an environment's task
    compare several agents on one env under one budget of target evaluations (prompt_gym.comparison_cli)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prompt_gym.agents.appo.config import ADVANTAGES, PRESETS
from prompt_gym.cli_types import non_negative_float, non_negative_int, positive_float, positive_int
from prompt_gym.comparison_cli import add_compare_parser


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
    import gymnasium as gym

    import prompt_gym  # noqa: F401  (registers the environments)
    from prompt_gym.evaluation import evaluate_prompts

    prompts = _read_prompts(args)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise SystemExit(f"--json: the folder of {args.json} does not exist; create it first")
    kwargs = {"target": args.target_model} if args.target_model else {}
    if args.test_split:
        kwargs["test_split"] = args.test_split
    env = gym.make(args.env, **kwargs).unwrapped
    if args.manual_prompt:
        prompts.append(env.task.manual_prompt)
    results = evaluate_prompts(env.scorer, env.task, prompts, split=args.split, progress=True)
    for result in results:
        print(f"{result['accuracy']:.4f}  ({result['metric']}, {args.split}, n={result['num_examples']})  "
              f"{result['prompt']!r}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def _print_training_results(results: dict[str, Any]) -> None:
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


def _train(args: argparse.Namespace) -> int:
    import prompt_gym  # noqa: F401  (registers the environments)
    from prompt_gym.agents.training import resume_conflicts, resume_settings, run_training, train_settings_from_args

    if args.resume:
        if args.overwrite:
            raise SystemExit("prompt-gym train: --resume continues a run and --overwrite replaces it; give one.")
        settings = resume_settings(args.resume, args.updates)
        conflicts = resume_conflicts(settings, args, _given_options(args))
        if conflicts:
            raise SystemExit(f"prompt-gym train: a resumed run keeps the settings saved in {args.resume}/run.json; "
                             "these flags differ from them: " + "; ".join(conflicts) + ". Drop them to resume, or "
                             "start a new run in another --out folder to use them.")
    else:
        if not args.out or not args.updates:
            raise SystemExit("prompt-gym train needs --out RUN_FOLDER and --updates N (or --resume RUN_FOLDER).")
        settings = train_settings_from_args(args)
    _print_training_results(run_training(settings, resume=bool(args.resume), overwrite=args.overwrite))
    print(f"outputs in {settings.out}")
    return 0


def _given_options(args: argparse.Namespace) -> set[str]:
    """The ``dest`` of every option written on the command line (``--lr 1e-5`` counts even if it is the default)."""
    dests = set(vars(args))
    given = set()
    for token in args.argv:
        if token.startswith("--") and len(token) > 2:
            name = token[2:].split("=", 1)[0].replace("-", "_")
            matches = [dest for dest in dests if dest == name] or [dest for dest in dests if dest.startswith(name)]
            given.update(matches[:1] if len(matches) == 1 else [])
    return given


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train an agent; writes logs, checkpoints, curves and a test report")
    train.add_argument("--env", default="PromptTune-SST2-v0", help="environment id (see `prompt-gym envs`)")
    train.add_argument("--agent", default="appo", choices=("appo",), help="the algorithm")
    train.add_argument("--agent-model", default="smollm2-135m-instruct", help="agent model spec")
    train.add_argument("--target", "--target-model", dest="target_model",
                       help="target: a model spec (default: the agent model, one shared copy) or a served model, "
                            "openai:<base_url>#<model> (see docs/remote-target.md)")
    train.add_argument("--updates", type=positive_int, help="total APPO updates (with --resume: the new total)")
    train.add_argument("--seed", type=non_negative_int, default=0, help="seed of the agent and of the first env reset")
    train.add_argument("--out", help="run folder (new or empty, unless --overwrite)")
    train.add_argument("--overwrite", action="store_true",
                       help="start a new run in --out even if it holds one: the earlier run's outputs are deleted")
    train.add_argument("--save-every", type=positive_int, default=10, help="updates between checkpoints")
    train.add_argument("--resume", help="continue the run in this folder from its newest verified checkpoint "
                                        "(with the saved settings; only --updates may change)")
    train.add_argument("--num-envs", type=positive_int, default=1, help="parallel environments (vector env when > 1)")
    train.add_argument("--action-mode", default="token", choices=("token", "text"), help="env action mode")
    train.add_argument("--preset", choices=sorted(PRESETS),
                       help="named APPO settings (paper: the StablePrompt code's); the flags below override it")
    train.add_argument("--batch-size", type=positive_int, help="prompts (episodes) per update (default 8)")
    train.add_argument("--lr", type=positive_float, help="learning rate (default 1e-3; the paper's 1e-5 is for 7B agents)")
    train.add_argument("--ppo-epochs", type=positive_int, help="passes over each batch (default 2)")
    train.add_argument("--advantage", choices=ADVANTAGES,
                       help="batch: critic-free, return minus the batch mean (default); critic: GAE with a value head")
    train.add_argument("--elite-replay", type=non_negative_int,
                       help="self-imitation: also train on this many best episodes so far (0: off, the paper)")
    train.add_argument("--temperature", type=positive_float, help="sampling temperature of the policy (default 1)")
    train.add_argument("--kl-coef", type=non_negative_float, help="beta of the KL penalty to the anchor (default 0.2)")
    train.add_argument("--anchor-check-interval", type=positive_int, help="updates between anchor checks (default 5)")
    train.add_argument("--anchor-samples", type=positive_int,
                       help="prompts sampled from the policy (and from the anchor) at each check (default 8)")
    train.add_argument("--anchor-threshold", type=non_negative_float,
                       help="validation margin for promote/rollback (default 0.05)")
    train.add_argument("--fixed-reference", action="store_true", help="ablation: plain PPO against the start model")
    train.add_argument("--no-rollback", action="store_true", help="ablation: never roll the policy back")
    train.add_argument("--max-prompt-tokens", type=positive_int, help="longest prompt (env setting)")
    train.add_argument("--num-demos", type=non_negative_int, help="demonstrations in the meta-prompt (env setting)")
    train.add_argument("--reward-batch-size", type=positive_int, help="training examples per reward (env setting)")
    train.add_argument("--test-split", help="which file serves as test (SST-2: validation=872, test=1821)")
    train.add_argument("--task", help="registered task to run the env on instead of its own (for example "
                                      "--env PromptTune-TTE-SST2-v0 --task mrpc: test-time editing on MRPC)")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument("--dtype", help="model dtype (default: bf16 on CUDA, fp32 on CPU)")
    train.set_defaults(run=_train)


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
    evaluate.add_argument("--manual-prompt", action="store_true", help="also evaluate the task's manual prompt")
    evaluate.add_argument("--split", default="test", choices=("test", "validation", "train"))
    evaluate.add_argument("--test-split", help="which file serves as test (SST-2: validation=872, test=1821)")
    evaluate.add_argument("--target", "--target-model", dest="target_model",
                          help="target: a model spec (default: smollm2-135m-instruct) or a served model, "
                               "openai:<base_url>#<model> (see docs/remote-target.md)")
    evaluate.add_argument("--json", help="also write the results to this JSON file")
    evaluate.set_defaults(run=_eval)

    _add_train_parser(sub)
    add_compare_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
