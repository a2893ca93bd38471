import dataclasses
import json

import numpy as np
import pytest
import torch

from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.lora_policy import ANCHOR, POLICY
from prompt_gym.checkpoint import CheckpointError, latest_checkpoint
from prompt_gym.testing import build_tiny_lm
from prompt_gym.toy import WordTokenizer


def fresh(env_factory, **overrides):
    from prompt_gym.agents.appo.config import APPOConfig, ModelConfig

    tokenizer = WordTokenizer()
    config = APPOConfig(seed=3, learning_rate=1e-2, batch_size=2, minibatch_size=1, ppo_epochs=2,
                        anchor_check_interval=2, anchor_samples=1, anchor_threshold=0.0, **overrides)
    return APPOAgent(env_factory(), config, ModelConfig(lora_target_modules=["q_proj", "v_proj", "lm_head"]),
                     model=build_tiny_lm(tokenizer), tokenizer=tokenizer)


def weights(agent):
    return [p.detach().clone() for p in agent.policy.adapter_parameters(POLICY) + agent.policy.adapter_parameters(ANCHOR)]


def test_save_load_round_trip(env_factory, tmp_path):
    agent = fresh(env_factory)
    agent.learn(total_updates=2, progress_bar=False)
    agent.save(tmp_path / "agent")
    assert (tmp_path / "agent" / "adapters" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "agent" / "adapters" / "anchor" / "adapter_model.safetensors").is_file()
    tokenizer = WordTokenizer()
    loaded = APPOAgent.load(tmp_path / "agent", env_factory(), model=build_tiny_lm(tokenizer), tokenizer=tokenizer)
    for a, b in zip(weights(agent), weights(loaded), strict=True):
        assert torch.equal(a, b)
    assert loaded.num_updates == 2 and loaded.pool.to_list() == agent.pool.to_list()
    obs, _ = env_factory().reset(seed=0)
    assert agent.predict(obs, deterministic=True)[0] == loaded.predict(obs, deterministic=True)[0]


@pytest.mark.parametrize("overrides", [{}, {"elite_replay": 2}, {"selection": "screened", "screen_samples": 1}])
def test_resume_equals_uninterrupted_run(env_factory, tmp_path, overrides):
    straight = fresh(env_factory, **overrides)
    straight.learn(total_updates=4, progress_bar=False)

    first = fresh(env_factory, **overrides)
    first.learn(total_updates=2, progress_bar=False)
    first.save_checkpoint(tmp_path / "ckpt")
    first.learn(total_updates=3, progress_bar=False)  # work after the checkpoint is discarded by the resume

    resumed = fresh(env_factory, **overrides)
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert resumed.num_updates == 2
    resumed.learn(total_updates=4, progress_bar=False)
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (resumed.promotions, resumed.rollbacks) == (straight.promotions, straight.rollbacks)
    assert [r["rollout/reward"] for r in resumed.logger.history] == \
        [r["rollout/reward"] for r in straight.logger.history if r["step"] > 2]
    assert (resumed.screened, resumed.validated, resumed.pool.to_list()) == \
        (straight.screened, straight.validated, straight.pool.to_list())



def test_a_screened_checkpoint_of_the_older_format_resumes_where_it_was(env_factory, tmp_path):
    from prompt_gym.agents.appo.persistence import read_checkpoint

    agent = fresh(env_factory, selection="screened", screen_samples=1)
    agent.learn(total_updates=3, progress_bar=False)  # a check at update 2, one update after it
    agent.save_checkpoint(tmp_path / "ckpt")
    folder = latest_checkpoint(tmp_path / "ckpt")
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    at_check = state.pop("screened_at_check")
    assert 0 < at_check < len(state["screened"])
    state["screened_since_check"] = state["screened"][at_check:]  # how checkpoints before ea3a9a8 kept it
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")

    resumed = fresh(env_factory, selection="screened", screen_samples=1)
    read_checkpoint(resumed, folder)
    assert (resumed.screened_at_check, resumed.screened) == (agent.screened_at_check, agent.screened)

