"""The toy task: a tiny sentiment task with a keyword-rule target and a word tokenizer, no model.

Everything the toy environment (``PromptTune-Toy-v0``) needs without a download lives here: the
task (:func:`toy_task`, registered as ``"toy"``), its target (:class:`RuleScorer`) and the env
tokenizer (:class:`WordTokenizer`). A good prompt is easy to find, so agents learn it in seconds:
it is the task for teaching, tests and examples.

Example:
    >>> from prompt_gym.toy import toy_task
    >>> task = toy_task()
    >>> scorer = task.default_scorer(task)
    >>> scorer.competence("Classify the sentiment of the review")
    3
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from prompt_gym.calibration import CONTENT_FREE_INPUTS
from prompt_gym.data import Example
from prompt_gym.scoring import BaseScorer
from prompt_gym.tasks import Task, register_task

TOY_WORDS = (
    "the review is a movie film sentiment positive negative classify label text say whether it good bad "
    "tell me if this was great terrible write answer word please output input read decide of as or and "
    "happy sad story plot book music food very not kind to for"
).split()
"""The vocabulary of :class:`WordTokenizer`."""


def toy_task(seed: int = 13, test_split: str | None = None) -> Task:
    """Build the toy task: 12 positive and 12 negative short reviews, split 8/8/8.

    Args:
        seed: Ignored: the toy splits are fixed (the argument keeps the registry's signature).
        test_split: Ignored, as ``seed``.
    """
    del seed, test_split
    positive = ["a delight", "warm and funny", "a real gem", "beautifully made", "great fun", "truly moving",
                "sharp and smart", "a joy to watch", "wonderful cast", "pure pleasure", "smart script",
                "charming story"]
    negative = ["a total bore", "dull and flat", "a waste of time", "badly made", "no fun at all", "painfully slow",
                "lazy writing", "a mess", "awful acting", "tedious plot", "a dreary slog", "clumsy story"]
    rows = [Example(text, 1, uid=f"toy:{i}") for i, text in enumerate(positive)]
    rows += [Example(text, 0, uid=f"toy:{len(positive) + i}") for i, text in enumerate(negative)]
    order = np.random.default_rng(0).permutation(len(rows))
    rows = [rows[i] for i in order]
    return Task(
        name="toy",
        splits={"train": rows[:8], "validation": rows[8:16], "test": rows[16:]},
        verbalizer=("negative", "positive"),
        manual_prompt="Classify the sentiment of the review as positive or negative.",
        label_names=("negative", "positive"),
        default_scorer=rule_scorer,
        default_tokenizer=WordTokenizer,
    )


def rule_scorer(task: Task) -> RuleScorer:
    """The toy target of ``task``: a :class:`RuleScorer` that knows the answer to every input."""
    answers = {example.input: example.label for split in task.splits.values() for example in split}
    return RuleScorer(answers, task.verbalizer or ())


class RuleScorer(BaseScorer):
    """A deterministic stand-in target for the toy task; it loads no model.

    The rule: a prompt's *competence* ``k`` is how many of ``keywords`` it contains (whole words,
    case-insensitive). An input is answered correctly when ``crc32(input) % len(keywords) < k``;
    otherwise the target says the last class (a biased model). So the empty prompt gets the
    accuracy of always answering the last class, and every extra keyword helps: a good prompt is
    easy to find, which makes the toy task learnable in seconds. A content-free input
    (:data:`prompt_gym.calibration.CONTENT_FREE_INPUTS`) gets the biased answer, so the toy target
    can be calibrated; any other input it has no answer for is an error.

    Args:
        answers: Maps each input text to its true class.
        verbalizer: Class words.
        keywords: Words that make the target competent.
    """

    def __init__(
        self,
        answers: dict[str, int],
        verbalizer: Sequence[str],
        keywords: Sequence[str] = ("sentiment", "review", "positive", "negative", "classify"),
    ) -> None:
        self.answers = dict(answers)
        self.verbalizer = tuple(verbalizer)
        self.keywords = tuple(word.lower() for word in keywords)
        self.num_evaluations = 0

    def competence(self, prompt: str) -> int:
        """Number of distinct keywords in ``prompt``."""
        words = set("".join(c if c.isalnum() else " " for c in prompt.lower()).split())
        return sum(keyword in words for keyword in self.keywords)

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""
        num_classes = len(self.verbalizer)
        out = np.empty((len(prompts), num_classes), dtype=np.float32)
        for row, (prompt, source) in enumerate(zip(prompts, inputs, strict=True)):
            content_free = source in CONTENT_FREE_INPUTS
            if source not in self.answers and not content_free:
                raise KeyError(f"RuleScorer knows no answer for input {source!r}.")
            k = self.competence(prompt)
            knows = not content_free and zlib.crc32(source.encode()) % len(self.keywords) < k
            logits = np.zeros(num_classes)
            logits[self.answers[source] if knows else num_classes - 1] = 0.5 + 0.5 * k
            out[row] = logits - np.log(np.exp(logits).sum())
        self.num_evaluations += len(prompts)
        return out


class WordTokenizer:
    """Whitespace/punctuation word tokenizer over a fixed vocabulary, for the toy environment.

    It needs no download and no ``transformers``: words outside the vocabulary become ``<unk>``.
    It offers the subset of the Hugging Face tokenizer interface the environments use. Token ids:
    0 ``<pad>``, 1 ``<eos>``, 2 ``<unk>``, then the words. ``decode`` joins words with single
    spaces. No chat template.

    Args:
        words: The vocabulary (lower-case words); defaults to :data:`TOY_WORDS`.
    """

    chat_template = None
    pad_token_id = 0
    eos_token_id = 1
    unk_token_id = 2
    padding_side = "left"

    def __init__(self, words: Sequence[str] = TOY_WORDS) -> None:
        self.vocab = ["<pad>", "<eos>", "<unk>", *dict.fromkeys(w.lower() for w in words)]
        self.ids = {word: i for i, word in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Split ``text`` into lower-case words and punctuation; unknown pieces become ``<unk>``."""
        return [self.ids.get(piece, self.unk_token_id) for piece in re.findall(r"\w+|[^\w\s]", text.lower())]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Join the words of ``ids`` with spaces (special tokens dropped when asked)."""
        special = {self.pad_token_id, self.eos_token_id, self.unk_token_id} if skip_special_tokens else set()
        return " ".join(self.vocab[int(i)] for i in ids if int(i) not in special)


register_task("toy", toy_task)
