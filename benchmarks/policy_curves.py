"""The policy's own accuracy over training, per agent and seed, from ``prompt-gym compare`` folders.

Every learning agent measures its policy at update 0 and every few updates: it samples prompts from
fixed validation meta-prompts and scores each on the whole validation split (``eval/policy_accuracy``).
This script reads those measurements from each run's log, prints a table (the measurement at
update 0, the mean of the last three, the change, the best) and draws one figure with a panel per
agent against target-LLM evaluations. With ``--training`` it adds each run's training-batch accuracy
(``rollout/accuracy``: the sampled prompts on the reward batch, a running mean of 5 logged updates) as a
dashed line and a table column: a policy that fits the training examples without generalising shows
a dashed line that climbs while the solid one stays flat. For APPO the table also gives the update of
the anchor's first promotion (``anchor/promotions``), the earliest sign that a seed is learning.

    python benchmarks/policy_curves.py runs/learn-sst2 --out benchmarks/figures/learn_sst2_policy.png
    python benchmarks/policy_curves.py runs/learn-sst2-elite runs/learn-sst2-ppo    # agents of both, one figure
    python benchmarks/policy_curves.py runs/learn-sst2-elite runs/learn-sst2-screened=screened   # "appo (screened)"
    python benchmarks/policy_curves.py runs/learn-sst2-32k --training    # training-batch accuracy too
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

KEY = "eval/policy_accuracy"
TRAINING_KEY = "rollout/accuracy"
PROMOTIONS_KEY = "anchor/promotions"
X_KEY = "time/target_evaluations"
TRAINING_WINDOW = 5

Curves = dict[str, dict[int, list[tuple[int, float, float]]]]


def read_curves(folder: Path, key: str = KEY) -> Curves:
    """``{agent: {seed: [(update, evaluations, value of key), ...]}}`` from ``<folder>/runs/*/seed-*/log``."""
    curves: Curves = {}
    for log in sorted(folder.glob("runs/*/seed-*/log/log.jsonl")):
        agent, seed = log.parents[2].name, int(log.parents[1].name.split("-", 1)[1])
        points = []
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if record.get(key) is not None:
                points.append((int(record["step"]), float(record.get(X_KEY, 0.0)), float(record[key])))
        if points:
            curves.setdefault(agent, {})[seed] = points
    return curves


def running_mean(points: list[tuple[int, float, float]], window: int = TRAINING_WINDOW) -> list[tuple[int, float, float]]:
    """Each point's value replaced by the mean over it and the ``window - 1`` points before it."""
    values = [p[2] for p in points]
    return [(update, x, sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1)))
            for i, (update, x, _) in enumerate(points)]


def first_promotion(points: list[tuple[int, float, float]] | None) -> str:
    """The update at which the running count of promotions first exceeds 0; "none" if never, "-" if not logged."""
    if not points:
        return "-"
    return next((str(update) for update, _, count in points if count > 0), "none")


