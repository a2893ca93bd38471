"""Training callbacks with Stable-Baselines3's shape.

Subclass :class:`Callback` and override the protected hooks; agents call the public ones.
``_on_step`` runs after every environment step and ``_on_update_end`` after every policy update;
either returns ``False`` to stop training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Callback:
    """Base callback.

    Attributes:
        agent: The agent being trained (set by :meth:`init_callback`).
        locals: The training loop's local variables at the last hook (read-only by convention).
    """

    def __init__(self) -> None:
        self.agent: Any = None
        self.locals: dict[str, Any] = {}

    def init_callback(self, agent: Any) -> None:
        """Bind the callback to ``agent``; called by ``learn`` before training starts."""
        self.agent = agent

    def on_training_start(self, locals_: dict[str, Any]) -> None:
        """Called once before the first rollout."""
        self.locals = locals_
        self._on_training_start()

    def on_step(self) -> bool:
        """Called after each environment step; ``False`` stops training."""
        return self._on_step()

    def on_rollout_end(self) -> None:
        """Called when a batch of episodes is complete, before the update."""
        self._on_rollout_end()

    def on_update_end(self) -> bool:
        """Called after each update (and its anchor check); ``False`` stops training."""
        return self._on_update_end()

    def on_training_end(self) -> None:
        """Called once when ``learn`` returns."""
        self._on_training_end()

    def update_locals(self, locals_: dict[str, Any]) -> None:
        """Refresh :attr:`locals`."""
        self.locals.update(locals_)

    def _on_training_start(self) -> None:
        pass

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        pass

    def _on_update_end(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        pass


class CallbackList(Callback):
    """Runs several callbacks in order; training stops when any of them says so."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)

    def init_callback(self, agent: Any) -> None:
        """Bind every callback."""
        super().init_callback(agent)
        for callback in self.callbacks:
            callback.init_callback(agent)

    def on_training_start(self, locals_: dict[str, Any]) -> None:
        """Forward to every callback."""
        for callback in self.callbacks:
            callback.on_training_start(locals_)

    def on_step(self) -> bool:
        """Forward to every callback."""
        return all([callback.on_step() for callback in self.callbacks])

    def on_rollout_end(self) -> None:
        """Forward to every callback."""
        for callback in self.callbacks:
            callback.on_rollout_end()

    def on_update_end(self) -> bool:
        """Forward to every callback."""
        return all([callback.on_update_end() for callback in self.callbacks])

    def on_training_end(self) -> None:
        """Forward to every callback."""
        for callback in self.callbacks:
            callback.on_training_end()

    def update_locals(self, locals_: dict[str, Any]) -> None:
        """Forward to every callback."""
        for callback in self.callbacks:
            callback.update_locals(locals_)


class CheckpointCallback(Callback):
    """Writes a resumable checkpoint every ``save_every`` updates and at the end of training.

    The agent must offer ``save_checkpoint(root)`` and ``num_updates`` (the APPO agent does).

    Args:
        root: Folder that holds the checkpoints (``<run>/checkpoints``).
        save_every: Updates between checkpoints.
    """

    def __init__(self, root: str | Path, save_every: int) -> None:
        super().__init__()
        if save_every < 1:
            raise ValueError(f"save_every must be a positive number of updates, got {save_every}.")
        self.root = Path(root)
        self.save_every = save_every

    def _on_update_end(self) -> bool:
        if self.agent.num_updates % self.save_every == 0:
            self.agent.save_checkpoint(self.root)
        return True

    def _on_training_end(self) -> None:
        if self.agent.num_updates % self.save_every != 0:
            self.agent.save_checkpoint(self.root)


def as_callback(callback: Callback | Sequence[Callback] | None) -> Callback:
    """Turn ``None``, one callback or a list of callbacks into one :class:`Callback`."""
    if callback is None:
        return Callback()
    if isinstance(callback, Callback):
        return callback
    return CallbackList(list(callback))
