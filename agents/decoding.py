"""Batched, incremental token generation with a KV cache whose rows can restart independently.

Rows are left-padded, so every row's next token goes in the same (last) column. When one row's
episode ends and a new one starts (vector envs autoreset rows at different steps), only that row
is re-encoded: its new context is prefilled alone and spliced into the batch cache. Columns that
are padding in every row are trimmed, so the cache stays as wide as the longest live row.
:meth:`Decoder.step` does this bookkeeping for the token-mode ``predict`` of the LLM agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prompt_gym.agents.lora_policy import LoRAPolicy, cache_layers


@dataclass
class DecodeState:
    """What the agent keeps between token steps (the ``state`` of ``predict`` in token mode).

    Attributes:
        cache: The ``transformers`` KV cache of every row.
        mask: ``(rows, columns)`` attention mask of the cache columns.
        tokens: Per row, the tokens encoded in the cache (without padding).
        logits: ``(rows, vocab)`` next-token logits after each row's last cached token.
    """

    cache: Any
    mask: torch.Tensor
    tokens: list[list[int]]
    logits: torch.Tensor


def _pad_left(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class Decoder:
    """Samples tokens from an :class:`LoRAPolicy` one step at a time, for many rows at once.

    Args:
        policy: The policy; the caller picks the adapter (``policy.use_adapter``).
        pad_id: Token id used for padding (always masked out).
        temperature: Sampling temperature.
    """

    def __init__(self, policy: LoRAPolicy, pad_id: int, temperature: float = 1.0) -> None:
        self.policy = policy
        self.pad_id = pad_id
        self.temperature = temperature

    @torch.no_grad()
    def prefill(self, contexts: Sequence[Sequence[int]]) -> DecodeState:
        """Encode the rows' contexts; the state's logits predict each row's first new token.

        Rows with one and the same context (prompts written for one meta-prompt) encode it once.
        """
        if len(contexts) > 1 and all(list(c) == list(contexts[0]) for c in contexts):
            state = self.prefill(contexts[:1])
            rows = len(contexts)
            for layer in cache_layers(state.cache):
                layer.keys = layer.keys.expand(rows, -1, -1, -1).contiguous()
                layer.values = layer.values.expand(rows, -1, -1, -1).contiguous()
            return DecodeState(state.cache, state.mask.expand(rows, -1).contiguous(),
                               [list(context) for context in contexts], state.logits.expand(rows, -1).contiguous())
        width = max(len(context) for context in contexts)
        if width == 0:
            raise ValueError("Every context needs at least one token (an empty observation cannot be continued).")
        ids = torch.full((len(contexts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, context in enumerate(contexts):
            ids[row, width - len(context) :] = torch.tensor(list(context), dtype=torch.long)
            mask[row, width - len(context) :] = 1
        device = self.policy.device
        mask = mask.to(device)
        logits, _, cache = self.policy(ids.to(device), mask, keep=1, use_cache=True)
        return DecodeState(cache, mask, [list(context) for context in contexts], logits[:, -1])

    @torch.no_grad()
    def feed(self, state: DecodeState, tokens: Sequence[int | None]) -> None:
        """Append one token per row (``None`` feeds masked padding) and refresh the logits."""
        ids = torch.tensor([[self.pad_id if t is None else t] for t in tokens], device=state.mask.device)
        live = torch.tensor([[0 if t is None else 1] for t in tokens], device=state.mask.device)
        state.mask = torch.cat([state.mask, live.to(state.mask.dtype)], dim=1)
        logits, _, state.cache = self.policy(ids, state.mask, keep=1, cache=state.cache, use_cache=True)
        state.logits = logits[:, -1]
        for row, token in enumerate(tokens):
            if token is not None:
                state.tokens[row].append(int(token))

    @torch.no_grad()
    def restart(self, state: DecodeState, rows: Sequence[int], contexts: Sequence[Sequence[int]]) -> None:
        """Replace ``rows`` with fresh contexts: prefill them alone and splice them into the batch cache."""
        fresh = self.prefill(contexts)
        width_old, width_new = state.mask.shape[1], fresh.mask.shape[1]
        width = max(width_old, width_new)
        index = torch.tensor(list(rows), device=state.mask.device)
        for layer, new_layer in zip(cache_layers(state.cache), cache_layers(fresh.cache), strict=True):
            for name in ("keys", "values"):
                merged = _pad_left(getattr(layer, name), width - width_old, dim=2)
                merged[index] = _pad_left(getattr(new_layer, name), width - width_new, dim=2)
                setattr(layer, name, merged)
        state.mask = _pad_left(state.mask, width - width_old, dim=1)
        state.mask[index] = _pad_left(fresh.mask, width - width_new, dim=1)
        state.logits[index] = fresh.logits
        for row, context in zip(rows, contexts, strict=True):
            state.tokens[row] = list(context)
        self._trim(state)

    def step(
        self, state: DecodeState | None, contexts: list[list[int]], episode_start: Any = None
    ) -> DecodeState:
        """Bring the cache up to each row's current context (one token-mode ``predict`` step).

        A row whose context is its cached tokens plus one token is fed that token; a row that starts
        an episode (``episode_start``) or whose context does not continue its cache is re-encoded.
        Without a state, or when the number of rows changed, every row is prefilled.

        Args:
            state: What the previous step returned; ``None`` at first.
            contexts: Each row's tokens so far (the observation without padding).
            episode_start: Flags (one per row) that mark the first step of an episode.

        Returns:
            The state (updated in place, or new); its logits predict each row's next token.
        """
        if state is None or len(state.tokens) != len(contexts):
            return self.prefill(contexts)
        starts = np.zeros(len(contexts), bool) if episode_start is None else np.atleast_1d(episode_start)
        restart = [i for i, c in enumerate(contexts) if starts[i] or c[:-1] != state.tokens[i]]
        if len(restart) < len(contexts):
            self.feed(state, [None if i in restart else c[-1] for i, c in enumerate(contexts)])
        if restart:
            self.restart(state, restart, [contexts[i] for i in restart])
        return state

    def _trim(self, state: DecodeState) -> None:
        used = state.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else 0
        if start == 0:
            return
        for layer in cache_layers(state.cache):
            layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
        state.mask = state.mask[:, start:]

    def sample(self, state: DecodeState, deterministic: bool = False) -> list[int]:
        """Draw one token per row from the state's logits (argmax when ``deterministic``)."""
        if deterministic:
            return state.logits.argmax(dim=-1).tolist()
        probs = torch.softmax(state.logits / self.temperature, dim=-1)
        return torch.multinomial(probs, 1).squeeze(-1).tolist()

    def generate(
        self, contexts: Sequence[Sequence[int]], max_new_tokens: int, eos_id: int | None, deterministic: bool = False
    ) -> list[list[int]]:
        """Sample a continuation of each context; a row stops after its EOS or ``max_new_tokens`` tokens.

        Returns:
            Each row's new tokens, its EOS included when it emitted one.
        """
        state = self.prefill(contexts)
        outputs: list[list[int]] = [[] for _ in contexts]
        done = [False] * len(contexts)
        for step in range(max_new_tokens):
            tokens = self.sample(state, deterministic)
            for row, token in enumerate(tokens):
                if not done[row]:
                    outputs[row].append(token)
                    done[row] = token == eos_id or len(outputs[row]) >= max_new_tokens
            if all(done) or step == max_new_tokens - 1:
                break
            self.feed(state, [None if done[row] else token for row, token in enumerate(tokens)])
        return outputs
