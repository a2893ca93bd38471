"""HTTP side of a remote target: the ``openai`` client over one or more replicas, with retries and budgets.

:class:`RemoteClient` sends completion requests (a prompt list each) round-robin over the
replicas, at most ``concurrency`` at once; retries 429s, 5xx answers, timeouts and refused
connections with exponential backoff (moving to the next replica); refuses requests once the
request or token budget is spent; and counts everything in a :class:`~prompt_gym.remote.usage.Usage`.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

from prompt_gym.remote.errors import RemoteBudgetExhausted, RemoteTargetError, ServerUnavailable
from prompt_gym.remote.spec import RemoteTarget
from prompt_gym.remote.usage import Usage

log = logging.getLogger("prompt_gym.remote")
T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUS = (408, 409, 429)
"""HTTP statuses retried besides 5xx."""


class RequestRefused(RemoteTargetError):
    """The server answered 4xx to a request (not retried).

    Attributes:
        status: The HTTP status.
        message: The server's error message.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def root_url(base_url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000`` (where vLLM serves ``/tokenize``)."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


class RemoteClient:
    """Completion requests to an OpenAI-compatible server, spread over its replicas.

    Args:
        target: The remote target.
        usage: Counters to add to (default: read from ``target.usage_file`` or zero).
        sleep: The backoff sleep (tests pass a no-op).

    Attributes:
        usage: The usage counters.
        prompt_lists: Whether the server takes a prompt list per request (found on first refusal).
    """

    def __init__(self, target: RemoteTarget, usage: Usage | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        try:
            import openai
        except ModuleNotFoundError:
            raise ModuleNotFoundError("Remote targets need the openai package: pip install 'prompt-gym[remote]' "
                                      "(or pip install openai).") from None
        self.target = target
        self.usage = usage if usage is not None else Usage.load(target.usage_file)
        key = os.environ.get(target.api_key_env) or "EMPTY"  # vLLM without --api-key accepts any key
        self._clients = [openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=target.timeout)
                         for url in target.base_urls]
        self._turn = itertools.count()
        self._pool = ThreadPoolExecutor(target.concurrency, thread_name_prefix="prompt-gym-remote")
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight = 0
        self.prompt_lists = True

    def check_model(self) -> None:
        """Fail early when a replica is down or does not serve ``target.model``.

        Raises:
            ServerUnavailable: A replica does not answer.
            RemoteTargetError: A replica serves other models only.
        """
        import openai

        for url, client in zip(self.target.base_urls, self._clients, strict=True):
            try:
                served = [model.id for model in client.models.list()]
            except (openai.APIConnectionError, openai.InternalServerError) as error:
                raise ServerUnavailable(
                    f"No OpenAI-compatible server answers at {url} ({error}). Start it (see docs/remote-target.md: "
                    f"python -m vllm.entrypoints.openai.api_server ...) or fix the URL in the target spec.") from None
            except openai.APIStatusError as error:
                raise RemoteTargetError(f"{url}/models answered HTTP {error.status_code}: {_message(error)}. "
                                        f"Check the URL and the API key (${self.target.api_key_env}).") from None
            if self.target.model not in served:
                raise RemoteTargetError(f"The server at {url} does not serve model {self.target.model!r}; it serves "
                                        f"{served}. Use one of those after '#' in the target spec.")

    def tokenize(self, text: str) -> list[int] | None:
        """Token ids of ``text`` on the server (vLLM's ``/tokenize``, no special tokens); ``None`` if unsupported."""
        import openai

        client = self._clients[0]
        url = root_url(self.target.base_urls[0]) + "/tokenize"
        body = {"model": self.target.model, "prompt": text, "add_special_tokens": False}
        try:
            reply = client.post(url, cast_to=object, body=body)
        except (openai.NotFoundError, openai.UnprocessableEntityError, openai.BadRequestError):
            return None
        except openai.APIStatusError as error:
            if error.status_code in (404, 405, 501):
                return None
            raise
        tokens = reply.get("tokens") if isinstance(reply, dict) else None
        return [int(token) for token in tokens] if isinstance(tokens, list) else None

    def complete(self, prompts: Sequence[str], **params: Any) -> list[Any]:
        """Completions of ``prompts``: one request for the list, or one per prompt on servers that refuse lists.

        The first refused list (HTTP 400/422, ``transformers serve`` takes only a string) is
        retried with its first prompt alone; when that works, every later call sends one prompt
        per request (logged once).

        Returns:
            The choices, in prompt order.

        Raises:
            As :meth:`request`.
        """
        if len(prompts) == 1 or not self.prompt_lists:
            return [choice for prompt in prompts for choice in self.request([prompt], **params)]
        try:
            return self.request(prompts, **params)
        except RequestRefused as error:
            if error.status not in (400, 422):
                raise
            refusal = error.message
        first = self.request(prompts[:1], **params)
        self.prompt_lists = False
        log.warning("The server refuses prompt lists (%s); sending one prompt per request.", refusal)
        return first + [choice for prompt in prompts[1:] for choice in self.request([prompt], **params)]

    def request(self, prompts: Sequence[str], **params: Any) -> list[Any]:
        """One ``/completions`` request for a prompt list, retried on transient errors.

        Args:
            prompts: The prompts (one request).
            **params: Completion parameters (``max_tokens``, ``logprobs``, ``extra_body``...).

        Returns:
            The choices, in prompt order.

        Raises:
            RemoteBudgetExhausted: The request or token budget is spent (nothing was sent).
            RequestRefused: The server answered 4xx (other than 404, 408, 409, 429).
            RemoteTargetError: The server answered 404 (an unknown model).
            ServerUnavailable: Every attempt failed.
        """
        import openai

        last: Exception | None = None
        first = next(self._turn)  # round-robin over requests; a retry moves to the next replica from there
        for attempt in range(self.target.max_retries + 1):
            if attempt:
                self.usage.add(retries=1)
                self._sleep(_backoff(attempt, last))
            client = self._clients[(first + attempt) % len(self._clients)]
            self._reserve()
            try:
                prompt = prompts[0] if len(prompts) == 1 else list(prompts)  # some servers take only a string
                response = client.completions.create(model=self.target.model, prompt=prompt,
                                                     seed=self.target.seed, **params)
            except (openai.APIConnectionError, openai.InternalServerError) as error:
                last = error
            except openai.APIStatusError as error:
                if error.status_code not in RETRY_STATUS:
                    self.usage.add(errors=1)
                    if error.status_code == 404:
                        raise RemoteTargetError(f"{client.base_url} answered 404 for model {self.target.model!r}: "
                                                f"{_message(error)}. Check the model name after '#'.") from None
                    raise RequestRefused(error.status_code, _message(error)) from None
                last = error
            else:
                return self._accepted(response, len(prompts))
            finally:
                self._release()
            self.usage.add(errors=1)
        urls = ", ".join(self.target.base_urls)
        raise ServerUnavailable(
            f"{self.target.max_retries + 1} attempts at {urls} failed; last error: {str(last).rstrip('.')}. "
            "Results paid so far are in the cache: restart the server, then rerun or resume "
            "(prompt-gym train --resume RUN) and they are not paid again.")

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]`` with at most ``concurrency`` running at once.

        When an item fails, the items not started yet are dropped and the running ones run to
        their end (so what they paid for is kept); then the error is raised.
        """
        if len(items) <= 1:
            return [fn(item) for item in items]
        failed = threading.Event()

        def guarded(item: T) -> R | None:
            if failed.is_set():
                return None  # dropped: an earlier item failed
            try:
                return fn(item)
            except BaseException:
                failed.set()
                raise

        futures = [self._pool.submit(guarded, item) for item in items]
        wait(futures)
        errors = [future.exception() for future in futures if future.exception() is not None]
        if errors:
            raise errors[0]
        return [future.result() for future in futures]

    def close(self) -> None:
        """Stop the worker threads and close the HTTP connections."""
        self._pool.shutdown(wait=True)
        for client in self._clients:
            client.close()

    def _reserve(self) -> None:
        """Count a request in flight, or refuse it when a budget would be exceeded."""
        limit, tokens = self.target.max_requests, self.target.max_tokens
        with self._lock:
            if limit is not None and self.usage.requests + self._in_flight + 1 > limit:
                raise RemoteBudgetExhausted(f"The request budget of the remote target is spent ({self.usage.requests} "
                                            f"of max_requests={limit}); the request was not sent.")
            if tokens is not None and self.usage.tokens >= tokens:
                raise RemoteBudgetExhausted(f"The token budget of the remote target is spent ({self.usage.tokens} of "
                                            f"max_tokens={tokens}); the request was not sent.")
            self._in_flight += 1

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _accepted(self, response: Any, expected: int) -> list[Any]:
        usage = getattr(response, "usage", None)
        self.usage.add(requests=1, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                       completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))
        choices = sorted(response.choices, key=lambda choice: choice.index)
        if len(choices) != expected:
            raise RemoteTargetError(f"The server returned {len(choices)} choices for {expected} prompts; it does not "
                                    "handle prompt lists. Use batch_size=1 in the target spec.")
        return choices


def _message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        for field in ("message", "detail"):
            if body.get(field):
                return str(body[field])
    return str(getattr(error, "message", error))


def _backoff(attempt: int, error: Exception | None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2...): the server's Retry-After, else 0.5 * 2^(attempt-1) + jitter."""
    response = getattr(error, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            return min(float(header), 60.0)
        except ValueError:
            pass
    return min(0.5 * 2 ** (attempt - 1), 30.0) * (1 + 0.25 * random.random())