def test_checkpoint_is_atomic_and_verified(env_factory, tmp_path):
    agent = fresh(env_factory)
    agent.learn(total_updates=1, progress_bar=False)
    first = agent.save_checkpoint(tmp_path)
    agent.learn(total_updates=2, progress_bar=False)
    second = agent.save_checkpoint(tmp_path)
    assert latest_checkpoint(tmp_path) == second
    assert not list(tmp_path.glob(".step-*"))  # no staging folders left behind
    (second / "optimizer.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        fresh(env_factory).load_checkpoint(second)  # a named step folder is verified, no fallback
    with pytest.warns(UserWarning, match="step-000002 is corrupt"):
        assert fresh(env_factory).load_checkpoint(tmp_path) == first  # the run folder falls back to a verified one
    (first / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        fresh(env_factory).load_checkpoint(first)
    with pytest.raises(CheckpointError, match="No checkpoint"):
        fresh(env_factory).load_checkpoint(tmp_path / "empty")


def test_resume_refuses_a_different_config(env_factory, tmp_path):
    agent = fresh(env_factory)
    agent.learn(total_updates=1, progress_bar=False)
    agent.save_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="kl_coef"):
        fresh(env_factory, kl_coef=0.5).load_checkpoint(tmp_path)


def test_checkpoint_holds_no_pickled_objects(env_factory, tmp_path):
    agent = fresh(env_factory)
    agent.learn(total_updates=1, progress_bar=False)
    path = agent.save_checkpoint(tmp_path)
    for name in ("optimizer.pt", "rng.pt"):
        torch.load(path / name, weights_only=True)
    rng = json.loads((path / "rng.json").read_text())
    assert set(rng) == {"python", "numpy", "env", "agent"} and len(rng["env"]) == 1
    assert np.isfinite(json.loads((path / "agent" / "agent.json").read_text())["num_updates"])


def test_wall_time_is_logged_and_survives_resume(env_factory, tmp_path):
    agent = fresh(env_factory)
    agent.learn(total_updates=2, progress_bar=False)
    times = [r["time/wall_s"] for r in agent.logger.history]
    assert times == sorted(times) and times[0] >= 0
    agent.save_checkpoint(tmp_path / "ckpt")
    resumed = fresh(env_factory)
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert resumed.elapsed() >= times[-1]  # the clock goes on from the checkpoint's time
    resumed.learn(total_updates=3, progress_bar=False)
    assert resumed.logger.history[-1]["time/wall_s"] >= times[-1]


def test_a_checkpoint_older_than_a_config_field_is_refused_naming_the_field(tmp_path):
    from types import SimpleNamespace

    from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
    from prompt_gym.agents.training_state import check_same_config

    agent = SimpleNamespace(config=APPOConfig(), model_config=ModelConfig())
    saved = {"config": dataclasses.asdict(agent.config), "model_config": dataclasses.asdict(agent.model_config)}
    check_same_config(agent, saved, tmp_path)  # the same settings pass
    del saved["config"]["shared_meta_prompt"]  # a field whose default is None, written before it existed
    with pytest.raises(CheckpointError, match=r"fields \['shared_meta_prompt'\].*predates the fields"):
        check_same_config(agent, saved, tmp_path)


def test_a_checkpoint_older_than_an_added_field_resumes_with_the_value_that_behaves_as_before(tmp_path):
    from types import SimpleNamespace

    from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
    from prompt_gym.agents.training_state import check_same_config

    saved = {"config": dataclasses.asdict(APPOConfig()), "model_config": dataclasses.asdict(ModelConfig())}
    del saved["config"]["target_kl"]  # written before target_kl existed, when every epoch ran
    check_same_config(SimpleNamespace(config=APPOConfig(), model_config=ModelConfig()), saved, tmp_path)
    with pytest.raises(CheckpointError, match=r"fields \['target_kl'\]"):
        check_same_config(SimpleNamespace(config=APPOConfig(target_kl=0.05), model_config=ModelConfig()), saved,
                          tmp_path)
