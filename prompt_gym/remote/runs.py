"""What a training run needs from a remote target: its usage file in the run folder, log records, results.

``prompt-gym train`` keeps the target's usage counters in ``<run>/target_usage.json`` (so request
and token budgets hold across ``--resume``), logs them with every update (``target/requests``,
``target/tokens``, ``target/cache_hits``, ``target/errors``, ``target/retries``) and writes them
to ``results.json`` (``target_usage``). Local targets have no usage counters: nothing changes for them.
"""

from __future__ import annotations

from typing import Any

from prompt_gym.callbacks import Callback
from prompt_gym.remote.spec import in_run_folder, is_remote_spec, parse_remote_target

LOGGED = ("requests", "tokens", "cache_hits", "errors", "retries")
"""Usage counters written to the run log (as ``target/<name>``)."""


def run_target(target: Any, folder: str) -> Any:
    """``target`` with its usage counters kept in ``folder`` when it is remote; unchanged otherwise."""
    return in_run_folder(parse_remote_target(target), folder) if is_remote_spec(target) else target


def target_usage(scorer: Any) -> dict[str, Any] | None:
    """The scorer's usage counters (a remote target's), or ``None`` for a local one."""
    usage = getattr(scorer, "usage", None)
    return usage() if callable(usage) else None


class UsageLogCallback(Callback):
    """Records the remote target's usage counters in the agent's log before each update's record is written.

    Args:
        scorer: The env's scorer; a local scorer makes this callback do nothing.
    """

    def __init__(self, scorer: Any) -> None:
        super().__init__()
        self.scorer = scorer

    def _on_rollout_end(self) -> None:
        usage = target_usage(self.scorer)
        if usage is not None:
            for name in LOGGED:
                self.agent.logger.record(f"target/{name}", usage[name])
