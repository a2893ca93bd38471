"""How far above random search any prompt seen so far reaches on one task's test split.

Evidence 2 and 3 of the learning issue ask APPO's selected prompt to beat random search's by 3
points of test accuracy (mean of 3 seeds). This script counts every test scoring of a prompt that
the kept logs hold for one environment, to show how much room there is above random search:

* ``result.json`` of every ``prompt-gym compare`` run (the selected prompt of each agent and seed);
* ``*.jsonl`` records of ``benchmarks/pool_test_accuracy.py --json`` (each run's pooled prompts on
  test) and of ``benchmarks/policy_test_accuracy.py --json`` (prompts sampled from the starting and
  the trained policy); the records of the earliest runs were converted from those scripts' text
  logs (``converted_from``), which name no prompt texts for policy samples;
* ``spread-*-test.json`` (``benchmarks/prompt_spread.py --test``: prompts of the untrained agent,
  scored by the default model).

Only scorings by one target count: the default model (the agent model's shared copy) unless
``--target`` names the one a comparison was run with, and the raw target unless ``--calibration``
names the calibration a comparison used (a calibrated target scores the same prompt differently).
A comparison's target and calibration are read from its kept ``config.json``. Nothing here selects
anything: test scores are read for reporting only. The random-search mean it prints averages every
kept random-search pick on the environment and target, whatever its budget.

It also sets each run's pick beside the best prompt of the run's pool on test (the records of
``pool_test_accuracy.py``): what a selection that never erred among the pooled prompts would have
reported, the most a less noisy selection could add to that run.

    python benchmarks/headroom.py                                  # SST-2, benchmarks/logs
    python benchmarks/headroom.py --env PromptTune-MR-v0 --above 0.72
    python benchmarks/headroom.py --target gemma3-270m
    python benchmarks/headroom.py --calibration batch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compared_runs import comparison_config


@dataclass(frozen=True)
class TestScoring:
    """One prompt's test accuracy as a log recorded it.

    Attributes:
        source: Where it was read (a file under the logs folder).
        kind: ``pick`` (an agent's selected prompt), ``pool``, ``policy sample``, ``policy greedy`` (a
            policy's most likely prompt) or ``untrained sample``.
        accuracy: Test accuracy.
        prompt: The prompt's text, where the log gives it (converted policy-sample logs do not).
        agent: The agent behind the prompt (``random-search``, ``appo``, ...), where the log says.
    """

    source: str
    kind: str
    accuracy: float
    prompt: str | None
    agent: str | None


@dataclass(frozen=True)
class Scoring:
    """How a target scored prompts: the environment, the target (``None``: the default model) and its calibration."""

    env_id: str
    target: str | None
    calibration: str | None


def picks(logs: Path, scoring: Scoring) -> Iterator[TestScoring]:
    """The selected prompt of every kept comparison run scored as ``scoring``."""
    for path in sorted(logs.glob("**/runs/*/seed-*/result.json")):
        env_kwargs = comparison_config(path.parents[3])["env_kwargs"]
        result = json.loads(path.read_text(encoding="utf-8"))
        if (result.get("env_id") == scoring.env_id and env_kwargs.get("target") == scoring.target
                and env_kwargs.get("calibration") == scoring.calibration and result.get("test_accuracy") is not None):
            yield TestScoring(str(path.relative_to(logs)), "pick", result["test_accuracy"], result["prompt"],
                              result["agent"])


def records(logs: Path, script: str, scoring: Scoring) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(file, record)`` for each JSON-lines record that ``script`` wrote for runs scored as ``scoring``."""
    for path in sorted(logs.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if (record["script"] == script and record["env_id"] == scoring.env_id
                    and record["target"] == scoring.target and record.get("calibration") == scoring.calibration):
                yield path, record


def pool_scorings(logs: Path, scoring: Scoring) -> Iterator[TestScoring]:
    """Pooled prompts scored on test by ``pool_test_accuracy.py``."""
    for path, record in records(logs, "pool_test_accuracy", scoring):
        for entry in record["prompts"]:
            yield TestScoring(path.name, "pool", entry["test_accuracy"], entry["prompt"], record["agent"])


def policy_scorings(logs: Path, scoring: Scoring) -> Iterator[TestScoring]:
    """Prompts written by starting and trained policies (``policy_test_accuracy.py``), sampled or greedy.

    A starting policy's prompts recur in every record of its seed's runs; they count once.
    """
    seen = set()
    for path, record in records(logs, "policy_test_accuracy", scoring):
        for suffix, kind in (("", "policy sample"), ("_greedy", "policy greedy")):
            starting = record.get("starting" + suffix, [])
            start_key = (record["seed"], suffix, tuple((entry["prompt"], entry["test_accuracy"]) for entry in starting))
            fresh_start = start_key not in seen
            seen.add(start_key)
            for entry in (starting if fresh_start else []) + record.get("trained" + suffix, []):
                yield TestScoring(path.name, kind, entry["test_accuracy"], entry["prompt"], record["agent"])


def spread_scorings(logs: Path, scoring: Scoring) -> Iterator[TestScoring]:
    """The untrained agent's prompts scored on test by ``prompt_spread.py --test`` (the raw default model as target)."""
    slug = scoring.env_id.removeprefix("PromptTune-").removesuffix("-v0").lower()
    if scoring.target is not None or scoring.calibration is not None:
        return
    for path in sorted(logs.glob(f"spread-{slug}-*test.json")):
        for row in json.loads(path.read_text(encoding="utf-8")):
            yield TestScoring(path.name, "untrained sample", row["test_accuracy"], row["prompt"], None)


def collect(logs: Path, scoring: Scoring) -> list[TestScoring]:
    """Every test scoring of a prompt scored as ``scoring`` that the logs under ``logs`` hold, each prompt once.

    A selected prompt also appears in its run's pool with the same score; a prompt is counted once
    (the first source listed above). Policy samples without a logged text are counted as logged.
    """
    scorings, seen = [], set()
    for scored in (*picks(logs, scoring), *pool_scorings(logs, scoring),
                   *policy_scorings(logs, scoring), *spread_scorings(logs, scoring)):
        if scored.prompt is not None:
            if scored.prompt in seen:
                continue
            seen.add(scored.prompt)
        scorings.append(scored)
    return scorings


def pick_against_pool_best(logs: Path, scoring: Scoring) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
    """``(seed, reported, pool's best)`` test accuracies of each run with a pool record, by ``(folder, agent)``.

    A comparison run one seed per folder (``runs/gemma-sst2-appo-13``) is grouped under the folder's
    name without the seed (``runs/gemma-sst2-appo``).

    A run's pool can be read after its last checkpoint only, so a reported prompt chosen later may be
    missing from it (``pool_test_accuracy.py`` says so); the pool's best then counts the reported
    prompt too.
    """
    runs: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for _, record in records(logs, "pool_test_accuracy", scoring):
        reported = record["reported"]["test_accuracy"]
        best = max([entry["test_accuracy"] for entry in record["prompts"]] + [reported])
        folder = record["folder"].removesuffix(f"-{record['seed']}")
        runs.setdefault((folder, record["agent"]), []).append((record["seed"], reported, best))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--logs", type=Path, default=Path(__file__).parent / "logs")
    parser.add_argument("--env", default="PromptTune-SST2-v0")
    parser.add_argument("--target", help="the target a comparison named (default: the agent model)")
    parser.add_argument("--calibration", help="the calibration a comparison used (default: none, the raw target)")
    parser.add_argument("--above", type=float, default=0.78, help="also count the scorings at or above this accuracy")
    parser.add_argument("--top", type=int, default=5, help="list the best N scorings")
    args = parser.parse_args()

    scoring = Scoring(args.env, args.target, args.calibration)
    scorings = collect(args.logs, scoring)
    target = (args.target or "the default model") + (f", {args.calibration} calibration" if args.calibration else "")
    if not scorings:
        raise SystemExit(f"No test scorings for {args.env} with {target} as target under {args.logs}.")
    kinds = sorted({s.kind for s in scorings})
    print(f"{args.env}, {target} as target: {len(scorings)} test scorings of prompts under {os.path.relpath(args.logs)} "
          f"({', '.join(f'{sum(s.kind == k for s in scorings)} {k}' for k in kinds)}; each prompt once)")
    best = max(scorings, key=lambda s: s.accuracy)
    print(f"best {best.accuracy:.3f}; {sum(s.accuracy >= args.above for s in scorings)} at or above {args.above}")
    rs = [s.accuracy for s in scorings if s.kind == "pick" and s.agent == "random-search"]
    if rs:
        mean = statistics.mean(rs)
        print(f"random search's picks: {len(rs)} runs, mean {mean:.3f}; 3 points above it: {mean + 0.03:.3f}")
    for scored in sorted(scorings, key=lambda s: -s.accuracy)[:args.top]:
        print(f"  {scored.accuracy:.3f}  {scored.kind:16s} {scored.agent or '-':13s} {scored.source}  "
              f"{(scored.prompt or '(text not logged)')[:70]!r}")
    pools = pick_against_pool_best(args.logs, scoring)
    if pools:
        print("each run's pick against its pool's best prompt on test (a selection that never erred in the pool):")
    for (folder, agent), runs in sorted(pools.items()):
        seeds = ", ".join(f"{seed}: {reported:.3f} / {best:.3f}" for seed, reported, best in sorted(runs))
        print(f"  {folder} {agent}: mean {statistics.mean(r for _, r, _ in runs):.3f} / "
              f"{statistics.mean(b for _, _, b in runs):.3f} over {len(runs)} seeds ({seeds})")


if __name__ == "__main__":
    main()
