"""Tables and learning curves of a comparison (:mod:`prompt_gym.runs.compare`).

* ``results.md`` / ``results.csv``: one row per agent, aggregated over seeds: test accuracy mean
  and (sample) std, validation accuracy of the selected prompt, evaluations used, wall time,
  updates, and APPO's promotions/rollbacks (summed over seeds); with a remote target also its
  requests, tokens, cache hits and errors (summed over seeds);
* a second table in ``results.md``: each agent's test accuracy minus a baseline's (random search by
  default), paired by seed, with its standard error and the seeds it wins and loses;
* ``runs.csv``: one row per (agent, seed) with the selected prompt (and the remote target's counters);
* ``learning_curves.png``: per agent, the best validation accuracy found so far against target
  evaluations, held constant between checks, averaged over seeds with a min-max band (drawn from
  where every seed has its first validation point).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RUN_COLUMNS = ("agent", "seed", "test_accuracy", "val_accuracy", "evaluations", "budget", "wall_time_s",
               "num_updates", "promotions", "rollbacks", "resumed_from_update", "prompt")
USAGE_COUNTERS = ("requests", "tokens", "cache_hits", "errors")
"""A remote target's counters reported per run (``target_<name>`` columns) and summed per agent."""
DEFAULT_BASELINE = "random-search"
"""The agent ``results.md`` compares every other agent with, seed by seed."""


