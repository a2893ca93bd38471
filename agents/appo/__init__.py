"""APPO: PPO with an adaptive anchor (StablePrompt).

``APPOAgent``, ``APPOConfig`` and ``ModelConfig`` are importable from here. The agent module (and
torch) load on first access, so reading the config (the CLI's flags) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"APPOAgent": "agent", "APPOConfig": "config", "ModelConfig": "config"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
