"""Bring your own task: JSON Lines data -> a registered task -> a Gymnasium environment.

Runs in seconds with no model: the targets are rule-based stand-ins. Swap them for a real LLM by
dropping ``scorer=`` (the default model) or passing ``target="smollm2-135m-instruct"``.

    python examples/custom_task.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gymnasium as gym

import prompt_gym
from prompt_gym.data import DataError
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.generation import BaseGenerationScorer
from prompt_gym.toy import RuleScorer, WordTokenizer

REVIEWS = [("a joy from start to finish", 1), ("dull and far too long", 0), ("warm funny and smart", 1),
           ("a lazy mess", 0), ("great cast and a great story", 1), ("tedious and flat", 0),
           ("beautifully shot", 1), ("clumsy writing", 0), ("pure fun", 1), ("an awful bore", 0),
           ("moving and honest", 1), ("a painful slog", 0)]
WORDS = ["cat", "house", "tree", "river", "car", "book", "song", "dog", "bird", "lamp", "door", "shoe"]


class UppercaseTarget(BaseGenerationScorer):
    """A rule target for the generation task: it upper-cases the input only if the prompt asks for it."""

    def generate_pairs(self, prompts: list[str], inputs: list[str]) -> list[str]:
        self.num_evaluations += len(prompts)
        return [x.upper() if "upper" in p.lower() else x for p, x in zip(prompts, inputs, strict=True)]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return str(path)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="prompt_gym_custom_"))

    # 1. A classification task from JSON Lines files: {"text": ..., "label": int} per line.
    rows = [{"text": text, "label": label} for text, label in REVIEWS]
    files = {split: write_jsonl(folder / f"{split}.jsonl", part)
             for split, part in (("train", rows[:4]), ("validation", rows[4:8]), ("test", rows[8:]))}
    task = prompt_gym.make_task("my_reviews", **files, verbalizer=["negative", "positive"],
                                manual_prompt="Classify the sentiment of the review.")
    prompt_gym.register_task("my_reviews", task, overwrite=True)

    # 2. Make an environment on it. The rule target answers well when the prompt names the task.
    target = RuleScorer({r["text"]: r["label"] for r in rows}, task.verbalizer)
    gym.register(id="MyReviews-v0", entry_point="prompt_gym.envs.prompt_tune:PromptTuneEnv",
                 kwargs={"task": "my_reviews"})
    env = gym.make("MyReviews-v0", scorer=target, tokenizer=WordTokenizer(), action_mode="text",
                   num_demos=2, reward_batch_size=4)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("Classify the sentiment of the review as positive or negative.")
    print(f"classification: reward={reward:.2f} accuracy={info['accuracy']:.2f} terminated={terminated}")
    for result in evaluate_prompts(target, task, ["", task.manual_prompt]):
        print(f"  test accuracy {result['accuracy']:.2f}  prompt={result['prompt']!r}")

    # 3. A generation task: rows carry the acceptable answers; a metric scores the target's answer.
    pairs = [{"input": w, "output": [w.upper()]} for w in WORDS]
    gen = prompt_gym.make_task("my_upper", train=pairs[:6], validation=pairs[6:9], test=pairs[9:],
                               metric="exact_match", input_format="{input}", max_new_tokens=4)
    env = gym.make("PromptTune-Toy-v0", task=gen, scorer=UppercaseTarget("exact_match"), tokenizer=WordTokenizer(),
                   action_mode="text", num_demos=2, reward_batch_size=4)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("Write the input in upper case.")
    print(f"generation: reward={reward:.1f} exact_match={info['accuracy']:.2f}")

    # 4. Malformed data fails early with the file and line.
    bad = write_jsonl(folder / "bad.jsonl", [{"text": "fine", "label": 1}, {"text": "oops", "label": 2}])
    try:
        prompt_gym.make_task("broken", train=bad, validation=bad, test=bad, verbalizer=["negative", "positive"])
    except DataError as error:
        print(f"malformed data: {error}")


if __name__ == "__main__":
    main()
