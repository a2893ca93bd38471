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
``--target`` names the one a comparison was run with. A comparison's target is read from its kept
``config.json``. Nothing here selects anything: test scores are read for reporting only. The
random-search mean it prints averages every kept random-search pick on the environment and target,
whatever its budget.

    python benchmarks/headroom.py                                  # SST-2, benchmarks/logs
    python benchmarks/headroom.py --env PromptTune-MR-v0 --above 0.72
    python benchmarks/headroom.py --target gemma3-270m
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


@dataclass(frozen=True)
class TestScoring:
    """One prompt's test accuracy as a log recorded it.

    Attributes:
        source: Where it was read (a file under the logs folder).
        kind: ``pick`` (an agent's selected prompt), ``pool``, ``policy sample`` or ``untrained sample``.
        accuracy: Test accuracy.
        prompt: The prompt's text, where the log gives it (converted policy-sample logs do not).
        agent: The agent behind the prompt (``random-search``, ``appo``, ...), where the log says.
    """

    source: str
    kind: str
    accuracy: float
    prompt: str | None
    agent: str | None


def picks(logs: Path, env_id: str, target: str | None) -> Iterator[TestScoring]:
    """The selected prompt of every kept comparison run on ``env_id`` with ``target``."""
    for path in sorted(logs.glob("**/runs/*/seed-*/result.json")):
        config = json.loads((path.parents[3] / "config.json").read_text(encoding="utf-8"))
        result = json.loads(path.read_text(encoding="utf-8"))
        if (result.get("env_id") == env_id and config["env_kwargs"].get("target") == target
                and result.get("test_accuracy") is not None):
            yield TestScoring(str(path.relative_to(logs)), "pick", result["test_accuracy"], result["prompt"],
                              result["agent"])


def records(logs: Path, script: str, env_id: str, target: str | None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(file, record)`` for each JSON-lines record that ``script`` wrote for ``env_id`` and ``target``."""
    for path in sorted(logs.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["script"] == script and record["env_id"] == env_id and record["target"] == target:
                yield path, record


def pool_scorings(logs: Path, env_id: str, target: str | None) -> Iterator[TestScoring]:
    """Pooled prompts scored on test by ``pool_test_accuracy.py``."""
    for path, record in records(logs, "pool_test_accuracy", env_id, target):
        for entry in record["prompts"]:
            yield TestScoring(path.name, "pool", entry["test_accuracy"], entry["prompt"], record["agent"])


def policy_scorings(logs: Path, env_id: str, target: str | None) -> Iterator[TestScoring]:
    """Prompts sampled from starting and trained policies (``policy_test_accuracy.py``).

    A starting policy's samples recur in every record of its seed's runs; they count once.
    """
    seen = set()
    for path, record in records(logs, "policy_test_accuracy", env_id, target):
        starting = tuple((entry["prompt"], entry["test_accuracy"]) for entry in record["starting"])
        fresh_start = (record["seed"], starting) not in seen
        seen.add((record["seed"], starting))
        for entry in (record["starting"] if fresh_start else []) + record["trained"]:
            yield TestScoring(path.name, "policy sample", entry["test_accuracy"], entry["prompt"], record["agent"])


def spread_scorings(logs: Path, env_id: str, target: str | None) -> Iterator[TestScoring]:
    """The untrained agent's prompts scored on test by ``prompt_spread.py --test`` (default model as target)."""
    slug = env_id.removeprefix("PromptTune-").removesuffix("-v0").lower()
    if target is not None:
        return
    for path in sorted(logs.glob(f"spread-{slug}-*test.json")):
        for row in json.loads(path.read_text(encoding="utf-8")):
            yield TestScoring(path.name, "untrained sample", row["test_accuracy"], row["prompt"], None)


def collect(logs: Path, env_id: str, target: str | None) -> list[TestScoring]:
    """Every test scoring of a prompt on ``env_id`` by ``target`` that the logs under ``logs`` hold, each prompt once.

    A selected prompt also appears in its run's pool with the same score; a prompt is counted once
    (the first source listed above). Policy samples without a logged text are counted as logged.
    """
    scorings, seen = [], set()
    for scoring in (*picks(logs, env_id, target), *pool_scorings(logs, env_id, target),
                    *policy_scorings(logs, env_id, target), *spread_scorings(logs, env_id, target)):
        if scoring.prompt is not None:
            if scoring.prompt in seen:
                continue
            seen.add(scoring.prompt)
        scorings.append(scoring)
    return scorings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--logs", type=Path, default=Path(__file__).parent / "logs")
    parser.add_argument("--env", default="PromptTune-SST2-v0")
    parser.add_argument("--target", help="the target a comparison named (default: the agent model)")
    parser.add_argument("--above", type=float, default=0.78, help="also count the scorings at or above this accuracy")
    parser.add_argument("--top", type=int, default=5, help="list the best N scorings")
    args = parser.parse_args()

    scorings = collect(args.logs, args.env, args.target)
    target = args.target or "the default model"
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
    for scoring in sorted(scorings, key=lambda s: -s.accuracy)[:args.top]:
        print(f"  {scoring.accuracy:.3f}  {scoring.kind:16s} {scoring.agent or '-':13s} {scoring.source}  "
              f"{(scoring.prompt or '(text not logged)')[:70]!r}")


if __name__ == "__main__":
    main()
