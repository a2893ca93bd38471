"""Smoke tests of the example scripts: each runs in a subprocess with tiny settings, as in CleanRL's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# (script, extra flags): the defaults run on the toy env with tiny models; flags only shorten runs
# and keep outputs out of the repository ("{tmp}" becomes the test's temporary folder).
RUNS = {
    "custom_task": ("custom_task.py", []),
    "train_appo_toy": ("train_appo_toy.py", ["--updates", "3", "--batch-size", "4"]),
    "compare_algorithms": ("compare_algorithms.py", ["--out", "{tmp}/compare"]),
    "compare_algorithms-appo": ("compare_algorithms.py", ["--agents", "appo,ppo,manual", "--seeds", "1",
                                                          "--out", "{tmp}/compare-appo"]),
}


def test_every_example_is_run():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted({script for script, _ in RUNS.values()})


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs(name, tmp_path):
    script, flags = RUNS[name]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(EXAMPLES / script), *(flag.format(tmp=tmp_path) for flag in flags)]
    subprocess.run(command, check=True, cwd=ROOT, env=env, timeout=300)
