"""The remote-target spelling: ``openai:<base_url>[,<base_url>...]#<model>[?option=value&...]``.

Examples:
    ``openai:http://127.0.0.1:8000/v1#smollm2`` (one vLLM server),
    ``openai:http://gpu1:8000/v1,http://gpu2:8000/v1#llama?concurrency=16`` (two replicas),
    ``openai:https://api.openai.com/v1#gpt-4o-mini?mode=top_logprobs&max_requests=2000`` (a hosted API).

This module is standard library only, so :mod:`prompt_gym.targets` can recognise a remote spec
without importing the ``openai`` package.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

SCHEME = "openai:"
MODES = ("auto", "allowed_token_ids", "echo", "top_logprobs", "generate")
"""Classification scoring modes, best first (see :mod:`prompt_gym.remote.modes`); ``auto`` detects."""


@dataclass(frozen=True)
class RemoteTarget:
    """Where the target model is served and how to call it.

    Attributes:
        base_urls: OpenAI API base URLs (``http://host:8000/v1``); several = replicas of one model,
            requests are spread round-robin and a failing replica's request moves to the next.
        model: The served model name (vLLM's ``--served-model-name``).
        mode: Classification scoring mode, one of :data:`MODES`; ``auto`` picks the best the server
            supports, once, and keeps it for the whole run.
        top_logprobs: ``k`` of the ``top_logprobs`` mode.
        concurrency: Requests in flight at once (over all replicas).
        batch_size: Prompts per request (OpenAI completions take a prompt list).
        max_retries: Retries of a request after a 429, a 5xx, a timeout or a refused connection.
        timeout: Seconds one request may take.
        max_requests: Request budget (``None``: no limit); a request that would exceed it is refused.
        max_tokens: Token budget (prompt + completion tokens as the server reports them); no request
            starts once it is spent, so it can be overshot by the requests already in flight.
        seed: Sent with every request (``seed``), for engines that sample.
        cache: The on-disk result cache (SQLite file); ``None`` = ``<PROMPT_GYM_CACHE>/remote/cache.sqlite``,
            ``"off"`` = no cache.
        usage_file: JSON file that keeps the usage counters (requests, tokens, errors...) across
            restarts, so budgets hold over a resumed run; ``prompt-gym train`` sets it in the run folder.
        api_key_env: Environment variable holding the API key (vLLM without ``--api-key`` takes any).
    """

    base_urls: tuple[str, ...]
    model: str
    mode: str = "auto"
    top_logprobs: int = 20
    concurrency: int = 4
    batch_size: int = 16
    max_retries: int = 5
    timeout: float = 300.0
    max_requests: int | None = None
    max_tokens: int | None = None
    seed: int = 0
    cache: str | None = None
    usage_file: str | None = None
    api_key_env: str = "OPENAI_API_KEY"

    def __post_init__(self) -> None:
        if not self.base_urls:
            raise ValueError("A remote target needs at least one base URL.")
        if not self.model:
            raise ValueError("A remote target needs a model name: openai:<base_url>#<model>.")
        if self.mode not in MODES:
            raise ValueError(f"Unknown scoring mode {self.mode!r}; choose one of {MODES}.")
        for name in ("top_logprobs", "concurrency", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.max_retries < 0 or self.timeout <= 0:
            raise ValueError("max_retries must be >= 0 and timeout > 0.")
        for name in ("max_requests", "max_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative budget, got {getattr(self, name)}.")

    @property
    def server(self) -> str:
        """The server part of cache keys: the replicas' base URLs, sorted."""
        return ",".join(sorted(self.base_urls))

    def to_spec(self) -> str:
        """The ``openai:`` string of this target (options that differ from the defaults)."""
        defaults = RemoteTarget(base_urls=("x",), model="x")
        options = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                   if f.name not in ("base_urls", "model") and getattr(self, f.name) != getattr(defaults, f.name)]
        return f"{SCHEME}{','.join(self.base_urls)}#{self.model}" + ("?" + "&".join(options) if options else "")


def is_remote_spec(target: object) -> bool:
    """Whether ``target`` is a remote target (an ``openai:`` string or a :class:`RemoteTarget`)."""
    return isinstance(target, RemoteTarget) or (isinstance(target, str) and target.startswith(SCHEME))


def normalize_base_url(url: str) -> str:
    """Strip a trailing slash and add ``/v1`` to a bare ``http://host:port``.

    Raises:
        ValueError: ``url`` is not an http(s) URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) base URL; write it like http://127.0.0.1:8000/v1.")
    url = url.strip().rstrip("/")
    return url if parts.path.strip("/") else url + "/v1"


def parse_remote_target(spec: str | RemoteTarget) -> RemoteTarget:
    """Parse ``openai:<base_url>[,<base_url>...]#<model>[?option=value&...]``.

    Options are :class:`RemoteTarget` fields (``mode``, ``concurrency``, ``batch_size``,
    ``max_requests``, ``max_tokens``, ``top_logprobs``, ``max_retries``, ``timeout``, ``seed``,
    ``cache``, ``usage_file``, ``api_key_env``).

    Raises:
        ValueError: The spec is malformed or names an unknown option.
    """
    if isinstance(spec, RemoteTarget):
        return spec
    if not spec.startswith(SCHEME) or "#" not in spec:
        raise ValueError(f"A remote target is written openai:<base_url>#<model>, e.g. "
                         f"openai:http://127.0.0.1:8000/v1#smollm2; got {spec!r}.")
    urls, _, rest = spec[len(SCHEME):].partition("#")
    model, _, query = rest.partition("?")
    fields = {f.name: f for f in dataclasses.fields(RemoteTarget)}
    options: dict[str, object] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key not in fields or key in ("base_urls", "model"):
            allowed = sorted(set(fields) - {"base_urls", "model"})
            raise ValueError(f"Unknown remote-target option {key!r} in {spec!r}; options: {allowed}.")
        options[key] = _convert(key, value, RemoteTarget.__dataclass_fields__[key].default)
    base_urls = tuple(normalize_base_url(url) for url in urls.split(",") if url.strip())
    return RemoteTarget(base_urls=base_urls, model=model.strip(), **options)


def _convert(key: str, value: str, default: object) -> object:
    if key in ("max_requests", "max_tokens"):
        return None if value.lower() in ("", "none") else int(float(value))
    if isinstance(default, bool) or default is None or isinstance(default, str):
        return value
    try:
        return type(default)(float(value)) if isinstance(default, int) else type(default)(value)
    except ValueError:
        raise ValueError(f"Remote-target option {key}={value!r} must be a number.") from None


def in_run_folder(target: RemoteTarget, folder: str) -> RemoteTarget:
    """The same target with its usage counters kept in ``<folder>/target_usage.json`` (unless set)."""
    if target.usage_file is not None:
        return target
    return dataclasses.replace(target, usage_file=f"{folder.rstrip('/')}/target_usage.json")
