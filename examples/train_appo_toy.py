"""Train the StablePrompt (APPO) agent on the toy env in well under a minute, CPU only.

The toy target is a keyword rule: it answers more examples correctly the more task words
("sentiment", "review", "positive", "negative", "classify") the prompt contains. The agent is a
tiny random Llama over the toy word vocabulary, acting one token per step (token mode), with LoRA
on q/v and the LM head. Watch the batch accuracy climb from ~0.65 to ~0.9.

    python examples/train_appo_toy.py --updates 30
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

import gymnasium as gym
import torch

import prompt_gym  # noqa: F401  (registers the environments)
from prompt_gym.agents.appo.agent import APPOAgent
from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.testing import build_tiny_lm
from prompt_gym.toy import WordTokenizer


@dataclass
class Args:
    updates: int = 30
    """APPO updates"""
    seed: int = 0
    """seed of the model, the agent and the env"""
    batch_size: int = 16
    """prompts per update"""
    learning_rate: float = 3e-2
    """Adam learning rate (a tiny random model needs a large one)"""
    kl_coef: float = 0.01
    """beta of the per-token KL penalty to the anchor"""
    anchor_check_interval: int = 5
    """updates between anchor checks (promotion / rollback on the validation split)"""
    max_prompt_tokens: int = 12
    """words per prompt"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Args):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    args = parse_args()
    torch.set_num_threads(1)  # tiny models: one thread avoids oversubscription on shared CPUs

    # TRY NOT TO MODIFY: env and agent model share one word vocabulary
    env = gym.make("PromptTune-Toy-v0", reward="accuracy", max_prompt_tokens=args.max_prompt_tokens)
    tokenizer = WordTokenizer()
    model = build_tiny_lm(tokenizer, seed=args.seed)

    # ALGO LOGIC: APPO = PPO with a KL anchor that moves only after validated progress
    config = APPOConfig(seed=args.seed, learning_rate=args.learning_rate, batch_size=args.batch_size,
                        kl_coef=args.kl_coef,
                        anchor_check_interval=args.anchor_check_interval, anchor_samples=2)
    lora = ModelConfig(lora_target_modules=["q_proj", "v_proj", "lm_head"])
    agent = APPOAgent(env, config, lora, model=model, tokenizer=tokenizer)
    agent.learn(total_updates=args.updates, progress_bar=True)

    updates = [record for record in agent.logger.history if "rollout/accuracy" in record]
    for record in updates[:: max(1, args.updates // 10)]:
        print(f"update {record['step']:3d}  batch accuracy {record['rollout/accuracy']:.3f}  "
              f"KL to anchor {record['anchor/kl']:.3f}")
    best = agent.select_prompt()  # chosen on the validation split
    test = evaluate_prompts(env.unwrapped.scorer, env.unwrapped.task,
                            [best["prompt"], env.unwrapped.task.manual_prompt], split="test")
    print(f"promotions {agent.promotions}, rollbacks {agent.rollbacks}")
    print(f"learned prompt {best['prompt']!r}: test accuracy {test[0]['accuracy']:.3f} "
          f"(manual prompt: {test[1]['accuracy']:.3f})")
