"""Packaging guardrails: the setup.cfg layout (``agents/`` and ``envs/`` installed under ``prompt_gym``) stays importable."""

import configparser
import re
import subprocess
import sys
from pathlib import Path

import prompt_gym

ROOT = Path(__file__).resolve().parents[1]
BANNED = re.compile(r"^\s*(from|import)\s+(agents|envs)(\.|\s|$)", re.MULTILINE)


def _python_files():
    for folder in ("prompt_gym", "agents", "envs", "tests", "examples", "benchmarks"):
        yield from (ROOT / folder).rglob("*.py")


def test_no_import_by_folder_name():
    offenders = [str(path.relative_to(ROOT)) for path in _python_files() if BANNED.search(path.read_text())]
    assert offenders == [], f"import prompt_gym.agents / prompt_gym.envs instead, in {offenders}"


def test_every_subpackage_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    expected = {"prompt_gym"}
    for folder, dotted in (("agents", "prompt_gym.agents"), ("envs", "prompt_gym.envs")):
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            expected.add(".".join((dotted, *parts)))
    for init in (ROOT / "prompt_gym").rglob("__init__.py"):
        expected.add(".".join(("prompt_gym", *init.parent.relative_to(ROOT / "prompt_gym").parts)).rstrip("."))
    assert expected <= listed, f"missing from setup.cfg packages: {sorted(expected - listed)}"


def test_no_nested_agents_or_envs_folders():
    assert not (ROOT / "prompt_gym" / "agents").exists()
    assert not (ROOT / "prompt_gym" / "envs").exists()


def test_mapped_package_names():
    import prompt_gym.agents
    import prompt_gym.envs

    assert prompt_gym.agents.__name__ == "prompt_gym.agents"
    assert Path(prompt_gym.envs.__file__).resolve().parent == ROOT / "envs"


def test_import_is_light_and_registers_envs():
    code = (
        "import sys, prompt_gym, gymnasium as gym\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert 'PromptTune-SST2-v0' in gym.registry and 'PromptTune-Toy-v0' in gym.registry\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_env_ids_are_registered():
    import gymnasium as gym

    assert "PromptTune-SST2-v0" in prompt_gym.ENV_IDS
    assert all(env_id in gym.registry for env_id in prompt_gym.ENV_IDS)
