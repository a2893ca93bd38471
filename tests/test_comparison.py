"""The comparison harness: exact budgets, validation-only selection, outputs, resume, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import prompt_gym.runs.compare as comparison
from prompt_gym.budget import BudgetedScorer, BudgetExhausted
from prompt_gym.runs.cli import main
from prompt_gym.runs.compare import CompareConfig, run_comparison, run_dir
from prompt_gym.runs.report import curve_band, paired_differences
from prompt_gym.tasks import get_task

TOY = "PromptTune-Toy-v0"


@pytest.fixture(autouse=True)
def _one_thread(request):
    """Tiny models run much faster on one thread on a shared CPU; the real-model test keeps torch's default."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_budgeted_scorer_refuses_calls_that_could_exceed_the_limit():
    task = get_task("toy")
    scorer = BudgetedScorer(task.default_scorer(task), limit=20)
    inputs = [e.input for e in task.split("train")]
    scorer.score(["classify"], inputs)
    assert scorer.num_evaluations == 8 and scorer.remaining == 12
    with pytest.raises(BudgetExhausted, match="would exceed the budget"):
        scorer.score(["classify", "review"], inputs)
    assert scorer.num_evaluations == 8 and scorer.scorer.num_evaluations == 8  # refused before it ran
    scorer.score_pairs(["review"] * 12, inputs + inputs[:4])
    assert scorer.num_evaluations == 20
    with pytest.raises(BudgetExhausted):
        scorer.score_pairs(["x"], inputs[:1])
    assert scorer.verbalizer == ("negative", "positive")  # everything else is the wrapped scorer's


def test_budgeted_scorer_counts_only_what_the_target_scored(tiny_lm):
    from prompt_gym.scoring import LMScorer

    model, tokenizer = tiny_lm
    scorer = BudgetedScorer(LMScorer(model, tokenizer, ("negative", "positive")), limit=10)
    scorer.score(["a prompt"], ["x", "y", "z"])
    scorer.score(["a prompt"], ["x", "y", "z"])  # cache hits are free
    assert scorer.num_evaluations == 3


def test_curve_band_holds_values_between_checks():
    values = curve_band([[[10, 0.5], [30, 0.7]], [[20, 0.6]]], np.array([0, 10, 25, 40]))
    assert np.isnan(values[0, 0]) and values[0].tolist()[1:] == [0.5, 0.5, 0.7]
    assert np.isnan(values[1, :2]).all() and values[1, 2:].tolist() == [0.6, 0.6]


def test_compare_runs_every_agent_under_the_budget_and_writes_outputs(tmp_path):
    budget = 120
    config = CompareConfig(TOY, ["manual", "random-search", "pg-group", "sb3:a2c"], budget, [1, 2], tmp_path / "cmp",
                           agent_options={"sb3:a2c": {"algo_kwargs": {"n_steps": 16}}, "pg-group": {"group_size": 2}})
    results = run_comparison(config, log=lambda line: None)
    assert [(r["agent"], r["seed"]) for r in results] == [(a, s) for a in config.agents for s in (1, 2)]
    for result in results:
        assert result["evaluations"] <= budget
        assert 0.0 <= result["test_accuracy"] <= 1.0 and result["curve"][-1] == [result["evaluations"],
                                                                                result["val_accuracy"]]
        assert (run_dir(config.out, result["agent"], result["seed"]) / "result.json").is_file()
        if result["agent"] != "manual":  # learning stopped only when the next target call might not fit
            assert result["evaluations"] > budget - result["selection_reserve"] - 16
    manual = [r for r in results if r["agent"] == "manual"]
    assert all(r["evaluations"] == 8 and r["prompt"] == get_task("toy").manual_prompt for r in manual)
    for name in ("results.md", "results.csv", "runs.csv", "learning_curves.png"):
        assert (config.out / name).stat().st_size > 0
    table = (config.out / "results.md").read_text()
    assert "| manual | 2 | 1.000 ± 0.000 |" in table and "| sb3:a2c | 2 |" in table
    assert len((config.out / "runs.csv").read_text().splitlines()) == 1 + 8