def _group(results: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(result["agent"], []).append(result)
    return groups


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per agent (in first-seen order) with the aggregates of its runs."""
    rows = []
    for agent, runs in _group(results).items():
        test = [r["test_accuracy"] for r in runs]
        promotions = [r["promotions"] for r in runs if r.get("promotions") is not None]
        rollbacks = [r["rollbacks"] for r in runs if r.get("rollbacks") is not None]
        rows.append({
            "agent": agent, "seeds": len(runs), "test_mean": float(np.mean(test)), "test_std": _std(test),
            "val_mean": float(np.mean([r["val_accuracy"] for r in runs])),
            "evaluations_mean": float(np.mean([r["evaluations"] for r in runs])),
            "evaluations_max": int(max(r["evaluations"] for r in runs)),
            "wall_time_s_mean": float(np.mean([r["wall_time_s"] for r in runs])),
            "updates_mean": float(np.mean([r["num_updates"] for r in runs])),
            "promotions": int(sum(promotions)) if promotions else None,
            "rollbacks": int(sum(rollbacks)) if rollbacks else None,
        } | _usage_sums(runs))
    return rows


def paired_differences(results: Sequence[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Each other agent's test accuracy minus ``baseline``'s, on the seeds both ran.

    A seed fixes the few-shot split and the agents' randomness, so differences taken seed by seed
    remove the split's share of the spread; their standard error is what a claim "A beats B by x
    points" needs.

    Returns:
        One row per agent that shares a seed with ``baseline`` (first-seen order): ``seeds`` paired,
        ``diff_mean``, ``diff_std`` (sample std), ``diff_sem`` (standard error), and the seeds it
        scored ``better`` and ``worse`` on (the rest are ties). Empty when ``baseline`` did not run.
    """
    groups = _group(results)
    baseline_scores = {r["seed"]: r["test_accuracy"] for r in groups.get(baseline, [])}
    rows = []
    for agent, runs in groups.items():
        differences = [r["test_accuracy"] - baseline_scores[r["seed"]] for r in runs if r["seed"] in baseline_scores]
        if agent == baseline or not differences:
            continue
        std = _std(differences)
        rows.append({"agent": agent, "seeds": len(differences), "diff_mean": float(np.mean(differences)),
                     "diff_std": std, "diff_sem": std / math.sqrt(len(differences)),
                     "better": sum(d > 0 for d in differences), "worse": sum(d < 0 for d in differences)})
    return rows


def paired_markdown_table(rows: Sequence[dict[str, Any]], baseline: str) -> str:
    """The paired differences of :func:`paired_differences` as Markdown."""
    lines = [
        f"| agent | seeds paired | test acc. - {baseline} (mean ± std) | standard error | seeds better / worse |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {row['agent']} | {row['seeds']} | {row['diff_mean']:+.3f} ± {row['diff_std']:.3f} | "
              f"{row['diff_sem']:.3f} | {row['better']} / {row['worse']} |" for row in rows]
    return "\n".join(lines) + "\n"


def _usage_sums(runs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``target_<counter>`` summed over the runs that used a remote target (nothing when none did)."""
    usages = [r["target_usage"] for r in runs if r.get("target_usage")]
    return {f"target_{name}": int(sum(u[name] for u in usages)) for name in USAGE_COUNTERS} if usages else {}


def _run_row(result: dict[str, Any]) -> dict[str, Any]:
    """One ``runs.csv`` row: the result with its remote target's counters as ``target_<counter>`` columns."""
    usage = result.get("target_usage") or {}
    return result | {f"target_{name}": usage.get(name) for name in USAGE_COUNTERS}


def markdown_table(rows: Sequence[dict[str, Any]], budget: int) -> str:
    """The agent table as Markdown."""
    def dash(value: Any) -> str:
        return "-" if value is None else str(value)

    remote = any("target_requests" in row for row in rows)
    lines = [
        "| agent | seeds | test acc. (mean ± std) | val acc. of selected "
        f"| evaluations used (mean / max of {budget}) | wall time (s, mean) | updates (mean) | promotions / rollbacks (sum) |"
        + (" target requests / tokens / cache hits / errors (sum) |" if remote else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if remote else ""),
    ]
    for row in rows:
        usage = " / ".join(dash(row.get(f"target_{name}")) for name in USAGE_COUNTERS)
        lines.append(
            f"| {row['agent']} | {row['seeds']} | {row['test_mean']:.3f} ± {row['test_std']:.3f} | "
            f"{row['val_mean']:.3f} | {row['evaluations_mean']:.0f} / {row['evaluations_max']} | "
            f"{row['wall_time_s_mean']:.0f} | {row['updates_mean']:.1f} | "
            f"{dash(row['promotions'])} / {dash(row['rollbacks'])} |" + (f" {usage} |" if remote else ""))
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def curve_band(curves: Sequence[Sequence[Sequence[float]]], grid: np.ndarray) -> np.ndarray:
    """Step-interpolate each run's ``[[x, y], ...]`` curve onto ``grid`` (NaN before its first point).

    Returns:
        ``(runs, len(grid))`` values.
    """
    out = np.full((len(curves), len(grid)), np.nan)
    for row, curve in enumerate(curves):
        points = np.asarray(curve, dtype=float).reshape(-1, 2)
        points = points[np.argsort(points[:, 0], kind="stable")]
        index = np.searchsorted(points[:, 0], grid, side="right") - 1
        out[row] = np.where(index >= 0, points[np.clip(index, 0, None), 1], np.nan)
    return out


def plot_learning_curves(results: Sequence[dict[str, Any]], path: Path, budget: int, title: str = "") -> Path:
    """One PNG, one panel per agent (shared axes): best validation accuracy so far vs target evaluations.

    Each panel shows every seed as a thin line, the mean over seeds as a thick one and the min-max
    band; non-learning baselines are dashed. Separate panels keep agents with equal curves visible.
    """
    import matplotlib  # here: the headless backend must be chosen before pyplot is first imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, budget, 201)
    groups = _group(results)
    columns = min(3, max(1, len(groups)))
    rows = -(-len(groups) // columns) if groups else 1
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), sharex=True, sharey=True,
                             squeeze=False)
    for index, (axis, (agent, runs)) in enumerate(zip(axes.flat, groups.items(), strict=False)):
        color = f"C{index % 10}"  # matplotlib's default colour cycle
        values = curve_band([r["curve"] for r in runs], grid)
        style = "--" if all(r["num_updates"] == 0 for r in runs) else "-"  # non-learning baselines: dashed
        for seed_values in values:
            axis.plot(grid, seed_values, style, drawstyle="steps-post", color=color, alpha=0.35, linewidth=0.8)
        seen = ~np.isnan(values).any(axis=0)  # from where every seed has a first point
        if seen.any():
            band = values[:, seen]
            axis.plot(grid[seen], band.mean(0), style, drawstyle="steps-post", color=color, linewidth=2)
            axis.fill_between(grid[seen], band.min(0), band.max(0), step="post", alpha=0.15, color=color)
        axis.set_title(f"{agent} (n={len(runs)})", fontsize="medium")
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(groups):]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("target-LLM evaluations")
    for axis in axes[:, 0]:
        axis.set_ylabel("best val. accuracy so far")
    axes[0, 0].set_xlim(0, budget)
    fig.suptitle(title or "learning curves (seeds thin, mean thick, min-max band)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_markdown(results: Sequence[dict[str, Any]], budget: int, title: str = "",
                    baseline: str = DEFAULT_BASELINE) -> str:
    """``results.md``: the agent table, then (when ``baseline`` ran) the paired differences to it."""
    header = f"# Algorithm comparison: {title}\n\n" if title else ""
    note = ("Test accuracy of each run's prompt, selected on validation only; every run spends at most the "
            "budget of target-LLM evaluations (selection included, test excluded).\n\n")
    text = header + note + markdown_table(summarize(results), budget)
    paired = paired_differences(results, baseline)
    if paired:
        text += (f"\nAgainst {baseline}, paired by seed (a seed is also the few-shot split; the standard error is "
                 "the std over seeds divided by the square root of their number):\n\n"
                 + paired_markdown_table(paired, baseline))
    return text


def write_report(results: Sequence[dict[str, Any]], out: Path, budget: int, title: str = "",
                 baseline: str = DEFAULT_BASELINE) -> dict[str, Path]:
    """Write ``results.md``, ``results.csv``, ``runs.csv`` and ``learning_curves.png`` into ``out``.

    Args:
        results: The runs' results (``result.json`` contents).
        out: Output folder (must exist).
        budget: The comparison's budget of target evaluations per run.
        title: Heading of ``results.md`` and the plot.
        baseline: The agent that ``results.md``'s paired table subtracts (skipped when it did not run).
    """
    out = Path(out)
    rows = summarize(results)
    paths = {"markdown": out / "results.md", "csv": out / "results.csv", "runs": out / "runs.csv",
             "plot": out / "learning_curves.png"}
    paths["markdown"].write_text(report_markdown(results, budget, title, baseline), encoding="utf-8")
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["agent"]
    _write_csv(paths["csv"], rows, columns)
    remote = any(r.get("target_usage") for r in results)
    _write_csv(paths["runs"], [_run_row(r) for r in results],
               [*RUN_COLUMNS, *(f"target_{name}" for name in USAGE_COUNTERS if remote)])
    plot_learning_curves(results, paths["plot"], budget, title)
    return paths
