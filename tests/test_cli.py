import pytest

from prompt_gym.runs.cli import main


def test_envs_lists_registered_ids(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out.split()
    assert "PromptTune-SST2-v0" in out and "PromptTune-Toy-v0" in out


def test_eval_prints_accuracy(capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("classify the review sentiment positive negative\n\n")
    out_json = tmp_path / "out.json"
    assert main(["eval", "--env", "PromptTune-Toy-v0", "--prompt-file", str(prompts), "--empty-prompt",
                 "--json", str(out_json)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("1.0000  (accuracy, test, n=8)") and lines[1].endswith("''")
    assert out_json.is_file()


def test_eval_needs_a_prompt():
    with pytest.raises(SystemExit, match="at least one prompt"):
        main(["eval", "--env", "PromptTune-Toy-v0"])


@pytest.mark.slow
def test_eval_real_model_on_sst2(capsys, real_data_dir, real_lm):
    assert main(["eval", "--env", "PromptTune-SST2-v0", "--split", "validation", "--prompt",
                 "Classify the sentiment of the movie review as positive or negative."]) == 0
    accuracy = float(capsys.readouterr().out.split()[0])
    assert 0.5 <= accuracy <= 1.0
