"""A tiny OpenAI-compatible server in a background thread, for fast tests of the remote target's error paths.

It speaks the parts of vLLM's API the remote target uses (``/v1/models``, ``/v1/completions`` with
``logprobs``, ``echo``, ``allowed_token_ids``, ``return_tokens_as_token_ids``, ``/tokenize``,
``/health``) over a made-up word-level model whose next-token log-probs are a hash of the text,
consistent across modes. Switches on :class:`FakeServer` make it misbehave like real engines:
fail the next requests with given HTTP statuses, drop log-probs (``transformers serve``), cap
log-probs (vLLM's 400), have no ``/tokenize``, return raw instead of processed log-probs.
It is not a language model: the contract with real engines is tested against real servers.
"""

from __future__ import annotations

import json
import math
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VOCAB = (" positive", " negative", " great", " terrible", " yes", " no", " the", " a", " movie", " film", ".",
         " It", " was", " good", " bad", "\n")
"""The fake model's vocabulary for next-token log-probs."""

_PIECE = re.compile(r"\s?[A-Za-z0-9]+|\s?[^A-Za-z0-9\s]|\s+")


def tokenize(text: str) -> list[str]:
    """Word-level pieces: a word with its leading space, a punctuation mark, or whitespace."""
    return _PIECE.findall(text)


def token_id(piece: str) -> int:
    """The id of a piece (its vocabulary index, else a hash above the vocabulary)."""
    return VOCAB.index(piece) if piece in VOCAB else 1000 + zlib.crc32(piece.encode()) % 40000


def next_logprobs(prefix: str) -> dict[str, float]:
    """The fake model's log-probs of every vocabulary piece after ``prefix``."""
    logits = {piece: (zlib.crc32((prefix + "|" + piece).encode()) % 1000) / 150 for piece in VOCAB}
    top = max(logits.values())
    total = top + math.log(sum(math.exp(v - top) for v in logits.values()))
    return {piece: value - total for piece, value in logits.items()}


class FakeServer:
    """The server and its switches; use as a context manager (``with FakeServer() as server: server.base_url``).

    Attributes:
        model: The served model name.
        fail_next: HTTP statuses to answer the next completion requests with, in order.
        logprobs: Whether replies carry log-probs (False: like ``transformers serve``).
        max_logprobs: vLLM's ``--max-logprobs`` (a larger request gets HTTP 400).
        has_tokenize: Whether ``/tokenize`` exists.
        processed: Whether ``allowed_token_ids`` log-probs are renormalised (vLLM's processed_logprobs).
        requests: Completion requests received (failed ones included).
        bodies: Their JSON bodies.
    """

    def __init__(self, model: str = "fake") -> None:
        self.model = model
        self.fail_next: list[int] = []
        self.logprobs = True
        self.max_logprobs = 20
        self.has_tokenize = True
        self.processed = True
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one ``/v1/completions`` body: ``(status, reply)``."""
        with self._lock:
            self.requests += 1
            self.bodies.append(body)
            if self.fail_next:
                status = self.fail_next.pop(0)
                return status, {"error": {"message": f"fake failure {status}", "code": status}}
        if body.get("model") != self.model:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist.", "code": 404}}
        asked = int(body.get("logprobs") or 0)
        if asked > self.max_logprobs:
            return 400, {"error": {"message": f"Requested sample logprobs of {asked}, which is greater than max "
                                              f"allowed: {self.max_logprobs}", "code": 400}}
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [self._choice(i, prompt, body) for i, prompt in enumerate(prompts)]
        prompt_tokens = sum(len(tokenize(p)) for p in prompts)
        completion_tokens = len(prompts) * int(body.get("max_tokens") or 16)
        return 200, {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": self.model,
                     "choices": choices, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                                   "total_tokens": prompt_tokens + completion_tokens}}

    def _choice(self, index: int, prompt: str, body: dict[str, Any]) -> dict[str, Any]:
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        allowed = body.get("allowed_token_ids")
        name = (lambda piece: f"token_id:{token_id(piece)}") if as_ids else (lambda piece: piece)
        text, pieces, values, tops = "", [], [], []
        for _ in range(int(body.get("max_tokens") or 16)):
            scores = next_logprobs(prompt + text)
            if allowed is not None:
                scores = {p: v for p, v in scores.items() if token_id(p) in allowed}
                if self.processed:
                    total = math.log(sum(math.exp(v) for v in scores.values()))
                    scores = {p: v - total for p, v in scores.items()}
            best = max(scores, key=scores.get)
            ranked = sorted(scores, key=scores.get, reverse=True)[: int(body.get("logprobs") or 0)]
            pieces.append(best)
            values.append(scores[best])
            tops.append({name(p): scores[p] for p in ranked})
            text += best
        choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": "length", "logprobs": None}
        if body.get("echo"):
            echoed = tokenize(prompt)
            prefix, echo_values = "", []
            for position, piece in enumerate(echoed):
                echo_values.append(None if position == 0 else next_logprobs(prefix).get(piece, -12.0))
                prefix += piece
            choice["text"] = prompt + text
            pieces, values, tops = echoed + pieces, echo_values + values, [None] * len(echoed) + tops
        if self.logprobs and body.get("logprobs") is not None:
            offsets, position = [], 0
            for piece in pieces:
                offsets.append(position)
                position += len(piece)
            choice["logprobs"] = {"tokens": [name(p) for p in pieces], "token_logprobs": values,
                                  "top_logprobs": tops, "text_offset": offsets}
        return choice


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, reply: Any) -> None:
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._send(200, {})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model", "created": 0,
                                                             "owned_by": "fake"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/v1/completions":
                self._send(*server.complete(body))
            elif self.path == "/tokenize" and server.has_tokenize:
                self._send(200, {"tokens": [token_id(p) for p in tokenize(body.get("prompt", ""))]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

    return Handler
