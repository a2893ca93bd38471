"""The policy's own accuracy over training, per agent and seed, from ``prompt-gym compare`` folders.

Every learning agent measures its policy at update 0 and every few updates: it samples prompts from
fixed validation meta-prompts and scores each on the whole validation split (``eval/policy_accuracy``).
This script reads those measurements from each run's log, prints a table (the measurement at
update 0, the mean of the last three, the change, the best) and draws one figure with a panel per
agent against target-LLM evaluations.

    python benchmarks/policy_curves.py runs/learn-sst2 --out benchmarks/figures/learn_sst2_policy.png
    python benchmarks/policy_curves.py runs/learn-sst2-elite runs/learn-sst2-ppo    # agents of both, one figure
    python benchmarks/policy_curves.py runs/learn-sst2-elite runs/learn-sst2-screened=screened   # "appo (screened)"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

KEY = "eval/policy_accuracy"
X_KEY = "time/target_evaluations"


def read_curves(folder: Path) -> dict[str, dict[int, list[tuple[int, float, float]]]]:
    """``{agent: {seed: [(update, evaluations, policy accuracy), ...]}}`` from ``<folder>/runs/*/seed-*/log``."""
    curves: dict[str, dict[int, list[tuple[int, float, float]]]] = {}
    for log in sorted(folder.glob("runs/*/seed-*/log/log.jsonl")):
        agent, seed = log.parents[2].name, int(log.parents[1].name.split("-", 1)[1])
        points = []
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if record.get(KEY) is not None:
                points.append((int(record["step"]), float(record.get(X_KEY, 0.0)), float(record[KEY])))
        if points:
            curves.setdefault(agent, {})[seed] = points
    return curves


def summary_rows(curves: dict[str, dict[int, list[tuple[int, float, float]]]]) -> list[dict[str, Any]]:
    """One row per (agent, seed): the first measurement, the mean of the last three, their difference, the best."""
    rows = []
    for agent, seeds in curves.items():
        for seed, points in sorted(seeds.items()):
            first, tail = points[0], points[-3:]
            late = sum(p[2] for p in tail) / len(tail)
            rows.append({"agent": agent, "seed": seed, "first": first[2], "late_updates": f"{tail[0][0]}-{tail[-1][0]}",
                         "late": late, "change": late - first[2], "best": max(p[2] for p in points),
                         "evaluations": tail[-1][1]})
    return rows


def plot(curves: dict[str, dict[int, list[tuple[int, float, float]]]], path: Path) -> Path:
    """One panel per agent: policy accuracy against updates, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(max(6.0, 4.2 * len(curves)), 3.6), sharey=True, squeeze=False)
    for axis, (agent, seeds) in zip(axes[0], curves.items(), strict=True):
        for index, (seed, points) in enumerate(sorted(seeds.items())):
            axis.plot([p[1] for p in points], [p[2] for p in points], "o-", color=f"C{index}", label=f"seed {seed}")
        axis.set_title(agent)
        axis.set_xlabel("target-LLM evaluations")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    axes[0, 0].set_ylabel("policy's own val. accuracy")
    fig.suptitle("policy's own accuracy: mean val. accuracy of its sampled prompts", fontsize="medium")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+",
                        help="prompt-gym compare output folders (same env); FOLDER=TAG names its agents 'agent (TAG)'")
    parser.add_argument("--out", type=Path, help="PNG to write (default: <first folder>/policy_curves.png)")
    args = parser.parse_args()
    curves: dict[str, dict[int, list[tuple[int, float, float]]]] = {}
    folders = []
    for argument in args.folders:
        folder, _, tag = argument.partition("=")
        folders.append(Path(folder))
        for agent, seeds in read_curves(Path(folder)).items():
            agent = f"{agent} ({tag})" if tag else agent
            if agent in curves:
                raise SystemExit(f"Agent {agent!r} appears in more than one folder; give each agent's runs once "
                                 "or tag a folder (FOLDER=TAG).")
            curves[agent] = seeds
    if not curves:
        raise SystemExit(f"No run in {', '.join(map(str, folders))} has logged {KEY} yet.")
    print("| agent | seed | update 0 | last three checks (updates) | change | best check | evaluations |")
    print("|---|---|---|---|---|---|---|")
    for row in summary_rows(curves):
        print(f"| {row['agent']} | {row['seed']} | {row['first']:.3f} | {row['late']:.3f} ({row['late_updates']}) | "
              f"{row['change']:+.3f} | {row['best']:.3f} | {row['evaluations']:.0f} |")
    print(plot(curves, args.out or folders[0] / "policy_curves.png"))


if __name__ == "__main__":
    main()
