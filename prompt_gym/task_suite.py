"""The paper's task suite: few-shot classification, Instruction Induction and MMLU by subject.

Every task here is a factory that reads ``$PROMPT_GYM_DATA_DIR`` (the project's shared data, see
its README) only when it is built. Importing this module registers every factory with
:func:`prompt_gym.tasks.register_task` (``prompt_gym`` imports it), and :mod:`prompt_gym.envs`
registers one environment per task from the tables below (:data:`CLASSIFICATION_ENVS`,
:data:`II_TASKS`, :data:`MMLU_SUBJECTS`). Splits, input formats, verbalizers and the measurements
behind them are documented in ``docs/tasks.md``.

Adding a few-shot classification task takes two edits here: a :class:`ClassificationSpec`, and a
row in :data:`CLASSIFICATION_ENVS` (its env id infix and the ``max_meta_prompt_tokens`` its longest
demonstrations need).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prompt_gym import data as _data
from prompt_gym.data import DataError, Example
from prompt_gym.tasks import ClassificationSpec, Task, TaskFactory, register_task

# --- Few-shot classification -------------------------------------------------------------------
# Input formats follow StablePrompt's (Kwon et al. 2024) with our "name: value" spelling. The
# verbalizers are the paper's except where a measurement on SmolLM2-135M-Instruct says otherwise:
# `python benchmarks/task_suite_verbalizers.py` (numbers in docs/tasks.md).
SST2 = ClassificationSpec(
    name="sst2", folder="sst2", verbalizer=("negative", "positive"), input_format="{text}",
    manual_prompt="Classify the sentiment of the movie review as positive or negative.",
    test_file="validation", label_names=("negative", "positive"),
    hub=("glue", "sst2", {"text": "sentence"}, "validation"),
)
"""SST-2, the default task; the only one with a Hugging Face hub fallback when no data folder is set."""
_PAIR = "{name_a}: {{text_a}}\n{name_b}: {{text_b}}"

MRPC = ClassificationSpec(
    name="mrpc", folder="mrpc", verbalizer=("different", "same"),
    input_format=_PAIR.format(name_a="sentence1", name_b="sentence2"),
    manual_prompt="Do the two sentences mean the same thing? Answer same or different.",
    label_names=("not_equivalent", "equivalent"),
)
"""MRPC. Verbalizer changed from the paper's No/Yes: SmolLM2 answers " No" (and " no") to every
pair; " different"/" same" is less one-sided (docs/tasks.md)."""
RTE = ClassificationSpec(
    name="rte", folder="rte", verbalizer=("true", "false"),
    input_format=_PAIR.format(name_a="premise", name_b="hypothesis"),
    manual_prompt="Is the hypothesis true given the premise? Answer true or false.",
    test_file="validation", label_names=("entailment", "not_entailment"),
)
"""RTE. Verbalizer changed from the paper's yes/no: SmolLM2 answers " no" (and nearly always " No")
to every pair; " true"/" false" is the least one-sided option measured (docs/tasks.md). All are near
chance for this model."""
QNLI = ClassificationSpec(
    name="qnli", folder="qnli", verbalizer=("true", "false"),
    input_format=_PAIR.format(name_a="question", name_b="sentence"),
    manual_prompt="Does the sentence answer the question? Answer true or false.",
    test_file="validation", label_names=("entailment", "not_entailment"),
)
"""QNLI. Verbalizer changed from the paper's yes/no: SmolLM2 answers " no" (and " No") to every
pair; " true"/" false" splits its answers across both classes (docs/tasks.md)."""
MNLI = ClassificationSpec(
    name="mnli", folder="mnli", verbalizer=("Yes", "Maybe", "No"),
    input_format=_PAIR.format(name_a="premise", name_b="hypothesis"),
    manual_prompt="Does the premise entail the hypothesis? Answer Yes, Maybe or No.",
    test_file="validation", label_names=("entailment", "neutral", "contradiction"),
)
SNLI = ClassificationSpec(
    name="snli", folder="snli", verbalizer=("Yes", "Maybe", "No"),
    input_format=_PAIR.format(name_a="premise", name_b="hypothesis"),
    manual_prompt="Does the premise entail the hypothesis? Answer Yes, Maybe or No.",
    label_names=("entailment", "neutral", "contradiction"),
)
AGNEWS = ClassificationSpec(
    name="agnews", folder="agnews", verbalizer=("World", "Sports", "Business", "Tech"),
    input_format="{text}",
    manual_prompt="Classify the topic of the news article as World, Sports, Business or Tech.",
    label_names=("World", "Sports", "Business", "Sci/Tech"),
)
YELP = ClassificationSpec(
    name="yelp", folder="yelp_polarity", verbalizer=("negative", "positive"), input_format="{text}",
    manual_prompt="Classify the sentiment of the restaurant review as positive or negative.",
    label_names=("negative", "positive"),
)
CR = ClassificationSpec(
    name="cr", folder="cr", verbalizer=("negative", "positive"), input_format="{text}",
    manual_prompt="Classify the sentiment of the product review as positive or negative.",
    label_names=("negative", "positive"),
)
MR = ClassificationSpec(
    name="mr", folder="mr", verbalizer=("negative", "positive"), input_format="{text}",
    manual_prompt="Classify the sentiment of the movie review as positive or negative.",
    label_names=("negative", "positive"),
)

CLASSIFICATION_ENVS: dict[str, tuple[ClassificationSpec, dict[str, Any]]] = {
    "SST2": (SST2, {}),
    "MRPC": (MRPC, {"max_meta_prompt_tokens": 768}),
    "RTE": (RTE, {"max_meta_prompt_tokens": 1280}),
    "QNLI": (QNLI, {"max_meta_prompt_tokens": 768}),
    "MNLI": (MNLI, {"max_meta_prompt_tokens": 1024}),
    "SNLI": (SNLI, {"max_meta_prompt_tokens": 512}),
    "AGNews": (AGNEWS, {"max_meta_prompt_tokens": 1024}),
    "Yelp": (YELP, {"max_meta_prompt_tokens": 1024}),
    "CR": (CR, {"max_meta_prompt_tokens": 768}),
    "MR": (MR, {"max_meta_prompt_tokens": 768}),
}
"""Env id infix (``PromptTune-<infix>-v0``) -> (task spec, env kwargs). ``max_meta_prompt_tokens``
fits 5 of the task's longest validation inputs in SmolLM2's tokenizer plus the request (SST-2's
fit the env's default)."""

# --- Instruction Induction ---------------------------------------------------------------------
II_TASKS: tuple[str, ...] = (
    "active_to_passive", "antonyms", "cause_and_effect", "common_concept", "diff", "first_word_letter",
    "informal_to_formal", "larger_animal", "letters_list", "negation", "num_to_verbal",
    "orthography_starts_with", "rhymes", "second_word_letter", "sentence_similarity", "sentiment",
    "singular_to_plural", "sum", "synonyms", "taxonomy_animal", "translation_en-de", "translation_en-es",
    "translation_en-fr", "word_in_context",
)
"""The 24 Instruction Induction tasks (Honovich et al. 2022, APE's copy)."""

II_METRICS: dict[str, str] = {
    "common_concept": "f1", "informal_to_formal": "f1", "orthography_starts_with": "set_match",
    "taxonomy_animal": "set_match", "synonyms": "contains",
}
"""Metric per task (StablePrompt's ``TASK_TO_METRIC``); every other task uses exact match."""

II_LONG_ANSWERS: dict[str, int] = {
    "active_to_passive": 24, "cause_and_effect": 24, "informal_to_formal": 32, "letters_list": 24,
    "negation": 32, "num_to_verbal": 16, "taxonomy_animal": 16, "orthography_starts_with": 16,
}
"""``max_new_tokens`` where answers are long (the longest test answer in SmolLM2 tokens plus a
margin); every other task uses 8 (its answers fit in 8 tokens)."""

II_VALIDATION_SIZE = 32
"""Validation examples carved out of ``induce`` (StablePrompt uses 32 as well)."""


@dataclass(frozen=True)
class InstructionInductionSpec:
    """An Instruction Induction task from ``$PROMPT_GYM_DATA_DIR/instruction_induction/<name>/``.

    Splits: ``test`` is ``execute`` (``test.jsonl``). ``induce`` (``train.jsonl``) is shuffled with
    ``seed`` and split in two disjoint parts: ``validation`` (demonstrations, prompt selection) gets
    ``min(32, n // 2)`` examples and ``train`` (reward batches) the rest. The manual prompt is the
    longest of the task's human-written gold instructions (``annotations.json``).

    Attributes:
        name: The task folder (an entry of :data:`II_TASKS`).
        metric: The task metric.
        max_new_tokens: The longest answer the target writes.
    """

    name: str
    metric: str
    max_new_tokens: int

    def build(self, seed: int = 13, test_split: str | None = None) -> Task:
        """Load and split the task (see the class docstring)."""
        if test_split not in (None, "test"):
            raise ValueError(
                f"Task 'ii_{self.name}': the only test split is 'test' (execute), got {test_split!r}.")
        folder = _suite_folder("instruction_induction") / self.name
        induce = self._examples(folder / "train.jsonl")
        order = np.random.default_rng(seed).permutation(len(induce))
        size = min(II_VALIDATION_SIZE, len(induce) // 2)
        annotations = json.loads((folder / "annotations.json").read_text(encoding="utf-8"))["annotations"]
        return Task(
            name=f"ii_{self.name}",
            splits={
                "train": [induce[i] for i in sorted(order[size:])],
                "validation": [induce[i] for i in sorted(order[:size])],
                "test": self._examples(folder / "test.jsonl"),
            },
            verbalizer=None,
            metric=self.metric,
            manual_prompt=max(annotations, key=len),
            max_new_tokens=self.max_new_tokens,
        )

    @staticmethod
    def _examples(path: Path) -> list[Example]:
        return _data.to_examples(_data.read_jsonl(path), "{input}", str(path), outputs_field="output")


# --- MMLU ---------------------------------------------------------------------------------------
MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine",
    "college_physics", "computer_security", "conceptual_physics", "econometrics", "electrical_engineering",
    "elementary_mathematics", "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics", "high_school_mathematics",
    "high_school_microeconomics", "high_school_physics", "high_school_psychology", "high_school_statistics",
    "high_school_us_history", "high_school_world_history", "human_aging", "human_sexuality",
    "international_law", "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition", "philosophy",
    "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy",
    "virology", "world_religions",
)
"""The 57 MMLU subjects (all present in the data; a test checks it)."""

MMLU_INPUT_FORMAT = "question: {question}\nchoices:\nA: {A}\nB: {B}\nC: {C}\nD: {D}"
"""The paper's ``question : Q choices : A : c1 ...`` format, one choice per line."""

MMLU_LONG_SUBJECTS = frozenset(
    {"high_school_world_history", "professional_law", "high_school_european_history",
     "high_school_us_history"}
)
"""Subjects with long passages (three history subjects, professional law): a meta-prompt with 3 of
their longest validation questions needs ``max_meta_prompt_tokens=2560`` SmolLM2 tokens; the other
subjects' fit in 1280."""

MMLU_NUM_DEMOS = 3
"""Demonstrations per MMLU meta-prompt (StablePrompt's QA setting; the smallest validation half has 3)."""


@dataclass(frozen=True)
class MMLUSpec:
    """One MMLU subject from ``$PROMPT_GYM_DATA_DIR/mmlu/``.

    MMLU gives each subject 5 ``dev`` examples (our ``train.jsonl``), 7-145 ``val`` examples and
    the ``test`` set. StablePrompt draws demonstrations and rewards from ``val`` and reports
    ``test``; to keep prompt selection apart from the reward data, ``val`` is split in order:
    ``train`` = the 5 dev examples + the first ``len(val) // 2`` val examples (reward batches) and
    ``validation`` = the rest of val (demonstrations and selection). ``test`` = MMLU test.

    Attributes:
        subject: An entry of :data:`MMLU_SUBJECTS`.
    """

    subject: str

    def build(self, seed: int = 13, test_split: str | None = None) -> Task:
        """Load the subject's splits (``seed`` is unused: the splits are fixed)."""
        del seed
        if test_split not in (None, "test"):
            raise ValueError(
                f"Task 'mmlu_{self.subject}': the only test split is 'test', got {test_split!r}.")
        folder = _suite_folder("mmlu")
        val = self._examples(folder / "validation.jsonl")
        half = len(val) // 2
        readable = self.subject.replace("_", " ")
        return Task(
            name=f"mmlu_{self.subject}",
            splits={"train": self._examples(folder / "train.jsonl") + val[:half], "validation": val[half:],
                    "test": self._examples(folder / "test.jsonl")},
            verbalizer=("A", "B", "C", "D"),
            manual_prompt=f"Answer the multiple-choice question about {readable} with the letter of the "
                          "correct choice: A, B, C or D.",
            label_names=("A", "B", "C", "D"),
        )

    def _examples(self, path: Path) -> list[Example]:
        records = _mmlu_records(str(path)).get(self.subject)
        if not records:
            raise DataError(f"{path}: no rows for subject {self.subject!r}")
        return _data.to_examples(records, MMLU_INPUT_FORMAT, f"{path}#{self.subject}", num_labels=4)


@functools.lru_cache(maxsize=3)
def _mmlu_records(path: str) -> dict[str, list[dict[str, Any]]]:
    """Read an MMLU file once per process; group its rows by subject with the choices as A-D fields."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for number, row in enumerate(_data.read_jsonl(path), start=1):
        choices = row.get("choices")
        if not isinstance(choices, list) or len(choices) != 4:
            raise DataError(f"{path}:{number}: 'choices' must be a list of 4 strings, got {choices!r}")
        lettered = dict(zip("ABCD", choices, strict=True))
        grouped.setdefault(row.get("subject", ""), []).append(dict(row, **lettered))
    return grouped


def _suite_folder(name: str) -> Path:
    root = _data.data_dir()
    if root is None or not (root / name).is_dir():
        raise FileNotFoundError(
            f"The {name} tasks read ${_data.DATA_DIR_ENV}/{name}/ (the project's shared data, see "
            f"docs/tasks.md); ${_data.DATA_DIR_ENV} is {str(root) if root else 'not set'}."
        )
    return root / name


def suite_factories() -> dict[str, TaskFactory]:
    """Return ``{task name: factory}`` for every task of the suite (reads no file)."""
    factories: dict[str, TaskFactory] = {spec.name: spec.build for spec, _ in CLASSIFICATION_ENVS.values()}
    for name in II_TASKS:
        metric, max_new_tokens = II_METRICS.get(name, "exact_match"), II_LONG_ANSWERS.get(name, 8)
        spec = InstructionInductionSpec(name, metric, max_new_tokens)
        factories[f"ii_{name}"] = spec.build
    for subject in MMLU_SUBJECTS:
        factories[f"mmlu_{subject}"] = MMLUSpec(subject).build
    return factories


for _name, _factory in suite_factories().items():
    register_task(_name, _factory)
