"""The LLM agents' policy: one base LLM carrying two LoRA adapters and a value head.

* adapter ``default`` (:data:`POLICY`): the trained policy;
* adapter ``anchor`` (:data:`ANCHOR`): a frozen copy, the KL reference (APPO promotes the policy
  into it and rolls back from it; pg-group and PPO keep it at the starting policy);
* adapters disabled: the untouched base model (the target, when agent and target are one model).

One copy of the base weights serves all three. The base weights are frozen; only the ``default``
LoRA weights and the value head are trained. The adapter names are those of every saved agent.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from peft import PeftModel, get_peft_model
from torch import nn

from prompt_gym.agents.configs import ModelConfig

POLICY, ANCHOR = "default", "anchor"
"""Adapter names: the trained policy and its frozen reference (peft's default name for the first adapter)."""


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1 (the masks :meth:`LoRAPolicy.sequence_logprobs` returns)."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


class LoRAPolicy(nn.Module):
    """Wraps a causal LM with the policy and anchor adapters and a scalar value head.

    Args:
        model: A ``transformers`` causal LM without adapters. It is changed in place (peft injects
            LoRA layers), so a scorer holding the same object keeps working: it disables adapters.
        model_config: LoRA settings.
    """

    def __init__(self, model: Any, model_config: ModelConfig) -> None:
        super().__init__()
        if isinstance(model, PeftModel) or hasattr(model, "peft_config"):
            raise ValueError(
                "The agent model already carries peft adapters; pass the plain base model and let the agent add "
                "its own 'default' and 'anchor' adapters (load saved adapters with the agent's load)."
            )
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x; nothing for our users to do
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.model = get_peft_model(model, model_config.to_peft_config(), adapter_name=POLICY)
        self.model.add_adapter(ANCHOR, model_config.to_peft_config())
        self.model.set_adapter(POLICY)
        self._pairs = self._adapter_pairs()
        hidden = model.config.hidden_size
        self.value_head = nn.Linear(hidden, 1, device=self.device, dtype=torch.float32)
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.value_head.bias)
        self.anchor_value_head: dict[str, torch.Tensor] = {}
        self.copy_adapter(POLICY, ANCHOR)

    @property
    def device(self) -> torch.device:
        """Device of the model weights."""
        return next(self.model.parameters()).device

    def _adapter_pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        """Each policy LoRA parameter with its anchor twin.

        peft names adapter weights with the adapter as one dotted component: ``lora_A.default.weight``
        for linear layers, ``lora_embedding_A.default`` (no trailing dot) for embeddings.
        """
        named = dict(self.model.named_parameters())
        pairs = []
        for name, parameter in named.items():
            parts = name.split(".")
            if POLICY in parts:
                twin = ".".join(ANCHOR if part == POLICY else part for part in parts)
                pairs.append((parameter, named[twin]))
        if not pairs:
            raise RuntimeError("peft added no LoRA parameters; check lora_target_modules against the model's modules.")
        return pairs

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The policy LoRA weights and the value head (what the optimizer updates)."""
        return [policy for policy, _ in self._pairs] + list(self.value_head.parameters())

    def adapter_parameters(self, adapter: str) -> list[nn.Parameter]:
        """The LoRA parameters of ``adapter`` (``"default"`` or ``"anchor"``), in a fixed order."""
        return [pair[0 if adapter == POLICY else 1] for pair in self._pairs]

    @torch.no_grad()
    def copy_adapter(self, source: str, target: str) -> None:
        """Copy the LoRA weights of ``source`` into ``target`` (and the value head with them)."""
        if {source, target} != {POLICY, ANCHOR}:
            raise ValueError(f"copy_adapter copies between {POLICY!r} and {ANCHOR!r}, got {source!r} -> {target!r}.")
        for src, dst in zip(self.adapter_parameters(source), self.adapter_parameters(target), strict=True):
            dst.copy_(src)
        if target == ANCHOR:
            self.anchor_value_head = {k: v.detach().clone() for k, v in self.value_head.state_dict().items()}
        else:
            self.value_head.load_state_dict(self.anchor_value_head)

    @contextlib.contextmanager
    def use_adapter(self, adapter: str) -> Iterator[None]:
        """Run the model with ``adapter`` active; the anchor stays frozen either way."""
        if adapter == POLICY:
            yield
            return
        self.model.set_adapter(adapter)
        try:
            yield
        finally:
            self.model.set_adapter(POLICY)  # also restores requires_grad: policy on, anchor off

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int, cache: Any = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Run the active adapter on a left-padded batch.

        Args:
            input_ids: ``(batch, length)`` new tokens.
            attention_mask: ``(batch, past + length)`` mask over the cache and the new tokens.
            keep: Number of last positions to return logits and values for.
            cache: A ``transformers`` cache from an earlier call, or ``None``.
            use_cache: Return the (updated) cache.

        Returns:
            ``(logits, values, cache)``: float32 logits ``(batch, keep, vocab)``, values ``(batch, keep)``.
        """
        positions = (attention_mask.cumsum(1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=True,
            logits_to_keep=keep,
        )
        hidden = out.hidden_states[-1][:, -keep:].float()
        values = self.value_head(hidden).squeeze(-1)
        return out.logits.float(), values, out.get("cache")

    def sequence_logprobs(
        self, contexts: Sequence[Sequence[int]], actions: Sequence[Sequence[int]], pad_id: int,
        temperature: float = 1.0, with_entropy: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Log-probabilities and values of each episode's action tokens under the active adapter.

        The batch is laid out ``[left padding | context | actions | right padding]``, so every
        row's actions start in the same column.

        Args:
            contexts: Each episode's context (meta-prompt) ids.
            actions: Each episode's action ids.
            pad_id: Padding id.
            temperature: The sampling temperature: log-probabilities are those of
                ``softmax(logits / temperature)``, the distribution the actions were drawn from.
            with_entropy: Also return the per-token entropy of that distribution.

        Returns:
            ``(logprobs, values, mask)`` (plus ``entropy`` when asked), each ``(batch, max_actions)``;
            ``values[:, t]`` is the value of the state before action ``t``.
        """
        if len(contexts) > 1 and all(list(c) == list(contexts[0]) for c in contexts):
            return self._shared_context_logprobs(contexts[0], actions, pad_id, temperature, with_entropy)
        device = self.device
        width_c = max(len(c) for c in contexts)
        width_a = max(len(a) for a in actions)
        ids = torch.full((len(contexts), width_c + width_a), pad_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for row, (context, action) in enumerate(zip(contexts, actions, strict=True)):
            ids[row, width_c - len(context) : width_c + len(action)] = torch.tensor([*context, *action])
            attention[row, width_c - len(context) : width_c + len(action)] = 1
        ids, attention = ids.to(device), attention.to(device)
        logits, values, _ = self.forward(ids, attention, keep=width_a + 1)
        return _action_stats(logits[:, :-1], values[:, :-1], ids[:, width_c:], attention[:, width_c:], temperature,
                             with_entropy)

    def _shared_context_logprobs(
        self, context: Sequence[int], actions: Sequence[Sequence[int]], pad_id: int, temperature: float,
        with_entropy: bool,
    ) -> tuple[torch.Tensor, ...]:
        """:meth:`sequence_logprobs` when every episode has the same context: it is encoded once.

        The context's keys and values are computed for one row and shared by every row's actions
        (gradients flow back through the sharing), so the result equals the plain layout's (tested
        to 1e-5) at a fraction of the cost: the context is usually ten times longer than a prompt.
        """
        device, rows = self.device, len(actions)
        context_ids = torch.tensor([list(context)], dtype=torch.long, device=device)
        context_mask = torch.ones_like(context_ids)
        first_logits, first_values, cache = self.forward(context_ids, context_mask, keep=1, use_cache=True)
        for layer in cache_layers(cache):
            layer.keys = layer.keys.expand(rows, -1, -1, -1)
            layer.values = layer.values.expand(rows, -1, -1, -1)
        width_a = max(len(a) for a in actions)
        ids = torch.full((rows, width_a), pad_id, dtype=torch.long)
        action_mask = torch.zeros_like(ids)
        for row, action in enumerate(actions):
            ids[row, : len(action)] = torch.tensor(list(action))
            action_mask[row, : len(action)] = 1
        ids, action_mask = ids.to(device), action_mask.to(device)
        attention = torch.cat([context_mask.expand(rows, -1), action_mask], dim=1)
        logits, values, _ = self.forward(ids, attention, keep=width_a, cache=cache)
        logits = torch.cat([first_logits.expand(rows, -1, -1), logits[:, :-1]], dim=1)
        values = torch.cat([first_values.expand(rows, -1), values[:, :-1]], dim=1)
        return _action_stats(logits, values, ids, action_mask, temperature, with_entropy)


def cache_layers(cache: Any) -> list[Any]:
    """The per-layer key/value holders of a ``transformers`` cache (rows are spliced and shared through them).

    Raises:
        TypeError: The cache has no per-layer ``keys``/``values`` (not a ``DynamicCache``).
    """
    layers = getattr(cache, "layers", None)
    if layers is None or any(not hasattr(layer, "keys") for layer in layers):
        raise TypeError(
            f"Sharing and restarting rows need a transformers DynamicCache with per-layer keys/values, got "
            f"{type(cache).__name__}; use a standard decoder-only model (Llama, GPT-2, SmolLM2...)."
        )
    return list(layers)


def _action_stats(
    logits: torch.Tensor, values: torch.Tensor, targets: torch.Tensor, attention: torch.Tensor, temperature: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, ...]:
    """Log-probabilities (at ``temperature``), values and mask of the action tokens, plus entropy when asked.

    Args:
        logits: ``(batch, actions, vocab)`` logits predicting each action token.
        values: ``(batch, actions)`` values of the states before each action token.
        targets: ``(batch, actions)`` the action tokens.
        attention: ``(batch, actions)`` 1 for real action tokens.
        temperature: Sampling temperature.
        with_entropy: Also return the per-token entropy.
    """
    all_logprobs = torch.log_softmax(logits / temperature, dim=-1)
    logprobs = all_logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mask = attention.to(logprobs.dtype)
    if not with_entropy:
        return logprobs * mask, values * mask, mask
    entropy = -(all_logprobs.exp() * all_logprobs).sum(-1)
    return logprobs * mask, values * mask, mask, entropy * mask