def summary_rows(
    curves: Curves, training: Curves | None = None, promotions: Curves | None = None
) -> list[dict[str, Any]]:
    """One row per (agent, seed): the first measurement, the mean of the last three, their difference, the best.

    With ``training``, each row also has ``training_first`` and ``training_late``: the mean
    training-batch accuracy of the first and the last ``2 * TRAINING_WINDOW`` logged updates (fewer
    when the log is short, so that the two never overlap). Every row has ``first_promotion``
    (:func:`first_promotion` of the run's ``promotions`` points).
    """
    rows = []
    for agent, seeds in curves.items():
        for seed, points in sorted(seeds.items()):
            first, tail = points[0], points[-3:]
            late = sum(p[2] for p in tail) / len(tail)
            row = {"agent": agent, "seed": seed, "first": first[2], "late_updates": f"{tail[0][0]}-{tail[-1][0]}",
                   "late": late, "change": late - first[2], "best": max(p[2] for p in points),
                   "evaluations": tail[-1][1],
                   "first_promotion": first_promotion((promotions or {}).get(agent, {}).get(seed))}
            batches = (training or {}).get(agent, {}).get(seed)
            if batches and len(batches) >= 2:
                span = min(2 * TRAINING_WINDOW, len(batches) // 2)  # two windows that do not overlap
                row["training_first"] = sum(p[2] for p in batches[:span]) / span
                row["training_late"] = sum(p[2] for p in batches[-span:]) / span
            rows.append(row)
    return rows


def plot(curves: Curves, path: Path, training: Curves | None = None) -> Path:
    """One panel per agent: policy accuracy against evaluations, one line per seed (training accuracy dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {seed: f"C{index}" for index, seed in enumerate(sorted({s for seeds in curves.values() for s in seeds}))}
    fig, axes = plt.subplots(1, len(curves), figsize=(max(6.0, 4.2 * len(curves)), 3.6), sharey=True, squeeze=False)
    for axis, (agent, seeds) in zip(axes[0], curves.items(), strict=True):
        for seed, points in sorted(seeds.items()):
            axis.plot([p[1] for p in points], [p[2] for p in points], "o-", color=colours[seed], label=f"seed {seed}")
            batches = (training or {}).get(agent, {}).get(seed)
            if batches:
                smooth = running_mean(batches)
                axis.plot([p[1] for p in smooth], [p[2] for p in smooth], "--", color=colours[seed], alpha=0.7)
        axis.set_title(agent)
        axis.set_xlabel("target-LLM evaluations")
        axis.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    axes[0, 0].set_ylabel("policy's own val. accuracy")
    title = "policy's own accuracy: mean val. accuracy of its sampled prompts"
    if training:
        title += f"\n(dashed: training-batch accuracy, mean of {TRAINING_WINDOW} logged updates)"
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tagged(agent: str, tag: str) -> str:
    """The agent's name as the table and figure show it: ``"agent (TAG)"`` for a folder given as ``FOLDER=TAG``."""
    return f"{agent} ({tag})" if tag else agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+",
                        help="prompt-gym compare output folders (same env); FOLDER=TAG names its agents 'agent (TAG)'")
    parser.add_argument("--out", type=Path, help="PNG to write (default: <first folder>/policy_curves.png)")
    parser.add_argument("--training", action="store_true",
                        help=f"also show the training-batch accuracy ({TRAINING_KEY}) to see a policy overfit")
    args = parser.parse_args()
    curves: Curves = {}
    promotions: Curves = {}
    training: Curves | None = {} if args.training else None
    folders = []
    for argument in args.folders:
        folder, _, tag = argument.partition("=")
        folders.append(Path(folder))
        for agent, seeds in read_curves(Path(folder)).items():
            agent = tagged(agent, tag)
            if agent in curves:
                raise SystemExit(f"Agent {agent!r} appears in more than one folder; give each agent's runs once "
                                 "or tag a folder (FOLDER=TAG).")
            curves[agent] = seeds
        for agent, seeds in read_curves(Path(folder), PROMOTIONS_KEY).items():
            promotions[tagged(agent, tag)] = seeds
        if training is not None:
            for agent, seeds in read_curves(Path(folder), TRAINING_KEY).items():
                training[tagged(agent, tag)] = seeds
    if not curves:
        raise SystemExit(f"No run in {', '.join(map(str, folders))} has logged {KEY} yet.")
    extra = f" training batch: first -> last {2 * TRAINING_WINDOW} logged updates |" if training is not None else ""
    print("| agent | seed | update 0 | last three checks (updates) | change | best check | first promotion | "
          f"evaluations |{extra}")
    print("|---|---|---|---|---|---|---|---|" + ("---|" if extra else ""))
    for row in summary_rows(curves, training, promotions):
        line = (f"| {row['agent']} | {row['seed']} | {row['first']:.3f} | {row['late']:.3f} ({row['late_updates']}) | "
                f"{row['change']:+.3f} | {row['best']:.3f} | {row['first_promotion']} | {row['evaluations']:.0f} |")
        if extra:
            line += (f" {row['training_first']:.3f} -> {row['training_late']:.3f} |" if "training_late" in row else " - |")
        print(line)
    print(plot(curves, args.out or folders[0] / "policy_curves.png", training))


if __name__ == "__main__":
    main()
