"""Remote targets against the in-process fake server: spelling, modes, retries, budgets, cache, usage, wiring.

The contract with real engines (vLLM, transformers serve) is in ``test_remote_servers.py``.
"""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from prompt_gym.budget import BudgetExhausted
from prompt_gym.data import Example
from prompt_gym.remote.client import RemoteClient
from prompt_gym.remote.errors import RemoteBudgetExhausted, RemoteTargetError, ServerUnavailable
from prompt_gym.remote.fake_server import FakeServer
from prompt_gym.remote.scorer import RemoteGenerationScorer, RemoteScorer
from prompt_gym.remote.session import RemoteSession
from prompt_gym.remote.spec import RemoteTarget, is_remote_spec, parse_remote_target
from prompt_gym.remote.usage import Usage

VERBALIZER = ("negative", "positive")
PROMPTS = ["Classify the review.", "", "Is it good?"]
INPUTS = ["a good movie", "a bad film", "it was the film"]


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def make_target(server, tmp_path):
    def make(**options) -> RemoteTarget:
        options.setdefault("cache", str(tmp_path / "cache.sqlite"))
        return RemoteTarget(base_urls=(server.base_url,), model=server.model, **options)
    return make


def no_wait_session(target: RemoteTarget) -> RemoteSession:
    """A session whose retries do not sleep."""
    client = RemoteClient(target, sleep=lambda seconds: None)
    client.check_model()
    return RemoteSession(target, client)


# spelling


def test_spec_parses_replicas_model_and_options():
    target = parse_remote_target("openai:http://a:8000/v1,http://b:8000#my/model?concurrency=8&max_requests=1e3&mode=echo")
    assert target.base_urls == ("http://a:8000/v1", "http://b:8000/v1")
    assert (target.model, target.concurrency, target.max_requests, target.mode) == ("my/model", 8, 1000, "echo")
    assert parse_remote_target(target.to_spec()) == target
    assert is_remote_spec("openai:http://a/v1#m") and is_remote_spec(target) and not is_remote_spec("smollm2-135m-instruct")


