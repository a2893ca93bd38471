"""The ``prompt-gym report`` subcommand: one table for comparison folders run apart.

Runs of one comparison are often spread over several ``--out`` folders (one per core, per seed or
per machine, since two ``compare`` processes must not share a folder). ``report`` joins their
finished runs into the tables and curves that ``compare`` writes (:mod:`prompt_gym.runs.report`),
after checking that they are comparable: the same env, budget, models, env options and data
seeding, each (agent, seed) in one folder only, and each agent run with the same options everywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prompt_gym.runs.cli_types import comma_separated
from prompt_gym.runs.compare import EXTENSIBLE_SETTINGS, read_comparison
from prompt_gym.runs.report import DEFAULT_BASELINE, report_markdown, write_report

PER_AGENT_SETTINGS = ("agent_options",)
"""``config.json`` fields checked agent by agent: each agent must have run with one configuration."""


def shared_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a comparison's ``config.json`` that every joined comparison must share.

    Every field but the agents and seeds a folder ran (:data:`~prompt_gym.runs.compare.EXTENSIBLE_SETTINGS`)
    and the agents' options (checked per agent), so a field that ``compare`` adds is checked too.
    """
    return {key: value for key, value in config.items()
            if key not in EXTENSIBLE_SETTINGS and key not in PER_AGENT_SETTINGS}


def join_comparisons(
    folders: Sequence[Path], agents: Sequence[str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The shared settings and the finished runs of several comparison folders.

    Args:
        folders: ``compare`` output folders.
        agents: Keep only these agents' runs (``None``: every agent).

    Returns:
        The settings every folder shares (:func:`shared_settings`) and every finished run, folder by
        folder.

    Raises:
        ValueError: A folder holds no comparison, the folders' settings differ, a run appears in two
            folders, or an agent ran with different options in two folders.
    """
    shared: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    where: dict[tuple[str, int], Path] = {}
    options: dict[str, tuple[Path, Any]] = {}
    for folder in map(Path, folders):
        config, runs = read_comparison(folder)
        settings = shared_settings(config)
        differ = sorted(key for key in settings.keys() | shared.keys()
                        if shared and settings.get(key) != shared.get(key))
        if differ:
            raise ValueError(f"{folder} differs from {folders[0]} in {', '.join(differ)}; only comparisons with the "
                             "same env, budget, models, env options and data seeding share a table.")
        shared = shared or settings
        for run in runs:
            if agents is not None and run["agent"] not in agents:
                continue
            key = (run["agent"], run["seed"])
            if key in where:
                raise ValueError(f"{run['agent']} seed {run['seed']} finished in both {where[key]} and {folder}; "
                                 "give each run's folder once.")
            where[key] = folder
            agent_options = config.get("agent_options", {}).get(run["agent"], {})
            first_folder, first_options = options.setdefault(run["agent"], (folder, agent_options))
            if agent_options != first_options:
                raise ValueError(f"{run['agent']} ran with other options in {folder} than in {first_folder}; a "
                                 "table must compare one configuration per agent.")
            results.append(run)
    return shared, results


def _report(args: argparse.Namespace) -> int:
    try:
        settings, results = join_comparisons(args.folders, args.agents)
    except ValueError as error:
        raise SystemExit(f"prompt-gym report: {error}") from None
    if not results:
        raise SystemExit("prompt-gym report: no finished run in " + ", ".join(map(str, args.folders))
                         + "; runs appear once their result.json is written.")
    title = f"{settings['env_id']}, budget {settings['budget']}"
    print(report_markdown(results, settings["budget"], title, args.baseline))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        paths = write_report(results, out, settings["budget"], title, args.baseline)
        print(f"table: {paths['markdown']} and results.csv; curves: {paths['plot']}")
    return 0


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``report`` to the ``prompt-gym`` subcommands."""
    report = sub.add_parser(
        "report", help="one table from several comparison folders (runs of one comparison run apart)",
        description="Join the finished runs of `prompt-gym compare` folders that share env, budget, models and "
                    "env options; print results.md's tables (mean ± std per agent, and each agent minus the "
                    "baseline paired by seed) and with --out also write results.csv, runs.csv and "
                    "learning_curves.png.")
    report.add_argument("folders", nargs="+", type=Path, help="comparison --out folders")
    report.add_argument("--agents", type=comma_separated,
                        help="comma-separated agents to keep (default: every agent found)")
    report.add_argument("--out", help="write the joined outputs into this folder (created if missing)")
    report.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help=f"agent the paired table subtracts (default {DEFAULT_BASELINE})")
    report.set_defaults(run=_report)
