"""Errors of remote targets; each message says what to do."""

from __future__ import annotations

from prompt_gym.budget import BudgetExhausted


class RemoteTargetError(RuntimeError):
    """A remote target cannot be used as asked (bad model name, unsupported mode, bad reply)."""


class ServerUnavailable(RemoteTargetError):
    """No replica answered a request after every retry (server down, overloaded or unreachable)."""


class RemoteBudgetExhausted(BudgetExhausted):
    """The request or token budget of a remote target is spent; the request was not sent."""
