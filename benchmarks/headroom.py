"""How far above random search any prompt seen so far reaches on one task's test split.

Evidence 2 and 3 of the learning issue ask APPO's selected prompt to beat random search's by 3
points of test accuracy (mean of 3 seeds). This script counts every test scoring of a prompt that
the kept logs hold for one environment, to show how much room there is above random search:

* ``result.json`` of every ``prompt-gym compare`` run (the selected prompt of each agent and seed);
* ``*-pool-test.log`` (``benchmarks/pool_test_accuracy.py``: each run's pooled prompts on test);
* ``*-policy-test.log`` (``benchmarks/policy_test_accuracy.py``: prompts sampled from the starting
  and the trained policy);
* ``spread-*-test.json`` (``benchmarks/prompt_spread.py --test``: prompts of the untrained agent).

A log names its run folder (``runs/<name>``); the environment is read from that comparison's
``config.json`` under the logs folder, otherwise from the task slug in the log's file name. Nothing
here selects anything: test scores are read for reporting only. The random-search mean it prints
averages every kept random-search pick on the environment, whatever its budget (today one
comparison per task).

    python benchmarks/headroom.py                                  # SST-2, benchmarks/logs
    python benchmarks/headroom.py --env PromptTune-MR-v0 --above 0.72
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POOL_LINE = re.compile(r"^\s+val [\d.]+ \(gap [\d.]+\)\s+test ([\d.]+)\s+((['\"]).*\3)$")  # the prompt as repr()
POLICY_LINE = re.compile(r"^(?:\[seed \d+, [^\]]*\] )?(.+?): mean test accuracy [\d.]+ over \d+ sampled prompts "
                         r"\(([^)]*)\)$")
POOL_HEADER = re.compile(r"^runs/([\w.-]+) ([\w-]+) seed \d+:")
POLICY_HEADER = re.compile(r"^=== .* runs/([\w.-]+) ([\w-]+) \d+$")
TASK_SLUGS = {"sst2": "PromptTune-SST2-v0", "mr": "PromptTune-MR-v0", "cr": "PromptTune-CR-v0"}


@dataclass(frozen=True)
class TestScoring:
    """One prompt's test accuracy as a log recorded it.

    Attributes:
        source: Where it was read (a file under the logs folder).
        kind: ``pick`` (an agent's selected prompt), ``pool``, ``policy sample`` or ``untrained sample``.
        accuracy: Test accuracy.
        prompt: The prompt's text, where the log gives it (policy-sample logs do not).
        agent: The agent behind the prompt (``random-search``, ``appo``, ...), where the log says.
    """

    source: str
    kind: str
    accuracy: float
    prompt: str | None
    agent: str | None


def env_of(name: str, logs: Path, fallback: str | None) -> str | None:
    """The environment of comparison folder ``name`` (its kept ``config.json``), else the slug's in ``fallback``."""
    config = logs / name / "config.json"
    if config.is_file():
        return json.loads(config.read_text(encoding="utf-8"))["env_id"]
    for text in (name, fallback or ""):
        for slug, env_id in TASK_SLUGS.items():
            if re.search(rf"(^|[-_]){slug}([-_]|$)", text):
                return env_id
    return None


def picks(logs: Path, env_id: str) -> Iterator[TestScoring]:
    """The selected prompt of every kept comparison run on ``env_id``."""
    for path in sorted(logs.glob("**/runs/*/seed-*/result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        if result.get("env_id") == env_id and result.get("test_accuracy") is not None:
            yield TestScoring(str(path.relative_to(logs)), "pick", result["test_accuracy"], result["prompt"],
                              result["agent"])


def lines_by_run(path: Path, header: re.Pattern[str], logs: Path) -> Iterator[tuple[str | None, str | None, str]]:
    """``(environment, agent, line)`` for each line of a log whose ``header`` lines name the run folder and agent.

    Lines before the first header take the environment of the log's file name and no agent.
    """
    env_id, agent = env_of(path.name, logs, path.name), None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = header.match(line)
        if match:
            env_id, agent = env_of(match.group(1), logs, path.name), match.group(2)
        else:
            yield env_id, agent, line


def pool_scorings(logs: Path, env_id: str) -> Iterator[TestScoring]:
    """Pooled prompts scored on test by ``pool_test_accuracy.py``."""
    for path in sorted(logs.glob("*-pool-test.log")):
        for line_env, agent, line in lines_by_run(path, POOL_HEADER, logs):
            match = POOL_LINE.match(line)
            if match and line_env == env_id:
                yield TestScoring(path.name, "pool", float(match.group(1)), ast.literal_eval(match.group(2)), agent)


def policy_scorings(logs: Path, env_id: str) -> Iterator[TestScoring]:
    """Prompts sampled from starting and trained policies (``policy_test_accuracy.py``); no texts are logged."""
    for path in sorted(logs.glob("*-policy-test.log")):
        seen = set()
        for line_env, agent, line in lines_by_run(path, POLICY_HEADER, logs):
            match = POLICY_LINE.match(line)
            if match and line_env == env_id and line not in seen:  # a starting policy is logged once per run
                seen.add(line)
                for value in match.group(2).split(","):
                    yield TestScoring(path.name, "policy sample", float(value), None, agent)


def spread_scorings(logs: Path, env_id: str) -> Iterator[TestScoring]:
    """The untrained agent's prompts scored on test by ``prompt_spread.py --test``."""
    for path in sorted(logs.glob("spread-*-test.json")):
        if env_of(path.stem, logs, path.name) != env_id:
            continue
        for row in json.loads(path.read_text(encoding="utf-8")):
            yield TestScoring(path.name, "untrained sample", row["test_accuracy"], row["prompt"], None)


def collect(logs: Path, env_id: str) -> list[TestScoring]:
    """Every test scoring of a prompt on ``env_id`` that the logs under ``logs`` hold, each prompt once.

    A selected prompt also appears in its run's pool with the same score; a prompt is counted once
    (the first source listed above). Policy samples have no logged text and are counted as logged.
    """
    scorings, seen = [], set()
    for scoring in (*picks(logs, env_id), *pool_scorings(logs, env_id), *policy_scorings(logs, env_id),
                    *spread_scorings(logs, env_id)):
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
    parser.add_argument("--above", type=float, default=0.78, help="also count the scorings at or above this accuracy")
    parser.add_argument("--top", type=int, default=5, help="list the best N scorings")
    args = parser.parse_args()

    scorings = collect(args.logs, args.env)
    if not scorings:
        raise SystemExit(f"No test scorings for {args.env} under {args.logs}.")
    kinds = sorted({s.kind for s in scorings})
    print(f"{args.env}: {len(scorings)} test scorings of prompts under {os.path.relpath(args.logs)} "
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
