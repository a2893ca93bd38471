"""Would a final selection on more labelled sentences pick better among a run's pooled prompts? A diagnosis.

By default a run reports the first prompt of its pool, ranked on the 32 validation sentences of the seed's
16-shot split (accuracy, then verbalizer gap), and prompts that tie there differ by 5 to 10 points
on test ("Learning that shows" §7 and §18 in RESULTS.md). This script asks whether two other rules, both
inside the protocol, would choose better: ranking on the split's 32 training sentences *and* its 32
validation sentences (64; "T"), or on the mean verbalizer gap on validation instead of accuracy
(what ``select_by="gap"`` chooses; "G"). It reads pool records (``pool_test_accuracy.py --json``: each run's pooled prompts
with their validation and test accuracy), rebuilds each run's environment from its comparison
folder, and scores the pooled prompts on the split's training sentences and on ``--per-label``
sentences per class of the task's full training file that are in none of the split's sets (drawn
the way the few-shot split itself was, so they stand for what validation samples; never test). The
rules are judged on those held-out sentences; the test accuracy each rule's choice scored (read
from the record) is printed for reporting only. Per agent it also prints what validation adds inside
a pool: the pick's held-out (and test) accuracy minus its pool's mean. Nothing here changes what a
run reports.

    PROMPT_GYM_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/selection_rules.py \\
        benchmarks/logs/cal-sst2-pool-test.jsonl --json benchmarks/logs/cal-sst2-selection-rules.jsonl
    python benchmarks/selection_rules.py --scored benchmarks/logs/cal-sst2-selection-rules.jsonl

A record's ``folder`` is looked up as given and then under ``--logs`` by its last part.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import torch
from compared_runs import append_record, comparison_config, rebuild_env
from train_pool_probe import SPECS, unseen_training_examples

from prompt_gym.agents.pool import PromptPool
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.models import DEFAULT_MODEL, load_causal_lm

HELD_OUT = "held_out"


def comparison_folder(record: dict[str, Any], logs: Path) -> Path:
    """The comparison folder a pool record names: as given, else under ``logs`` by its last part."""
    folder = Path(record["folder"])
    if (folder / "config.json").is_file():
        return folder
    kept = logs / folder.name
    if (kept / "config.json").is_file():
        return kept
    raise SystemExit(f"No comparison folder with a config.json for {record['folder']!r} (looked in {folder} and {kept}).")


def ranked_first(entries: list[dict[str, Any]], accuracy_key: str) -> dict[str, Any]:
    """The entry a ranking on ``accuracy_key`` (then validation gap) puts first; the earlier entry wins a full tie."""
    return max(entries, key=lambda entry: (round(entry[accuracy_key], 9), entry["val_gap"]))


def score_pool(record: dict[str, Any], folder: Path, per_label: int, model: Any, tokenizer: Any) -> list[dict[str, Any]]:
    """Each pooled prompt of ``record`` with its training, training + validation and held-out accuracy."""
    env = rebuild_env(folder, record["seed"], model, tokenizer)
    task = env.unwrapped.task
    spec = SPECS[task.name]
    held_out = unseen_training_examples(spec, task, per_label, record["seed"])
    task = dataclasses.replace(task, splits=task.splits | {HELD_OUT: held_out})
    prompts = [entry["prompt"] for entry in record["prompts"]]
    scorer = env.unwrapped.scorer
    train = evaluate_prompts(scorer, task, prompts, split="train")
    outside = evaluate_prompts(scorer, task, prompts, split=HELD_OUT)
    num_train, num_val = len(task.split("train")), len(task.split("validation"))
    return [entry | {"train_accuracy": t["accuracy"], "held_out_accuracy": h["accuracy"],
                     "train_val_accuracy": (t["accuracy"] * num_train + entry["val_accuracy"] * num_val)
                     / (num_train + num_val)}
            for entry, t, h in zip(record["prompts"], train, outside, strict=True)]


RULES = {"T": "first on training + validation accuracy", "G": "first on the validation gap (select_by='gap')"}
"""The rules compared with "V", first on validation accuracy, then gap: the pick of a run with the default
``select_by="accuracy"`` (a ``select_by="gap"`` run reports G's choice)."""


def choices(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each rule's choice among a pool's entries (kept in the pool's order: validation accuracy, then gap)."""
    by_gap = PromptPool.from_list(entries, len(entries)).best("gap")
    return {"V": entries[0], "T": ranked_first(entries, "train_val_accuracy"),
            "G": next(entry for entry in entries if entry["prompt"].strip() == by_gap["prompt"])}


def report(record: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Print one pool with each rule's choice (V and :data:`RULES`); return the choices."""
    chosen = choices(entries)
    print(f"{record['folder']} {record['agent']} seed {record['seed']}:")
    for entry in entries:
        marks = "".join(mark for mark, choice in chosen.items() if entry is choice)
        print(f"  {marks:3s} val {entry['val_accuracy']:.3f} (gap {entry['val_gap']:.3f})  "
              f"train {entry['train_accuracy']:.3f}  train+val {entry['train_val_accuracy']:.3f}  "
              f"held-out {entry['held_out_accuracy']:.3f}  "
              f"test {entry['test_accuracy']:.3f}  {entry['prompt'][:50]!r}")
    return chosen


def standard_error(differences: list[float]) -> str:
    """`` ± s.e.`` of the mean of ``differences`` (empty for fewer than two)."""
    if len(differences) < 2:
        return ""
    return f" ± {statistics.stdev(differences) / len(differences) ** 0.5:.4f}"


def print_rule_gains(pools: list[tuple[str, dict[str, dict[str, Any]]]]) -> None:
    """Per rule, over all pools and per agent: its choice's held-out (and test) accuracy minus V's."""
    for rule, meaning in RULES.items():
        print(f"{rule} ({meaning}) against V:")
        for agent in ["all", *sorted({agent for agent, _ in pools})]:
            chosen = [choice for name, choice in pools if agent in ("all", name)]
            held_out, test = ([choice[rule][key] - choice["V"][key] for choice in chosen]
                              for key in ("held_out_accuracy", "test_accuracy"))
            print(f"  {agent}: {len(chosen)} pools, another prompt in {sum(c[rule] is not c['V'] for c in chosen)}; "
                  f"held-out {statistics.mean(held_out):+.4f}{standard_error(held_out)} "
                  f"(better in {sum(d > 0 for d in held_out)}, worse in {sum(d < 0 for d in held_out)}); "
                  f"test {statistics.mean(test):+.4f}{standard_error(test)} (reporting only)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", type=Path, nargs="+",
                        help="JSON-lines files of pool_test_accuracy.py (with --scored: of this script's --json)")
    parser.add_argument("--scored", action="store_true", help="print the rules' choices from records this script "
                        "wrote with --json, without scoring again")
    parser.add_argument("--logs", type=Path, default=Path(__file__).parent / "logs")
    parser.add_argument("--per-label", type=int, default=100, help="held-out training-file sentences per class")
    parser.add_argument("--only", help="use only the records whose folder contains this text")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="append each run's scores to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = [json.loads(line) for path in args.records for line in path.read_text(encoding="utf-8").splitlines()]
    records = [record for record in records if args.only is None or args.only in record["folder"]]
    if not records:
        raise SystemExit(f"No pool records in {', '.join(map(str, args.records))}"
                         + (f" whose folder contains {args.only!r}" if args.only else "") + ".")
    model = tokenizer = None
    pools, chosen = [], []
    for record in records:
        if args.scored:
            entries = record["prompts"]
        else:
            folder = comparison_folder(record, args.logs)
            if model is None:
                model, tokenizer = load_causal_lm(comparison_config(folder).get("agent_model") or DEFAULT_MODEL)
            entries = score_pool(record, folder, args.per_label, model, tokenizer)
            append_record(args.json, {key: record[key] for key in ("folder", "agent", "seed", "env_id", "target")}
                          | {"calibration": record.get("calibration"), "script": "selection_rules",
                             "per_label": args.per_label, "prompts": entries})
        chosen.append((record["agent"], report(record, entries)))
        pools.append((record["agent"], entries))
    print_rule_gains(chosen)
    print_selection_gain(pools)


def print_selection_gain(pools: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """Per agent, what validation adds inside a pool: V's held-out (and test) accuracy minus the pool's mean.

    Near zero when a pool's prompts are about equally good, or when 32 validation sentences cannot
    tell them apart; then a run's pick scores its pool's mean in expectation.
    """
    for agent in sorted({agent for agent, _ in pools}):
        agent_pools = [entries for name, entries in pools if name == agent]
        held_out, test = ([entries[0][key] - statistics.mean(entry[key] for entry in entries) for entries in agent_pools]
                          for key in ("held_out_accuracy", "test_accuracy"))
        print(f"{agent}: V minus its pool's mean over {len(agent_pools)} pools: held-out {statistics.mean(held_out):+.4f} "
              f"(above the mean in {sum(g > 0 for g in held_out)}), test {statistics.mean(test):+.4f} "
              f"(above in {sum(g > 0 for g in test)})")


if __name__ == "__main__":
    main()