@pytest.mark.parametrize("spec, message", [
    ("openai:http://a:8000/v1", "openai:<base_url>#<model>"),
    ("openai:http://a:8000/v1#", "model name"),
    ("openai:ftp://a#m", r"not an http\(s\) base URL"),
    ("openai:http://a/v1#m?colour=red", "Unknown remote-target option 'colour'"),
    ("openai:http://a/v1#m?mode=magic", "Unknown scoring mode"),
    ("openai:http://a/v1#m?concurrency=lots", "must be a number"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_remote_target(spec)


# scoring modes


def test_every_logprob_mode_gives_the_same_class_scores(make_target):
    scores = {mode: RemoteScorer(make_target(mode=mode, cache="off"), VERBALIZER).score(PROMPTS, INPUTS)
              for mode in ("allowed_token_ids", "echo", "top_logprobs")}
    assert scores["allowed_token_ids"].shape == (3, 3, 2)
    np.testing.assert_allclose(np.exp(scores["echo"]).sum(-1), 1.0, atol=1e-5)
    for mode in ("echo", "top_logprobs"):
        np.testing.assert_allclose(scores[mode], scores["allowed_token_ids"], atol=1e-5)


@pytest.mark.parametrize("switch, expected", [
    ({}, "allowed_token_ids"),
    ({"processed": False}, "echo"),
    ({"has_tokenize": False}, "echo"),
    ({"logprobs": False}, "generate"),
])
def test_auto_mode_picks_the_best_mode_the_server_supports(server, make_target, caplog, switch, expected):
    for name, value in switch.items():
        setattr(server, name, value)
    with caplog.at_level(logging.WARNING, logger="prompt_gym.remote"):
        scorer = RemoteScorer(make_target(), VERBALIZER)
    assert scorer.mode.name == expected and scorer.usage()["mode"] == expected
    assert f"scoring mode {expected}" in caplog.text


def test_a_pinned_mode_the_server_cannot_do_is_an_error(server, make_target):
    server.logprobs = False  # like transformers serve
    with pytest.raises(RemoteTargetError, match="returned no logprobs"):
        RemoteScorer(make_target(mode="echo"), VERBALIZER)


def test_a_server_that_drops_logprobs_mid_run_is_an_error_not_a_silent_switch(server, make_target):
    scorer = RemoteScorer(make_target(cache="off"), VERBALIZER)
    server.logprobs = False
    with pytest.raises(RemoteTargetError, match="stopped working mid-run"):
        scorer.score(PROMPTS, INPUTS)


def test_a_logprob_cap_below_top_k_falls_back_to_the_cap_and_says_so(server, make_target, caplog):
    server.max_logprobs = 5
    with caplog.at_level(logging.WARNING, logger="prompt_gym.remote"):
        scorer = RemoteScorer(make_target(mode="top_logprobs", top_logprobs=20), VERBALIZER)
    assert scorer.mode.k == 5 and "caps logprobs at 5" in caplog.text


def test_top_k_missing_labels_are_counted_and_logged(server, make_target, caplog):
    server.max_logprobs = 1
    scorer = RemoteScorer(make_target(mode="top_logprobs", top_logprobs=1, cache="off"), VERBALIZER)
    with caplog.at_level(logging.WARNING, logger="prompt_gym.remote"):
        scores = scorer.score(PROMPTS, INPUTS)
    assert scorer.usage()["topk_fallbacks"] > 0 and "outside the top 1" in caplog.text
    assert np.isfinite(scores).all()


def test_a_label_that_is_several_tokens_on_the_server_is_refused(make_target):
    with pytest.raises(ValueError, match="'very-good' is 3 tokens on the server"):
        RemoteScorer(make_target(), ("bad", "very-good"))


def test_generate_mode_matches_the_answer_to_a_label(server, make_target):
    server.logprobs = False
    scorer = RemoteScorer(make_target(cache="off"), ("the", "a"))  # the fake model's answers start with words
    probs = np.exp(scorer.score(PROMPTS, INPUTS))
    matched = probs.max(-1) > 0.99
    uniform = np.isclose(probs, 0.5).all(-1)
    assert (matched | uniform).all()
    assert scorer.usage()["unmatched_answers"] == int(uniform.sum())


# faults, retries, replicas


def test_server_down_is_a_clear_error():
    with pytest.raises(ServerUnavailable, match="No OpenAI-compatible server answers at http://127.0.0.1:9/v1"):
        RemoteScorer("openai:http://127.0.0.1:9/v1#m?cache=off", VERBALIZER)


def test_a_wrong_model_name_lists_the_served_models(server):
    with pytest.raises(RemoteTargetError, match=r"does not serve model 'gpt-9'; it serves \['fake'\]"):
        RemoteScorer(f"openai:{server.base_url}#gpt-9?cache=off", VERBALIZER)


def test_429_and_5xx_are_retried_and_counted(server, make_target):
    scorer = RemoteScorer(make_target(cache="off"), VERBALIZER, session=no_wait_session(make_target(cache="off")))
    before = scorer.usage()
    server.fail_next = [429, 503]
    scorer.score(PROMPTS[:1], INPUTS[:1])
    usage = scorer.usage()
    assert usage["errors"] - before["errors"] == 2 and usage["retries"] - before["retries"] == 2
    assert usage["requests"] - before["requests"] == 1


def test_a_server_that_keeps_failing_raises_after_the_retries(server, make_target):
    target = make_target(max_retries=2, cache="off")
    scorer = RemoteScorer(target, VERBALIZER, session=no_wait_session(target))
    server.fail_next = [500] * 3
    with pytest.raises(ServerUnavailable, match="3 attempts .* failed.*rerun or resume"):
        scorer.score(PROMPTS[:1], INPUTS[:1])


def test_after_a_failed_request_no_new_request_starts_in_that_call(server, make_target):
    target = make_target(batch_size=1, concurrency=1, max_retries=0, cache="off")
    scorer = RemoteScorer(target, VERBALIZER, session=no_wait_session(target))
    server.requests, server.fail_next = 0, [503] * 100
    with pytest.raises(ServerUnavailable):
        scorer.score(PROMPTS, INPUTS)  # 9 requests queued
    assert server.requests == 1


def test_requests_are_spread_over_replicas_and_a_dead_one_is_skipped(tmp_path):
    with FakeServer() as first, FakeServer() as second:
        target = RemoteTarget(base_urls=(first.base_url, second.base_url), model="fake", cache="off", batch_size=1)
        scorer = RemoteScorer(target, VERBALIZER)
        first.requests = second.requests = 0
        scorer.score(PROMPTS, INPUTS)
        assert first.requests > 0 and second.requests > 0 and first.requests + second.requests == 9
        first.fail_next = [503] * 100
        session = no_wait_session(target)
        assert RemoteScorer(target, VERBALIZER, session=session).score(PROMPTS, INPUTS).shape == (3, 3, 2)


def test_batches_and_seed(server, make_target):
    scorer = RemoteScorer(make_target(batch_size=2, concurrency=3, seed=7, cache="off"), VERBALIZER)
    first = len(server.bodies)
    single = RemoteScorer(make_target(batch_size=1, cache="off"), VERBALIZER).score(PROMPTS, INPUTS)
    server.bodies.clear()
    np.testing.assert_allclose(scorer.score(PROMPTS, INPUTS), single, atol=1e-6)
    assert first > 0 and len(server.bodies) == 5  # 9 pairs, 2 per request
    assert {body["seed"] for body in server.bodies} == {7}


# budgets, cache, usage


def test_the_request_budget_refuses_before_sending(server, make_target):
    target = make_target(batch_size=1, concurrency=1, max_requests=4, cache="off")
    scorer = RemoteScorer(target, VERBALIZER)  # the mode probe paid 1 request
    sent = server.requests
    with pytest.raises(RemoteBudgetExhausted, match="request budget"):
        scorer.score(PROMPTS, INPUTS)
    assert server.requests - sent == 3 and scorer.usage()["requests"] == 4
    assert issubclass(RemoteBudgetExhausted, BudgetExhausted)


def test_the_token_budget_stops_new_requests(make_target):
    scorer = RemoteScorer(make_target(batch_size=1, concurrency=1, max_tokens=30, cache="off"), VERBALIZER)
    with pytest.raises(RemoteBudgetExhausted, match="token budget"):
        scorer.score(PROMPTS, INPUTS)
    assert scorer.usage()["tokens"] >= 30


def test_the_disk_cache_makes_a_rerun_free(server, make_target):
    first = RemoteScorer(make_target(), VERBALIZER)
    scores = first.score(PROMPTS, INPUTS)
    sent = server.requests
    again = RemoteScorer(make_target(), VERBALIZER)
    server.requests = sent = 0
    np.testing.assert_array_equal(again.score(PROMPTS, INPUTS), scores)
    assert server.requests == sent and again.cache_hits == 9 and again.num_evaluations == 0
    other = RemoteScorer(make_target(), VERBALIZER, template="{prompt}\nReview: {input}\nSentiment:")
    other.score(PROMPTS[:1], INPUTS[:1])
    assert other.num_evaluations == 1  # another template is another key


def test_results_paid_before_a_failure_are_kept(server, make_target):
    target = make_target(batch_size=1, concurrency=1, max_retries=0)
    scorer = RemoteScorer(target, VERBALIZER, session=no_wait_session(target))
    scorer.score(PROMPTS[:1], INPUTS[:2])  # 2 pairs paid
    server.fail_next = [503]
    with pytest.raises(ServerUnavailable):
        scorer.score(PROMPTS[:1], INPUTS)  # the third pair fails
    resumed = RemoteScorer(target, VERBALIZER)
    resumed.score(PROMPTS[:1], INPUTS)
    assert resumed.num_evaluations == 1 and resumed.cache_hits == 2


def test_usage_file_keeps_counts_budgets_and_mode_across_restarts(server, make_target, tmp_path):
    usage_file = str(tmp_path / "run" / "target_usage.json")
    target = make_target(usage_file=usage_file, batch_size=1, concurrency=1, max_requests=5, mode="echo")
    RemoteScorer(target, VERBALIZER).score(PROMPTS[:1], INPUTS[:2])
    saved = json.loads((tmp_path / "run" / "target_usage.json").read_text())
    assert saved["requests"] == 3 and saved["evaluations"] == 2 and saved["mode"] == "echo"
    restarted = RemoteScorer(make_target(usage_file=usage_file, batch_size=1, concurrency=1, max_requests=5),
                             VERBALIZER)
    assert restarted.mode.name == "echo"  # the run keeps its mode although auto would pick another
    assert restarted.num_evaluations == 2 and restarted.usage()["requests"] == 4
    with pytest.raises(RemoteBudgetExhausted):
        restarted.score(PROMPTS[1:], INPUTS)
    assert Usage.load(usage_file).requests == 5


# generation, envs, packaging


def test_generation_scorer_answers_greedily_and_caches(server, make_target):
    scorer = RemoteGenerationScorer(make_target(), "exact_match", max_new_tokens=3)
    answers = scorer.generate_pairs(PROMPTS, INPUTS)
    assert all(isinstance(answer, str) and answer for answer in answers)
    assert all(body["temperature"] == 0.0 and body["max_tokens"] == 3 for body in server.bodies)
    scored = scorer.score_examples(PROMPTS, [Example(x, outputs=(answer,)) for x, answer in zip(INPUTS, answers, strict=True)])
    np.testing.assert_array_equal(scored.scores, 1.0)
    assert scored.gaps is None
    assert scorer.num_evaluations == 3 and scorer.cache_hits == 3


def test_envs_take_a_remote_target_and_train_logs_usage(server, make_target, byte_tokenizer):
    import gymnasium as gym

    import prompt_gym  # noqa: F401
    from prompt_gym.remote.runs import UsageLogCallback, run_target, target_usage

    spec = make_target(cache="off").to_spec()
    env = gym.make("PromptTune-Toy-v0", action_mode="text", target=spec, tokenizer=byte_tokenizer,
                   max_prompt_tokens=64)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("Classify the review")
    assert terminated and 0 <= info["accuracy"] <= 1 and isinstance(reward, float)
    scorer = env.unwrapped.scorer
    assert target_usage(scorer)["evaluations"] == scorer.num_evaluations > 0

    class Agent:
        logger = type("L", (), {"values": {}, "record": lambda self, k, v: self.values.__setitem__(k, v)})()

    callback = UsageLogCallback(scorer)
    callback.init_callback(Agent())
    callback.on_rollout_end()
    assert Agent.logger.values["target/requests"] == scorer.usage()["requests"]
    assert run_target(spec, "runs/x").usage_file == "runs/x/target_usage.json"
    assert run_target("smollm2-135m-instruct", "runs/x") == "smollm2-135m-instruct"


def test_cli_takes_target_on_train_eval_and_compare():
    from prompt_gym.runs.cli import build_parser

    parser = build_parser()
    spec = "openai:http://h/v1#m"
    assert parser.parse_args(["train", "--out", "o", "--updates", "1", "--target", spec]).target_model == spec
    assert parser.parse_args(["eval", "--empty-prompt", "--target", spec]).target_model == spec
    assert parser.parse_args(["compare", "--budget", "10", "--out", "o", "--target", spec]).target == spec


@pytest.mark.slow
def test_eval_cli_scores_prompts_on_a_remote_target(server, real_data_dir, tmp_path):
    from prompt_gym.runs.cli import main

    spec = f"openai:{server.base_url}#fake?cache=off"
    out = tmp_path / "results.json"
    assert main(["eval", "--env", "PromptTune-SST2-v0", "--target", spec, "--empty-prompt", "--manual-prompt",
                 "--split", "validation", "--json", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert [r["num_examples"] for r in results] == [32, 32] and server.requests >= 64 / 16


def test_importing_the_package_imports_neither_openai_nor_torch():
    code = ("import prompt_gym, prompt_gym.remote, prompt_gym.targets, sys; "
            "print('openai' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_compare_reports_the_remote_targets_usage_per_run(server, tmp_path):
    from prompt_gym.runs.cli import main
    from prompt_gym.runs.compare import run_dir

    out = tmp_path / "cmp"
    spec = f"openai:{server.base_url}#fake?cache={tmp_path / 'cache.sqlite'}"
    assert main(["compare", "--env", "PromptTune-Toy-v0", "--agents", "manual,random-search", "--seeds", "0",
                 "--budget", "60", "--out", str(out), "--target", spec, "--checkpoint-every", "1",
                 "--env-kwargs", '{"max_prompt_tokens": 3, "reward_batch_size": 2}',
                 "--agent-options", '{"random-search": {"final_samples": 1}}']) == 0
    for agent in ("manual", "random-search"):
        folder = run_dir(out, agent, 0)
        usage = json.loads((folder / "result.json").read_text())["target_usage"]
        assert usage["requests"] > 0 and usage["tokens"] > 0 and usage["errors"] == 0
        assert usage == json.loads((folder / "target_usage.json").read_text())  # kept in the run folder
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert all(int(row["target_requests"]) > 0 for row in runs)
    summary = list(csv.DictReader((out / "results.csv").open()))
    assert {"target_requests", "target_tokens", "target_cache_hits", "target_errors"} <= set(summary[0])
    assert "target requests / tokens / cache hits / errors" in (out / "results.md").read_text()