def test_finished_runs_are_skipped(tmp_path, monkeypatch):
    config = CompareConfig(TOY, ["manual"], 50, [1], tmp_path / "cmp")
    first = run_comparison(config, log=lambda line: None)
    monkeypatch.setattr(comparison, "run_one", lambda *a: pytest.fail("a finished run was run again"))
    lines = []
    assert run_comparison(config, log=lines.append) == first
    assert lines == [f"[skip] manual seed 1: finished earlier ({run_dir(config.out, 'manual', 1) / 'result.json'})"]


def test_an_interrupted_appo_run_resumes_from_its_checkpoint(tmp_path):
    # the start measurement (1 prompt), four updates of 4 prompts, one check at update 3, the selection reserve
    budget = 8 + 4 * 4 * 8 + 8 + 5 * 8
    config = CompareConfig(TOY, ["ppo"], budget, [0], tmp_path / "cmp", checkpoint_every=2,
                           agent_options={"ppo": {"learning_rate": 1e-3, "ppo_epochs": 1, "batch_size": 4,
                                                  "anchor_samples": 1, "anchor_check_interval": 3}})
    full = run_comparison(config, log=lambda line: None)[0]
    assert full["num_updates"] == 4 and full["resumed_from_update"] is None and full["evaluations"] <= budget
    folder = run_dir(config.out, "ppo", 0)
    # Simulate a crash after update 2: no result, checkpoint 4 gone, log past update 2 stale.
    (folder / "result.json").unlink()
    shutil.rmtree(folder / "checkpoints" / "step-000004")
    (folder / "checkpoints" / "latest").write_text("step-000002")
    resumed = run_comparison(config, log=lambda line: None)[0]
    assert resumed["resumed_from_update"] == 2 and resumed["num_updates"] == 4
    assert resumed["evaluations"] <= budget
    steps = [json.loads(line)["step"] for line in (folder / "log" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_bad_settings_fail_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="Budget 30 is too small for 'random-search'.*--budget 48"):
        run_comparison(CompareConfig(TOY, ["manual", "random-search"], 30, [1], tmp_path / "a"))
    assert not (tmp_path / "a" / "runs").exists()
    with pytest.raises(ValueError, match="Unknown agent 'grpo'"):
        CompareConfig(TOY, ["grpo"], 100, [1], tmp_path / "b")
    run_comparison(CompareConfig(TOY, ["manual"], 50, [1], tmp_path / "c"), log=lambda line: None)
    with pytest.raises(ValueError, match="other settings \\(budget differ"):
        run_comparison(CompareConfig(TOY, ["manual"], 60, [1], tmp_path / "c"))


def test_a_budget_that_cannot_pay_for_a_first_learning_step_fails_clearly(tmp_path):
    # 60 passes the check before the run (selection 5 x 8 and one episode of 8), but random search
    # scores its first batch of 4 prompts in one target call, which the 20 left cannot pay for
    config = CompareConfig(TOY, ["random-search"], 60, [1], tmp_path / "cmp")
    with pytest.raises(ValueError, match="the 20 left could not pay for its first learning step"):
        run_comparison(config, log=lambda line: None)


def test_cli_compare(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["compare", "--env", TOY, "--agents", "manual", "--budget", "20", "--seeds", "3,4",
                 "--out", str(out)]) == 0
    assert "| manual | 2 | 1.000 ± 0.000 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="Unknown agent 'nope'"):
        main(["compare", "--env", TOY, "--agents", "nope", "--budget", "20", "--out", str(out)])


def test_paired_differences_subtract_the_baseline_seed_by_seed():
    results = [{"agent": "random-search", "seed": 1, "test_accuracy": 0.70},
               {"agent": "random-search", "seed": 2, "test_accuracy": 0.80},
               {"agent": "appo", "seed": 1, "test_accuracy": 0.75},
               {"agent": "appo", "seed": 2, "test_accuracy": 0.80},
               {"agent": "appo", "seed": 3, "test_accuracy": 0.99},  # no random-search run to pair with
               {"agent": "manual", "seed": 4, "test_accuracy": 0.60}]
    (row,) = paired_differences(results, "random-search")
    assert (row["agent"], row["seeds"], row["better"], row["worse"]) == ("appo", 2, 1, 0)
    assert row["diff_mean"] == pytest.approx(0.025) and row["diff_std"] == pytest.approx(np.std([0.05, 0.0], ddof=1))
    assert row["diff_sem"] == pytest.approx(row["diff_std"] / np.sqrt(2))
    assert paired_differences(results, "ppo") == []


def test_report_joins_comparisons_run_in_separate_folders(tmp_path, capsys):
    for seed in (1, 2):
        run_comparison(CompareConfig(TOY, ["manual", "random-search"], 120, [seed], tmp_path / f"seed-{seed}"),
                       log=lambda line: None)
    folders = [str(tmp_path / "seed-1"), str(tmp_path / "seed-2")]
    capsys.readouterr()
    assert main(["report", *folders, "--out", str(tmp_path / "joined")]) == 0
    printed = capsys.readouterr().out
    assert "| manual | 2 | 1.000 ± 0.000 |" in printed and "| random-search | 2 |" in printed
    assert "| manual | 2 | " in printed.split("paired by seed")[1]  # manual minus random search, both seeds
    assert (tmp_path / "joined" / "results.md").read_text() in printed
    assert len((tmp_path / "joined" / "runs.csv").read_text().splitlines()) == 1 + 4

    with pytest.raises(SystemExit, match="finished in both"):
        main(["report", folders[0], folders[0]])
    run_comparison(CompareConfig(TOY, ["manual"], 130, [3], tmp_path / "other-budget"), log=lambda line: None)
    with pytest.raises(SystemExit, match="differs from .* in budget"):
        main(["report", folders[0], str(tmp_path / "other-budget")])
    run_comparison(CompareConfig(TOY, ["manual", "random-search"], 120, [3], tmp_path / "other-options",
                                 agent_options={"random-search": {"final_samples": 1}}), log=lambda line: None)
    with pytest.raises(SystemExit, match="random-search ran with other options"):
        main(["report", folders[0], str(tmp_path / "other-options")])
    assert main(["report", folders[0], str(tmp_path / "other-options"), "--agents", "manual"]) == 0
    assert "| manual | 2 | 1.000 ± 0.000 |" in capsys.readouterr().out  # random search left out
    with pytest.raises(SystemExit, match="holds no comparison"):
        main(["report", str(tmp_path)])
    # a setting compare may record in the future is compared too, not only the ones known today
    shutil.copytree(folders[1], tmp_path / "new-setting")
    config_path = tmp_path / "new-setting" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "scoring_dtype": "bfloat16"}))
    with pytest.raises(SystemExit, match="differs from .* in scoring_dtype"):
        main(["report", folders[0], str(tmp_path / "new-setting")])


@pytest.mark.slow
def test_real_sst2_comparison_manual_and_random_search(real_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_GYM_DATA_DIR", str(real_data_dir))
    config = CompareConfig("PromptTune-SST2-v0", ["manual", "random-search"], 32 + 2 * 16, [13], tmp_path / "sst2",
                           env_kwargs={"max_prompt_tokens": 16},
                           agent_options={"random-search": {"batch_size": 2, "final_samples": 0}})
    manual, search = run_comparison(config, log=lambda line: None)
    assert manual["evaluations"] == 32 and manual["test_accuracy"] > 0.6  # the hand-written prompt works
    assert search["evaluations"] <= 64 and 0.0 <= search["test_accuracy"] <= 1.0
    assert (config.out / "learning_curves.png").is_file()
    difference = manual["test_accuracy"] - search["test_accuracy"]
    assert f"| manual | 1 | {difference:+.3f} ± 0.000 | 0.000 |" in (config.out / "results.md").read_text()
