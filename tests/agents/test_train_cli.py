import json

import pytest

import prompt_gym
from prompt_gym.agents.appo.config import PRESETS, APPOConfig
from prompt_gym.agents.base import Agent
from prompt_gym.checkpoint import CheckpointError
from prompt_gym.runs.cli import build_parser, main
from prompt_gym.runs.settings import RunSettings
from prompt_gym.runs.train import settings_from_args

ARGS = ["--env", "PromptTune-Toy-v0", "--batch-size", "2", "--ppo-epochs", "1", "--lr", "1e-2",
        "--anchor-check-interval", "2", "--max-prompt-tokens", "3", "--num-demos", "1", "--reward-batch-size", "2",
        "--device", "cpu"]


def test_train_writes_outputs_and_resumes(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *ARGS, "--agent-model", tiny_model_dir, "--updates", "2", "--seed", "1",
                 "--out", str(out), "--save-every", "1"]) == 0
    for name in ("run.json", "log.jsonl", "curves.png", "best_prompts.json", "results.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*"))
    results = json.loads((out / "results.json").read_text())
    assert results["selected_on"] == "validation" and results["seed"] == 1
    assert set(results["test"]) == {"learned", "manual", "empty"}
    assert {"torch", "transformers", "peft"} <= set(results["versions"])
    assert "test accuracy  manual" in capsys.readouterr().out
    trained = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["time/target_evaluations"]
    selection = 5 * len(prompt_gym.get_task("toy").split("validation"))  # greedy + 4 samples (final_samples)
    assert trained <= results["target_evaluations"] <= trained + selection  # test scoring is not counted

    with pytest.raises(FileExistsError, match="--resume"):
        main(["train", *ARGS, "--agent-model", tiny_model_dir, "--updates", "2", "--out", str(out)])
    assert main(["train", "--resume", str(out), "--updates", "3"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]  # update 0: the starting policy's own accuracy
    assert json.loads((out / "results.json").read_text())["num_updates"] == 3


def test_resume_without_checkpoint_fails_loudly(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps(RunSettings("PromptTune-Toy-v0", str(out), 2).to_dict()))
    with pytest.raises(CheckpointError, match="No checkpoint"):
        main(["train", "--resume", str(out), "--updates", "3"])
    (out / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="not a valid run"):
        main(["train", "--resume", str(out)])
    with pytest.raises(FileNotFoundError, match="not a prompt-gym run"):
        main(["train", "--resume", str(tmp_path / "nothing")])


@pytest.mark.slow
def test_train_on_real_model_and_sst2(real_lm, real_data_dir, tmp_path):
    out = tmp_path / "sst2"
    assert main(["train", "--env", "PromptTune-SST2-v0", "--updates", "1", "--batch-size", "2", "--ppo-epochs", "1",
                 "--max-prompt-tokens", "8", "--num-demos", "2", "--reward-batch-size", "4", "--device", "cpu",
                 "--anchor-check-interval", "1", "--out", str(out), "--test-split", "validation"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["test"]["manual"]["num_examples"] == 872
    assert (out / "curves.png").stat().st_size > 0
    assert json.loads((out / "best_prompts.json").read_text())


def test_train_on_test_time_editing_writes_one_prompt_per_test_input(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "tte"
    assert main(["train", "--env", "PromptTune-TTE-SST2-v0", "--task", "toy", "--agent-model", tiny_model_dir,
                 "--updates", "2", "--batch-size", "2", "--ppo-epochs", "1", "--max-prompt-tokens", "3",
                 "--num-demos", "1", "--num-envs", "2", "--device", "cpu", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    written = json.loads((out / "test_time_prompts.json").read_text())
    test = results["test"]
    assert results["selected"] is None and results["selected_on"] is None
    assert len(written) == test["learned"]["num_examples"] == test["manual"]["num_examples"] > 0
    assert test["learned"]["accuracy"] == pytest.approx(sum(row["score"] for row in written) / len(written))
    assert [row["input"] for row in written] == [e.input for e in prompt_gym.get_task("toy").split("test")]
    assert "one prompt per test input" in capsys.readouterr().out


def test_preset_paper_then_flags_override():
    args = build_parser().parse_args(["train", "--preset", "paper", "--lr", "3e-5", "--out", "x", "--updates", "1"])
    config = settings_from_args(args).config
    assert config.learning_rate == 3e-5  # the flag wins over the preset
    assert all(getattr(config, k) == v for k, v in PRESETS["paper"].items() if k != "learning_rate")
    default = settings_from_args(build_parser().parse_args(["train", "--out", "x", "--updates", "1"])).config
    assert (default.learning_rate, default.advantage) == (APPOConfig().learning_rate, APPOConfig().advantage)
    with pytest.raises(ValueError, match="Unknown APPO preset"):
        APPOConfig.from_preset("papr")


def test_meta_prompt_template_flag_reaches_the_env(tiny_model_dir, tmp_path):
    template = "Examples:\n\n{pairs}\n\nWrite the instruction."
    args = build_parser().parse_args(["train", *ARGS, "--meta-prompt-template", template, "--out", "x", "--updates", "1"])
    assert settings_from_args(args).env_kwargs["meta_prompt_template"] == template
    with pytest.raises(ValueError, match=r"no \{pairs\} field"):
        main(["train", *ARGS, "--agent-model", tiny_model_dir, "--meta-prompt-template", "Write the instruction.",
              "--updates", "1", "--out", str(tmp_path / "bad")])


@pytest.mark.parametrize("bad", [{"kl_coef": float("inf")}, {"learning_rate": float("nan")}, {"batch_size": 2.5},
                                 {"anchor_samples": True}])
def test_appo_config_refuses_non_finite_numbers_and_non_integer_counts(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        APPOConfig(**bad)


def test_train_runs_pg_group_and_resumes_it(tmp_path, monkeypatch):
    out = tmp_path / "pg"
    pg = ["--agent", "pg-group", "--env", "PromptTune-Toy-v0", "--group-size", "2", "--lr", "1e-2",
          "--eval-interval", "1", "--final-samples", "1", "--max-prompt-tokens", "3", "--num-demos", "1",
          "--reward-batch-size", "2", "--device", "cpu", "--save-every", "1", "--out", str(out)]
    assert main(["train", *pg, "--updates", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert (results["agent"], results["num_updates"], results["selected_on"]) == ("pg-group", 2, "validation")
    assert results["settings"]["config"]["group_size"] == 2 and results["settings"]["env_kwargs"]["action_mode"] == "text"
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-000001", "step-000002"]
    restored = json.loads((out / "checkpoints" / "step-000002" / "clock.json").read_text())["wall_time_s"]
    clocks = []
    start_clock = Agent.start_clock

    def start_clock_spy(agent):
        start_clock(agent)
        clocks.append(agent.wall_time_s)
        agent.wall_time_s += 1000.0  # as if the updates before the checkpoint had taken 1000 s more

    monkeypatch.setattr(Agent, "start_clock", start_clock_spy)
    assert main(["train", "--resume", str(out), "--updates", "3"]) == 0  # the agent comes from run.json
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 3
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["resumed_from_update"] == 2
    assert clocks == [pytest.approx(restored, abs=0.05)]  # the resumed agent starts from the checkpoint's clock
    assert resumed["wall_time_s"] >= 1000.0  # and results.json counts the time before the checkpoint
    with pytest.raises(SystemExit, match="--group-size 3 .*config.group_size"):
        main(["train", "--resume", str(out), "--updates", "4", "--group-size", "3"])
