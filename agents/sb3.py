"""The Stable-Baselines3 bridge: SB3's own PPO/A2C on the token-mode environment.

Nothing of the algorithms is re-implemented: :class:`SB3Agent` builds ``stable_baselines3.PPO`` or
``A2C`` with ``"MultiInputPolicy"`` on the env and trains it with SB3's ``learn``. The bridge adds
only what the token env needs:

* :class:`TokenEmbeddingExtractor`: a features extractor that embeds the observation tokens
  (frozen input embeddings of the agent LLM, or a small learned table) and mean-pools them over
  the attention mask, once over the whole observation and once over its last few tokens (the
  prompt being written);
* :class:`TopKTokens`: an action wrapper that restricts the vocabulary to ``k`` token ids (by
  default the agent LLM's most likely first tokens after the meta-prompt, plus EOS), so the
  policy head is ``k`` wide instead of the whole vocabulary.

Validation checks and prompt selection run as an SB3 callback and by rolling the SB3 policy out
on meta-prompts without stepping the env (so they cost only the validation evaluations). Each SB3
rollout is one update (``num_updates``); prompt-gym callbacks passed to ``learn`` get ``on_step``
after every env step, ``on_rollout_end`` and ``on_update_end`` after every rollout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from prompt_gym import checkpoint as ckpt
from prompt_gym.agents.configs import ValidationConfig
from prompt_gym.agents.pool import PromptPool
from prompt_gym.agents.rollout import EnvAdapter
from prompt_gym.agents.selection import SelectingAgent, mean_accuracy
from prompt_gym.callbacks import Callback, as_callback
from prompt_gym.logging import Logger
from prompt_gym.models import shared_causal_lm

ALGORITHMS: dict[str, type] = {"ppo": PPO, "a2c": A2C}


class TokenEmbeddingExtractor(BaseFeaturesExtractor):
    """Embeds ``input_ids`` and mean-pools them over ``attention_mask`` (all tokens, and the last ``recent``).

    Args:
        observation_space: The token env's ``Dict(input_ids, attention_mask)`` space.
        embeddings: A frozen ``(vocab, dim)`` embedding matrix (the agent LLM's input embeddings);
            ``None`` learns a ``(vocab, embedding_dim)`` table instead.
        model_spec: Load the frozen embeddings from this model spec (shared with the target when
            it is the same model); used when ``embeddings`` is ``None``. Saved agents keep only the spec.
        embedding_dim: Width of the learned table.
        recent: How many last tokens the second pooled vector covers.
    """

    def __init__(
        self, observation_space: spaces.Dict, embeddings: torch.Tensor | None = None, model_spec: str | None = None,
        embedding_dim: int = 32, recent: int = 4,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict) or set(observation_space.spaces) != {"input_ids",
                                                                                               "attention_mask"}:
            raise ValueError("TokenEmbeddingExtractor needs the token-mode observation Dict(input_ids, "
                             f"attention_mask), got {observation_space}; make the env with action_mode='token'.")
        if embeddings is None and model_spec is not None:
            embeddings = shared_causal_lm(model_spec)[0].get_input_embeddings().weight
        vocab = int(observation_space["input_ids"].high.max()) + 1
        dim = embedding_dim if embeddings is None else int(embeddings.shape[1])
        super().__init__(observation_space, features_dim=2 * dim)
        self.recent = recent
        if embeddings is None:
            self.table: nn.Module | None = nn.Embedding(vocab, dim)
        else:
            if embeddings.shape[0] < vocab:
                raise ValueError(f"The embedding matrix has {embeddings.shape[0]} rows but the env's token ids go "
                                 f"up to {vocab - 1}; use the embeddings of the env's tokenizer's model.")
            self.table = None
            self.register_buffer("frozen", embeddings.detach().float().cpu().clone(), persistent=False)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(batch, 2 * dim)``: the masked mean embedding of all tokens, then of the last ``recent`` ones."""
        ids = observations["input_ids"].long()
        mask = observations["attention_mask"].float()
        embedded = self.table(ids) if self.table is not None else self.frozen[ids]
        recent = torch.zeros_like(mask)
        recent[:, -self.recent :] = 1.0
        pooled = [(embedded * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)
                  for m in (mask, mask * recent)]
        return torch.cat(pooled, dim=-1)


class TopKTokens(gym.ActionWrapper):
    """Acts with ``Discrete(len(token_ids))``; action ``i`` writes token ``token_ids[i]``.

    Args:
        env: A token-mode prompt-gym env.
        token_ids: The allowed token ids (distinct; include EOS so the agent can stop early).
    """

    def __init__(self, env: gym.Env, token_ids: list[int]) -> None:
        super().__init__(env)
        if len(set(token_ids)) != len(token_ids) or not token_ids:
            raise ValueError("token_ids must be a non-empty list of distinct token ids.")
        self.token_ids = np.asarray(token_ids, dtype=np.int64)
        self.action_space = spaces.Discrete(len(token_ids))

    def action(self, action: Any) -> int:
        """Map an index of the restricted vocabulary to the env's token id."""
        return int(self.token_ids[int(action)])


@torch.no_grad()
def top_k_token_ids(model: Any, env: gym.Env, k: int, probes: int = 8, seed: int = 0) -> list[int]:
    """The ``k`` tokens the agent LLM most likes to start a prompt with (mean over ``probes`` meta-prompts).

    EOS is always among them (it replaces the last one if needed), so the agent can stop early.
    """
    prompt_env = EnvAdapter(env)
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    total = None
    for _ in range(probes):
        ids = torch.tensor([prompt_env.attr("sampler").sample(rng).meta_ids], device=device)
        probs = torch.softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
        total = probs if total is None else total + probs
    eos = int(prompt_env.attr("eos_token_id"))
    ranked = [int(t) for t in torch.argsort(total[: env.action_space.n], descending=True)[:k].tolist()]
    return ranked if eos in ranked else [*ranked[: k - 1], eos]


@dataclass
class SB3Config(ValidationConfig):
    """Settings of the SB3 bridge (with the validation and selection settings of ``ValidationConfig``).

    Attributes:
        algo: ``"ppo"`` or ``"a2c"`` (SB3's classes, used as they are).
        seed: SB3 seed (policy init, sampling, env resets).
        device: Torch device of the SB3 policy.
        top_k: Restrict actions to this many token ids (:class:`TopKTokens`); ``None`` keeps the whole vocabulary.
        embedding_dim: Width of the learned embedding table (when no agent LLM is given).
        recent: Last tokens pooled separately by the extractor.
        algo_kwargs: Passed to the SB3 constructor (``n_steps``, ``learning_rate``, ``ent_coef``...).
        net_arch: Hidden layers of the policy and value MLPs.

    ``eval_interval`` counts SB3 rollouts; ``final_samples`` sampled prompts and the greedy one are
    validated by ``select_prompt``.
    """

    algo: str = "ppo"
    seed: int = 0
    device: str = "cpu"
    top_k: int | None = 256
    embedding_dim: int = 32
    recent: int = 4
    algo_kwargs: dict[str, Any] = field(default_factory=lambda: {"n_steps": 64, "learning_rate": 3e-4})
    net_arch: list[int] = field(default_factory=lambda: [64])

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.algo not in ALGORITHMS:
            raise ValueError(f"algo must be one of {sorted(ALGORITHMS)}, got {self.algo!r}.")
        if self.top_k is not None and self.top_k < 2:
            raise ValueError(f"top_k must be None or at least 2 (a token and EOS), got {self.top_k}.")


class _PromptGymHooks(BaseCallback):
    """Runs inside SB3's ``learn``: counts rollouts as updates, validates when due, drives a prompt-gym callback."""

    def __init__(self, agent: SB3Agent, callback: Callback) -> None:
        super().__init__()
        self.agent = agent
        self.callback = callback
        self.stop = False

    def _on_step(self) -> bool:
        return self.callback.on_step() and not self.stop

    def _on_rollout_end(self) -> None:
        self.agent.num_updates += 1
        if self.agent.num_updates % self.agent.config.eval_interval == 0:
            self.agent.validation_check()
        self.callback.on_rollout_end()
        self.stop = not self.callback.on_update_end()  # SB3 stops at the next step


class SB3Agent(SelectingAgent):
    """A Stable-Baselines3 algorithm on the token-mode env, behind the prompt-gym ``Agent`` interface.

    Args:
        env: A token-mode prompt-gym env (``gym.make(id)``; SB3 adds its own Monitor and DummyVecEnv).
        config: Bridge settings.
        model: The agent LLM (frozen input embeddings for the extractor, top-k probe); ``None`` learns
            an embedding table and keeps the whole vocabulary unless ``model_spec`` is given.
        model_spec: A model spec to load the agent LLM from instead of ``model``.
        logger: Where metrics go; in memory by default.

    Attributes:
        model: The ``stable_baselines3.PPO`` / ``A2C`` instance.
        env: The env behind :class:`~prompt_gym.agents.rollout.EnvAdapter` (``env.env`` is the one SB3 trains on).
        token_ids: Allowed token ids (``None``: the whole vocabulary).
        num_updates: SB3 rollouts completed.
    """

    name = "sb3"

    def __init__(
        self, env: gym.Env, config: SB3Config | None = None, model: Any = None, model_spec: str | None = None,
        logger: Logger | None = None, token_ids: list[int] | None = None,
    ) -> None:
        self.config = config or SB3Config()
        self.env = EnvAdapter(env)
        if self.env.is_vector or self.env.action_mode != "token":
            raise ValueError("SB3Agent trains on one token-mode env: gym.make(id, action_mode='token').")
        if model is None and model_spec is not None:
            model = shared_causal_lm(model_spec)[0]
        self.model_spec = model_spec
        self.token_ids = token_ids
        if self.token_ids is None and self.config.top_k is not None and self.config.top_k < env.action_space.n:
            if model is None:
                raise ValueError("top_k needs the agent LLM to rank tokens: pass model= or model_spec=, or set "
                                 "top_k=None to act over the whole vocabulary.")
            self.token_ids = top_k_token_ids(model, env, self.config.top_k, seed=self.config.seed)
        wrapped = TopKTokens(env, self.token_ids) if self.token_ids is not None else env
        extractor = {"recent": self.config.recent, "embedding_dim": self.config.embedding_dim}
        if model_spec is not None:
            extractor["model_spec"] = model_spec
        elif model is not None:
            extractor["embeddings"] = model.get_input_embeddings().weight
        policy_kwargs = {"features_extractor_class": TokenEmbeddingExtractor, "features_extractor_kwargs": extractor,
                         "net_arch": list(self.config.net_arch)}
        algo_kwargs = dict(self.config.algo_kwargs)
        if self.config.algo == "ppo":  # one minibatch per rollout unless told otherwise
            algo_kwargs.setdefault("batch_size", algo_kwargs.get("n_steps", 2048))
        self.model = ALGORITHMS[self.config.algo](
            "MultiInputPolicy", wrapped, policy_kwargs=policy_kwargs, seed=self.config.seed,
            device=self.config.device, verbose=0, **algo_kwargs)
        self.logger = logger or Logger()
        self.pool = PromptPool(self.config.pool_size)
        self.num_updates = 0
        self.rng = np.random.default_rng(self.config.seed)

    @property
    def num_timesteps(self) -> int:  # type: ignore[override]
        """Env steps SB3 has taken."""
        return int(self.model.num_timesteps)

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]:
        """SB3's ``predict``, with restricted-vocabulary actions mapped back to the env's token ids."""
        action, state = self.model.predict(observation, state, episode_start, deterministic)
        if self.token_ids is not None:
            action = np.asarray(self.token_ids)[action]
        return (int(action) if np.ndim(action) == 0 else action), state

    def learn(
        self, total_timesteps: int | None = None, total_updates: int | None = None, callback: Any = None,
        progress_bar: bool = False,
    ) -> SB3Agent:
        """Run SB3's ``learn`` until ``total_timesteps`` env steps or ``total_updates`` rollouts in all.

        ``callback`` takes prompt-gym callbacks (see the module doc) and SB3's own ``BaseCallback`` s.
        """
        if total_timesteps is None and total_updates is None:
            raise ValueError("Give total_timesteps or total_updates.")
        limits = [] if total_timesteps is None else [total_timesteps - self.num_timesteps]
        if total_updates is not None:
            limits.append((total_updates - self.num_updates) * self.model.n_steps)
        remaining = min(limits)
        given = [] if callback is None else [callback] if not isinstance(callback, (list, tuple)) else list(callback)
        ours = as_callback([c for c in given if not isinstance(c, BaseCallback)])
        ours.init_callback(self)
        ours.on_training_start(locals())
        self.start_clock()
        if remaining > 0:
            callbacks = [_PromptGymHooks(self, ours), *[c for c in given if isinstance(c, BaseCallback)]]
            self.model.learn(remaining, callback=callbacks, reset_num_timesteps=False, progress_bar=progress_bar)
        ours.on_training_end()
        return self

    # ------------------------------------------------------------------ prompts
    def write_prompts(self, count: int, deterministic: bool = False) -> list[str]:
        """Roll the policy out on ``count`` fresh meta-prompts without stepping the env (no target calls)."""
        if count == 0:
            return []
        env = self.env
        length, pad, eos = env.attr("observation_length"), env.attr("pad_token_id"), env.attr("eos_token_id")
        longest = env.attr("max_prompt_tokens")
        metas = [env.attr("sampler").sample(self.rng).meta_ids for _ in range(count)]
        prompts: list[list[int]] = [[] for _ in range(count)]
        done = [False] * count
        for _ in range(longest):
            ids = np.full((count, length), pad, dtype=np.int64)
            mask = np.zeros((count, length), dtype=np.int64)
            for row, (meta, prompt) in enumerate(zip(metas, prompts, strict=True)):
                tokens = meta + prompt
                ids[row, length - len(tokens) :], mask[row, length - len(tokens) :] = tokens, 1
            actions, _ = self.predict({"input_ids": ids, "attention_mask": mask}, deterministic=deterministic)
            for row, token in enumerate(np.atleast_1d(actions)):
                if done[row]:
                    continue
                if int(token) == eos:
                    done[row] = True
                    continue
                prompts[row].append(int(token))
                done[row] = len(prompts[row]) >= longest
            if all(done):
                break
        return [env.attr("tokenizer").decode(p, skip_special_tokens=True).strip() for p in prompts]

    def validation_check(self) -> dict[str, Any]:
        """Validate ``eval_samples`` sampled prompts; record and dump the metrics."""
        return self.log_validation(mean_accuracy(self.validate(self.write_prompts(self.config.eval_samples))))

    def selection_candidates(self) -> list[str]:
        """The greedy prompt and ``final_samples`` sampled ones, each from a fresh meta-prompt."""
        return self.write_prompts(1, deterministic=True) + self.write_prompts(self.config.final_samples)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write SB3's ``model.zip``, ``agent.json`` (config, token ids, model spec) and the pool into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "model.zip")
        ckpt.save_json(path / "agent.json", {"agent": f"sb3:{self.config.algo}", "config": asdict(self.config),
                                             "token_ids": self.token_ids, "model_spec": self.model_spec,
                                             "num_updates": self.num_updates, "pool": self.pool.to_list()})

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any) -> SB3Agent:
        """Rebuild a saved agent on ``env`` (required: SB3 needs the env's spaces); ``model=`` as in ``__init__``."""
        if env is None:
            raise ValueError("SB3Agent.load needs the env (SB3 rebuilds the policy from its spaces).")
        path = Path(path)
        meta = ckpt.load_json(path / "agent.json")
        agent = cls(env, SB3Config(**meta["config"]), model_spec=meta["model_spec"], token_ids=meta["token_ids"],
                    **kwargs)
        agent.model.set_parameters(str(path / "model.zip"), device=agent.config.device)
        agent.num_updates = meta["num_updates"]
        agent.pool = PromptPool.from_list(meta["pool"], agent.config.pool_size)
        return agent
