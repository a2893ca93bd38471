"""The ``prompt-gym compare`` subcommand (argument parsing only; the work is in :mod:`prompt_gym.runs.compare`)."""

from __future__ import annotations

import argparse

from prompt_gym.agents.registry import AGENTS
from prompt_gym.checkpoint import CheckpointError
from prompt_gym.runs.cli_types import comma_separated, positive_int
from prompt_gym.runs.compare import CompareConfig, run_comparison
from prompt_gym.runs.flags import json_object
from prompt_gym.runs.settings import DEFAULT_ENV

DEFAULT_SEEDS = (13, 21, 42)
"""LM-BFF's few-shot splits (each seed also picks the split, see ``--fixed-data``)."""


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(item) for item in comma_separated(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds takes at least one integer, got {text!r}")
    return seeds


def _compare(args: argparse.Namespace) -> int:
    try:
        config = CompareConfig(
            env_id=args.env, agents=comma_separated(args.agents), budget=args.budget, seeds=args.seeds, out=args.out,
            agent_model=args.agent_model, agent_options=args.agent_options,
            env_kwargs=args.env_kwargs | ({"target": args.target} if args.target else {}),
            vary_data=not args.fixed_data,
            **({"checkpoint_every": args.checkpoint_every} if args.checkpoint_every else {}))
        run_comparison(config)
    except (ValueError, CheckpointError) as error:
        raise SystemExit(f"prompt-gym compare: {error}") from None
    print((config.out / "results.md").read_text(encoding="utf-8"))
    print(f"table: {config.out / 'results.md'} and results.csv; curves: {config.out / 'learning_curves.png'}")
    return 0


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``compare`` to the ``prompt-gym`` subcommands."""
    agents = "; ".join(f"{name}: {spec.summary}" for name, spec in AGENTS.items())
    compare = sub.add_parser(
        "compare", help="compare agents on one env under one budget of target evaluations",
        description="Run every agent for every seed under the same budget of target-LLM evaluations, select each "
                    "run's prompt on validation, report test accuracy; writes results.md/.csv and "
                    "learning_curves.png. Rerun the same command to resume. Agents: " + agents)
    compare.add_argument("--env", default=DEFAULT_ENV, help="environment id (see `prompt-gym envs`)")
    compare.add_argument("--agents", default="appo,ppo,pg-group,random-search,manual,sb3:ppo",
                         help="comma-separated agent names")
    compare.add_argument("--budget", type=positive_int, required=True,
                         help="target-LLM evaluations (prompt x example pairs) per run, prompt selection included")
    compare.add_argument("--seeds", type=_seeds, default=list(DEFAULT_SEEDS),
                         help=f"comma-separated seeds (default {','.join(map(str, DEFAULT_SEEDS))})")
    compare.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    compare.add_argument("--target", help="target: a model spec or a served model, openai:<base_url>#<model> "
                                          "(see docs/remote-target.md); default: the agent model (one shared "
                                          "copy), or the task's own rule target")
    compare.add_argument("--agent-model",
                         help="agent LLM spec (default: the default model; a tiny LM on the toy env)")
    compare.add_argument("--env-kwargs", type=json_object, default={},
                         help='extra gym.make arguments as JSON, e.g. \'{"reward_batch_size": 8}\'')
    compare.add_argument("--agent-options", type=json_object, default={},
                         help='per-agent config fields as JSON, e.g. \'{"appo": {"learning_rate": 1e-4}}\'')
    compare.add_argument("--fixed-data", action="store_true",
                         help="keep the env's few-shot split for every seed (default: data_seed = seed)")
    compare.add_argument("--checkpoint-every", type=positive_int,
                         help="updates between checkpoints of agents that write them (appo, ppo, pg-group, "
                              f"random-search; default {CompareConfig.checkpoint_every})")
    compare.set_defaults(run=_compare)
