"""One APPO update, phase by phase: our loop vs a reference loop that works the way the paper's code does.

Both loops do an update at the ``learn_sst2`` settings of ``benchmarks/RESULTS.md`` ("Learning that
shows"): SST-2 split 13, the default model as agent and target, 8 prompts of at most 16 tokens per
update written for one meta-prompt with 3 demonstrations, each judged on the 32 training sentences,
2 PPO epochs, an anchor check every 5 updates (8 prompts from the policy and 8 from the anchor, each
scored on the 32 validation sentences) and a checkpoint after every update.

- **Ours**: ``APPOAgent`` with those options, as ``prompt-gym compare`` runs it (one copy of the
  weights for policy, anchor and target; the meta-prompt encoded once per batch; last-position
  logits; the score cache). Ours also replays its 8 elite prompts in the PPO passes (16 sequences),
  which the reference does not do.
- **Reference**: the StablePrompt public code's way, with trl's PPO: three model copies (policy with
  LoRA and a value head, an anchor copy, a target copy); prompts written 4 at a time with Hugging Face
  ``generate`` (its own KV cache within a call, nothing reused across calls); old, anchor and new
  log-probs from full forward passes over batches of 4 with full-vocabulary logits; the target scores
  one prompt at a time in batches of 4 sentences with full logits at every position; no caches.

The script warms each loop up with one update, then times ``--updates`` more of each, alternating
the two loops update by update so that a change in the machine's load hits both alike (one anchor
check falls in the window at the default 5). Each phase is timed in process CPU seconds (one torch
thread: what the loop costs on a core of its own, whatever else runs) and in wall seconds. It prints
both per phase, updates per hour of both loops, and the ratios. ``--png`` draws the CPU profile as
stacked bars.

Usage:
    PROMPT_GYM_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_update.py \\
        --png benchmarks/figures/update_profile.png
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from bench_common import machine

import prompt_gym  # noqa: F401  (registers the environments)
from prompt_gym.agents.configs import ModelConfig
from prompt_gym.agents.registry import make_agent
from prompt_gym.models import DEFAULT_MODEL, load_causal_lm, padding_id
from prompt_gym.scoring import render, verbalizer_token_ids

ENV_ID = "PromptTune-SST2-v0"
ENV_KWARGS = {"max_prompt_tokens": 16, "num_demos": 3, "reward_batch_size": 32}
APPO_OPTIONS = {"learning_rate": 1e-3, "batch_size": 8, "minibatch_size": None, "ppo_epochs": 2, "advantage": "batch",
                "shared_meta_prompt": True, "kl_coef": 0.2, "temperature": 1.0, "anchor_check_interval": 5,
                "anchor_samples": 8, "anchor_threshold": 0.05, "final_samples": 4, "elite_replay": 8}
PHASES = ("write prompts", "target scoring", "log-probs, no gradient (old, anchor)",
          "PPO epochs (forward, backward, step)", "anchor check", "checkpoint", "other")
WHOLE = {"anchor check", "checkpoint"}
"""Phases timed as a whole: the writing and scoring inside an anchor check count as the check."""


class Profile:
    """Exclusive time per phase, CPU and wall: time inside a nested phase counts only for the inner one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)  # process CPU seconds
        self.wall: dict[str, float] = defaultdict(float)
        self._open: list[str] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (inside a :data:`WHOLE` phase it counts for that phase)."""
        if self._open and self._open[-1] in WHOLE:
            yield
            return
        start, start_wall = time.process_time(), time.perf_counter()
        self._open.append(name)
        try:
            yield
        finally:
            self._open.pop()
            elapsed, elapsed_wall = time.process_time() - start, time.perf_counter() - start_wall
            self.seconds[name] += elapsed
            self.wall[name] += elapsed_wall
            if self._open:
                self.seconds[self._open[-1]] -= elapsed
                self.wall[self._open[-1]] -= elapsed_wall

    def reset(self) -> None:
        """Forget what was timed so far (after the warm-up)."""
        self.seconds.clear()
        self.wall.clear()

    def wrap(self, owner: Any, method: str, name: str | Callable[[], str]) -> None:
        """Replace ``owner.method`` (on the instance) by a version timed as ``name`` (or ``name()``)."""
        original = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name() if callable(name) else name):
                return original(*args, **kwargs)

        setattr(owner, method, timed)


def _logprob_phase() -> str:
    return PHASES[3] if torch.is_grad_enabled() else PHASES[2]


class OurLoop:
    """Our APPO agent, as ``prompt-gym compare`` runs it, with its phases timed into ``profile``."""

    def __init__(self, seed: int, profile: Profile) -> None:
        model, tokenizer = load_causal_lm(DEFAULT_MODEL)
        env = gym.make(ENV_ID, action_mode="text", tokenizer=tokenizer, target=(model, tokenizer), **ENV_KWARGS)
        self.agent = make_agent("appo", env, seed=seed, model=model, tokenizer=tokenizer, **APPO_OPTIONS)
        self.agent.learn(total_updates=0)  # the start measurement at update 0, outside the timed updates
        profile.wrap(self.agent.decoder, "generate", PHASES[0])
        profile.wrap(env.unwrapped.judge.scorer, "score_examples", PHASES[1])
        profile.wrap(self.agent.policy, "sequence_logprobs", _logprob_phase)
        profile.wrap(self.agent, "_ppo_update", PHASES[3])
        profile.wrap(self.agent, "anchor_check", PHASES[4])
        profile.wrap(self.agent, "save_checkpoint", PHASES[5])

    def update(self, profile: Profile, folder: Path) -> None:
        """One update and its checkpoint (``compare`` checkpoints after every update)."""
        with profile.phase(PHASES[6]):
            self.agent.learn(total_updates=self.agent.num_updates + 1)
            self.agent.save_checkpoint(folder)


class ReferenceLoop:
    """APPO the way the paper's public code runs it (trl PPO, three copies, batches of 4, full logits, no caches)."""

    def __init__(self, seed: int) -> None:
        from peft import get_peft_model

        torch.manual_seed(seed)
        env = gym.make(ENV_ID, action_mode="text", **ENV_KWARGS)
        self.meta_prompt, _ = env.reset(seed=seed)
        self.task = env.unwrapped.task
        base, self.tokenizer = load_causal_lm(DEFAULT_MODEL)
        self.tokenizer.padding_side = "left"
        self.pad_id = padding_id(self.tokenizer)
        self.policy = get_peft_model(base, ModelConfig().to_peft_config())
        self.value_head = torch.nn.Linear(base.config.hidden_size, 1)
        self.anchor = copy.deepcopy(self.policy).eval()
        self.target, _ = load_causal_lm(DEFAULT_MODEL)
        self.target.eval()
        self.verbalizer_ids = verbalizer_token_ids(self.tokenizer, self.task.verbalizer, self.task.template)
        trainable = [p for p in self.policy.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.Adam(trainable, lr=APPO_OPTIONS["learning_rate"])
        self.train = self.task.split("train")[: ENV_KWARGS["reward_batch_size"]]
        self.validation = self.task.split("validation")
        self.query = self.tokenizer(self.meta_prompt, return_tensors="pt").input_ids
        self.num_updates = 0

    def write(self, model: Any, count: int) -> list[torch.Tensor]:
        """``count`` responses, 4 per ``generate`` call (``num_return_sequences=4``)."""
        responses = []
        with torch.no_grad():
            for _ in range(0, count, 4):
                out = model.generate(self.query, attention_mask=torch.ones_like(self.query), do_sample=True,
                                     temperature=APPO_OPTIONS["temperature"], top_k=0, top_p=1.0,
                                     max_new_tokens=ENV_KWARGS["max_prompt_tokens"], num_return_sequences=4,
                                     pad_token_id=self.pad_id)
                responses += [row[self.query.shape[1]:] for row in out]
        return responses

    def score(self, prompt: str, examples: list[Any]) -> tuple[float, float]:
        """Accuracy and mean gap of ``prompt``: batches of 4, full logits at every position."""
        correct, gaps = 0, []
        with torch.no_grad():
            for start in range(0, len(examples), 4):
                batch = examples[start : start + 4]
                texts = [render(self.task.template, prompt, example.input) for example in batch]
                encoded = self.tokenizer(texts, return_tensors="pt", padding=True)
                logits = self.target(**encoded).logits[:, -1, self.verbalizer_ids].float()
                for row, example in zip(logits.log_softmax(-1), batch, strict=True):
                    others = torch.cat([row[: example.label], row[example.label + 1 :]])
                    gaps.append(float(row[example.label] - others.max()))
                    correct += int(int(row.argmax()) == example.label)
        return correct / len(examples), sum(gaps) / len(gaps)

    def logprobs(self, model: Any, responses: list[torch.Tensor], values: bool) -> tuple[torch.Tensor, ...]:
        """Response log-probs (and values) of up to 4 sequences: a full forward, full-vocabulary logits."""
        ids = torch.nn.utils.rnn.pad_sequence(
            [torch.cat([self.query[0], r]) for r in responses], batch_first=True, padding_value=self.pad_id)
        out = model(input_ids=ids, output_hidden_states=values)
        start = self.query.shape[1]
        logprobs = torch.log_softmax(out.logits[:, start - 1 : -1].float() / APPO_OPTIONS["temperature"], -1)
        taken = logprobs.gather(-1, ids[:, start:, None]).squeeze(-1)
        if not values:
            return (taken,)
        return taken, self.value_head(out.hidden_states[-1][:, start - 1 : -1].float()).squeeze(-1)

    def update(self, profile: Profile, folder: Path) -> None:
        """One update with its phases timed into ``profile``."""
        with profile.phase(PHASES[6]):
            self._update(profile, folder)

    def _update(self, profile: Profile, folder: Path) -> None:
        with profile.phase(PHASES[0]):
            responses = self.write(self.policy, APPO_OPTIONS["batch_size"])
        prompts = [self.tokenizer.decode(r, skip_special_tokens=True) for r in responses]
        with profile.phase(PHASES[1]):
            rewards = torch.tensor([30 * acc + gap for acc, gap in (self.score(p, self.train) for p in prompts)])
        batches = [responses[i : i + 4] for i in range(0, len(responses), 4)]
        with profile.phase(PHASES[2]), torch.no_grad():
            old = [self.logprobs(self.policy, b, values=True) for b in batches]
            reference = [self.logprobs(self.anchor, b, values=False)[0] for b in batches]
        with profile.phase(PHASES[3]):
            self.policy.train()
            for _ in range(APPO_OPTIONS["ppo_epochs"]):
                for i, batch in enumerate(batches):
                    rows = slice(4 * i, 4 * i + len(batch))
                    (old_logprobs, old_values), kl = old[i], old[i][0] - reference[i]
                    returns = rewards[rows, None] - APPO_OPTIONS["kl_coef"] * kl.sum(-1, keepdim=True)
                    advantages = returns - old_values
                    logprobs, values = self.logprobs(self.policy, batch, values=True)
                    ratio = torch.exp(logprobs - old_logprobs)
                    loss = -torch.min(ratio * advantages, ratio.clamp(0.8, 1.2) * advantages).mean()
                    loss = loss + 0.1 * ((values - returns) ** 2).mean()
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
            self.policy.eval()
        self.num_updates += 1
        if self.num_updates % APPO_OPTIONS["anchor_check_interval"] == 0:
            with profile.phase(PHASES[4]):
                samples = APPO_OPTIONS["anchor_samples"]
                for model in (self.policy, self.anchor):
                    for r in self.write(model, samples):
                        self.score(self.tokenizer.decode(r, skip_special_tokens=True), self.validation)
        with profile.phase(PHASES[5]):
            self.policy.save_pretrained(folder / "policy")
            torch.save({"value_head": self.value_head.state_dict(), "optimizer": self.optimizer.state_dict()},
                       folder / "state.pt")


def report(profiles: dict[str, Profile], updates: int) -> None:
    """Print the per-phase table (CPU and wall seconds per update), updates per hour and the ratios."""
    cpu = {name: sum(p.seconds.values()) / updates for name, p in profiles.items()}
    wall = {name: sum(p.wall.values()) / updates for name, p in profiles.items()}
    print("| phase | " + " | ".join(f"{name}: CPU s/update | share | wall s/update" for name in profiles) + " |")
    print("|---|" + "---|---|---|" * len(profiles))
    for phase in PHASES:
        cells = [f"{p.seconds[phase] / updates:.2f} | {p.seconds[phase] / updates / cpu[n]:.0%} | "
                 f"{p.wall[phase] / updates:.2f}" for n, p in profiles.items()]
        print(f"| {phase} | " + " | ".join(cells) + " |")
    print("| **whole update** | " + " | ".join(f"**{cpu[n]:.2f}** | 100% | **{wall[n]:.2f}**" for n in profiles) + " |")
    for name in profiles:
        print(f"{name}: {3600 / cpu[name]:.0f} updates per CPU hour, {3600 / wall[name]:.0f} per wall hour")
    if len(profiles) == 2:
        print(f"ratio (ours / reference, updates per hour): {cpu['reference'] / cpu['ours']:.2f}x in CPU time, "
              f"{wall['reference'] / wall['ours']:.2f}x in wall time")


def plot(profiles: dict[str, Profile], updates: int, path: Path) -> None:
    """Stacked bars: seconds per update of each loop, split by phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    names = list(profiles)
    bottoms = [0.0] * len(names)
    for phase in PHASES:
        heights = [profiles[n].seconds[phase] / updates for n in names]
        ax.bar(names, heights, bottom=bottoms, label=phase)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_ylabel("CPU seconds per update (1 thread)")
    ax.set_title("One APPO update at the learn_sst2 settings, by phase")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=5, help="timed updates per loop (after one warm-up)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--png", type=Path, help="draw the profile here")
    args = parser.parse_args()
    print(f"# {machine()}")
    profiles = {"ours": Profile(), "reference": Profile()}
    loops = {"ours": OurLoop(args.seed, profiles["ours"]), "reference": ReferenceLoop(args.seed)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, loop in loops.items():  # a warm-up update, not counted
            (Path(tmp) / name).mkdir()
            loop.update(profiles[name], Path(tmp) / name)
            profiles[name].reset()
        for index in range(args.updates):
            for name, loop in loops.items():
                loop.update(profiles[name], Path(tmp) / name)
            print(f"# update {index + 1}: " + ", ".join(
                f"{n} {sum(p.seconds.values()) / (index + 1):.1f} CPU s" for n, p in profiles.items()), flush=True)
    report(profiles, args.updates)
    if args.png:
        plot(profiles, args.updates, args.png)


if __name__ == "__main__":
    main()
