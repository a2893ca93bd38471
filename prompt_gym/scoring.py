"""Target scoring: how well the target LLM does a task when it reads a prompt.

Every target answers one call, ``score_examples(prompts, examples) -> ExampleScores``: prompt
``prompts[i]`` on example ``examples[i]`` gets a score in ``[0, 1]`` (1/0 correctness for
classification, the task metric for generation) and, for classification, a margin (the verbalizer
gap, see :func:`correct_and_gap`). Rewards (:mod:`prompt_gym.rewards`), evaluation
(:mod:`prompt_gym.evaluation`) and test-time editing (:mod:`prompt_gym.tte`) all use that call, so
none of them asks which kind of task it serves.

Classification targets compute it from class log-probabilities: ``score_pairs`` returns shape
``(N, C)`` over the task's verbalizer words, and ``score`` the ``(prompts, inputs, C)`` cross
product. Environments receive a scorer at construction, so any number of them can share one
loaded model.

Words: the *target* is the frozen LLM that reads a prompt; a *scorer* is the object that runs it
and answers ``score_examples``. The scorers: :class:`LMScorer` here (a local causal LM,
classification), :mod:`prompt_gym.generation` (a local causal LM, generation tasks),
:class:`prompt_gym.toy.RuleScorer` (the toy task's keyword rule), :mod:`prompt_gym.remote.scorer`
(an OpenAI-compatible server) and :class:`prompt_gym.budget.BudgetedScorer` (a budget around any
of them). :func:`prompt_gym.targets.make_scorer` builds the one an environment uses.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from prompt_gym.data import Example
from prompt_gym.models import adapters_disabled, padding_id
from prompt_gym.template import DEFAULT_TEMPLATE


@dataclass(frozen=True)
class ExampleScores:
    """Per-example results of one target call.

    Attributes:
        scores: Shape ``(N,)``, in ``[0, 1]``: 1/0 correctness (classification) or the task
            metric's score (generation).
        gaps: Shape ``(N,)``, in ``[-1, 1]``: the verbalizer gap of each example (positive exactly
            when it is right); ``None`` for generation tasks, which have no classes.
    """

    scores: np.ndarray
    gaps: np.ndarray | None


@runtime_checkable
class Scorer(Protocol):
    """What environments, rewards and evaluation need from a target.

    Attributes:
        metric: ``"accuracy"`` for classification targets, else the generation metric (a key of
            :data:`prompt_gym.metrics.METRICS`).
        verbalizer: One word per class (``()`` for generation targets).
        num_evaluations: Number of (prompt, input) pairs scored so far (the budget unit).
    """

    metric: str
    verbalizer: tuple[str, ...]
    num_evaluations: int

    def score_examples(self, prompts: Sequence[str], examples: Sequence[Example]) -> ExampleScores:
        """Score ``prompts[i]`` on ``examples[i]``: per-example scores in ``[0, 1]`` and margins (or ``None``)."""


def _checked(log_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if log_probs.ndim != 3 or log_probs.shape[1] != labels.shape[0]:
        raise ValueError(
            f"Expected log_probs (prompts, examples, classes) matching {labels.shape[0]} labels, got {log_probs.shape}."
        )
    return log_probs, labels


def correct_and_gap(log_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example correctness and probability gap.

    The gap is RLPrompt's: ``p(correct class) - max p(other class)`` with probabilities over the
    verbalizer classes; it lies in ``[-1, 1]`` and is positive exactly when the example is right.

    Args:
        log_probs: Class log-probabilities of shape ``(num_prompts, num_examples, num_classes)``.
        labels: True classes of shape ``(num_examples,)``.

    Returns:
        ``(correct, gap)``, both of shape ``(num_prompts, num_examples)``.
    """
    log_probs, labels = _checked(log_probs, labels)
    probs = np.exp(log_probs)
    rows = np.arange(labels.shape[0])
    p_true = probs[:, rows, labels]
    others = probs.copy()
    others[:, rows, labels] = -np.inf
    gap = p_true - others.max(axis=2)
    correct = log_probs.argmax(axis=2) == labels[None, :]
    return correct, gap


class BaseScorer:
    """A classification target: implements :meth:`score_examples` and :meth:`score` on a subclass's :meth:`score_pairs`."""

    metric = "accuracy"
    verbalizer: tuple[str, ...]
    num_evaluations: int = 0

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""
        raise NotImplementedError

    def score_examples(self, prompts: Sequence[str], examples: Sequence[Example]) -> ExampleScores:
        """Score ``prompts[i]`` on ``examples[i]``: 1/0 correctness and the verbalizer gap, shape ``(N,)`` each."""
        if len(prompts) != len(examples):
            raise ValueError(f"Got {len(prompts)} prompts for {len(examples)} examples; pair them one to one.")
        if not examples:
            return ExampleScores(np.zeros(0), np.zeros(0))
        log_probs = self.score_pairs(prompts, [example.input for example in examples])
        correct, gap = correct_and_gap(log_probs[None], np.array([example.label for example in examples]))
        return ExampleScores(correct[0].astype(np.float64), gap[0])

    def score(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score every prompt on every input; return shape ``(len(prompts), len(inputs), C)``."""
        pairs_prompts = [prompt for prompt in prompts for _ in inputs]
        pairs_inputs = [source for _ in prompts for source in inputs]
        flat = self.score_pairs(pairs_prompts, pairs_inputs)
        return flat.reshape(len(prompts), len(inputs), len(self.verbalizer))


def render(template: str, prompt: str, source: str) -> str:
    """Fill the target template; an empty prompt leaves no leading blank line."""
    return template.format(prompt=prompt.strip(), input=source).lstrip()


def verbalizer_token_ids(tokenizer: Any, verbalizer: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[int]:
    """Return the single token id of each verbalizer word as it follows the template.

    A template that ends in ``"Output:"`` is followed by ``" positive"`` (leading space); one that
    ends in whitespace by ``"positive"``.

    Raises:
        ValueError: A word is not a single token, or two words share a token.
    """
    lead = "" if template[-1:].isspace() else " "
    ids = []
    for word in verbalizer:
        pieces = tokenizer.encode(lead + word, add_special_tokens=False)
        if len(pieces) != 1:
            shown = [tokenizer.decode([p]) for p in pieces]
            raise ValueError(
                f"Verbalizer word {word!r} is {len(pieces)} tokens after the template ({lead + word!r} -> {shown}); "
                "each class word must be one token. Pick a word that is a single token for this tokenizer "
                "(for example a common lower-case word)."
            )
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"Verbalizer words {list(verbalizer)} map to repeated token ids {ids}.")
    return ids


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: Any = "cpu") -> tuple[Any, Any]:
    """Left-pad token rows into ``(input_ids, attention_mask)`` long tensors on ``device``."""
    import torch  # here, not at the top: `import prompt_gym` stays torch-free

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return input_ids.to(device), mask.to(device)


def _chunks(order: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), size):
        yield order[start : start + size]


@functools.cache
def _attend_only_layer() -> type:
    """A key/value cache layer that lends its prefix to one forward pass and keeps nothing of it.

    ``DynamicLayer.update`` stores the prefix joined with the new keys and values, so a pass over
    a chunk's suffixes would hold every layer's full-row keys and values until it ends. The
    scorer's suffix pass is the last one on its cache, so this layer returns the same joined
    tensors for attention and stores nothing: each layer's copy is freed as soon as it has been used.
    """
    import torch  # here, not at the top: `import prompt_gym` stays torch-free
    from transformers.cache_utils import DynamicLayer

    class AttendOnlyLayer(DynamicLayer):
        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)

    return AttendOnlyLayer


def _shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all ``rows`` share, leaving at least one token of each row."""
    limit = min(len(row) for row in rows) - 1
    first = rows[0]
    for position in range(limit):
        if any(row[position] != first[position] for row in rows):
            return position
    return max(limit, 0)


class ScoreCache:
    """A bounded least-recently-used map from ``(prompt, input)`` to class log-probabilities.

    Args:
        max_size: Most entries kept; the least recently used one is dropped beyond it.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be positive, got {max_size}.")
        self.max_size = max_size
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        """Return the stored scores of ``key`` (marking it recently used), or ``None``."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: np.ndarray) -> None:
        """Store ``value`` under ``key``, dropping the least recently used entry when full."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def items(self) -> list[tuple[tuple[str, str], np.ndarray]]:
        """Every ``(key, scores)``, least recently used first: :meth:`put` in this order rebuilds the cache exactly."""
        return list(self._entries.items())

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()


class LMScorer(BaseScorer):
    """Score prompts with a causal LM: next-token log-probs of the verbalizer words.

    How a call runs:

    1. **Score cache.** Pairs already scored (same prompt text, same input text) are answered from
       a bounded LRU cache, and a pair repeated within one call is run once. Such pairs do not
       touch the model and do not count in :attr:`num_evaluations` (the budget unit: pairs the
       model actually scored); they count in :attr:`cache_hits`.
    2. **Rows.** The remaining rows are tokenised at once and left-padded with explicit position
       ids; the LM head is applied at the last position only, and no key/value cache is kept.
    3. **Shared prefixes** (``prefix_cache``, on by default). The rows of one prompt share their
       leading tokens (the prompt and the template up to the input), found on the token ids of
       the full rows, so the tokens are exactly those of the plain path. Prompts are taken in
       blocks of up to ``batch_size``: a block's prefixes run in one forward pass, then its rows'
       suffixes (input and ``Output:``) run in chunks of ``batch_size`` rows sorted by suffix
       length across the block's prompts, each row on its own prompt's prefix key/value cache.
       A prompt with one row (or rows sharing no token) takes the plain path: whole rows in
       chunks of ``batch_size``, sorted by length. So does a whole call whose rows are too long for
       a model's sliding-window layers (Gemma 3: 512 tokens) to see the same window through a
       prefix cache (rows longer than half the window). The suffix pass keeps no key/value
       cache of its own.

    Chunks are sorted by length, so they pad little. In fp32 the result does not depend on the
    padding side, the grouping or the prefix sharing (equal to one-at-a-time scoring to 1e-4,
    tested); in bf16/fp16 logits move with batch composition. At SST-2's sizes (prompts of 10 to
    40 tokens, 16 inputs each) the shared prefixes cut the tokens run by 37 % and the CPU time
    by about a third (measurements in ``benchmarks/RESULTS.md``).

    Args:
        model: A causal LM (``transformers`` ``PreTrainedModel``); if it carries peft adapters they
            are disabled while scoring, so the target always reads the base weights.
        tokenizer: Its tokenizer.
        verbalizer: One word per class; each must be a single token after the template.
        template: Target template with ``{prompt}`` and ``{input}``.
        batch_size: Rows per forward pass.
        prefix_cache: Run each prompt's shared prefix once for all its rows (exact in float32).
        cache_size: Entries of the score cache; 0 turns the cache off (every pair runs the model).

    Attributes:
        num_evaluations: Pairs the model scored (cache hits excluded).
        cache_hits: Pairs answered from the score cache or deduplicated within a call.
        num_forward_tokens: Real (non-padding) tokens run through the model; a shared prefix
            counts once.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        verbalizer: Sequence[str],
        template: str = DEFAULT_TEMPLATE,
        batch_size: int = 32,
        prefix_cache: bool = True,
        cache_size: int = 16384,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if cache_size < 0:
            raise ValueError(f"cache_size must be 0 (off) or positive, got {cache_size}.")
        self.model = model
        self.tokenizer = tokenizer
        self.verbalizer = tuple(verbalizer)
        self.template = template
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.cache = ScoreCache(cache_size) if cache_size else None
        self.verbalizer_ids = verbalizer_token_ids(tokenizer, self.verbalizer, template)
        self.pad_id = padding_id(tokenizer)
        self.num_evaluations = 0
        self.cache_hits = 0
        self.num_forward_tokens = 0

    def score_pairs(self, prompts: Sequence[str], inputs: Sequence[str]) -> np.ndarray:
        """Score ``prompts[i]`` on ``inputs[i]``; return log-probabilities of shape ``(len(prompts), C)``."""
        pairs = list(zip(prompts, inputs, strict=True))
        if self.cache is None:
            return self._run(pairs)
        out = np.empty((len(pairs), len(self.verbalizer)), dtype=np.float32)
        missing: dict[tuple[str, str], list[int]] = {}
        for row, pair in enumerate(pairs):
            cached = self.cache.get(pair)
            if cached is None:
                missing.setdefault(pair, []).append(row)
            else:
                out[row] = cached
        self.cache_hits += len(pairs) - len(missing)
        if missing:
            for (pair, rows), scores in zip(missing.items(), self._run(list(missing)), strict=True):
                out[rows] = scores
                self.cache.put(pair, scores)
        return out

    def _run(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Score every pair with the model."""
        import torch  # here, not at the top: `import prompt_gym` stays torch-free

        texts = [render(self.template, prompt, source) for prompt, source in pairs]
        encoded = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        out = np.empty((len(texts), len(self.verbalizer)), dtype=np.float32)
        device = next(self.model.parameters()).device
        class_ids = torch.tensor(self.verbalizer_ids, device=device)
        groups: dict[str, list[int]] = {}
        for row, (prompt, _) in enumerate(pairs):
            groups.setdefault(prompt, []).append(row)
        shared, alone = [], []
        share = self.prefix_cache and self._prefix_fits_window(max(map(len, encoded), default=0))
        for rows in groups.values():
            length = _shared_prefix_length([encoded[row] for row in rows]) if share and len(rows) > 1 else 0
            if length:
                shared.append((rows, length))
            else:
                alone.extend(rows)
        with torch.inference_mode(), adapters_disabled(self.model):
            for rows, logits in self._plain_chunks(encoded, alone, device):
                out[rows] = torch.log_softmax(logits.float().index_select(1, class_ids), -1).cpu().numpy()
            for rows, logits in self._prefix_chunks(encoded, shared, device):
                out[rows] = torch.log_softmax(logits.float().index_select(1, class_ids), -1).cpu().numpy()
        self.num_evaluations += len(texts)
        return out

    def _prefix_fits_window(self, longest_row: int) -> bool:
        """Whether the prefix path is exact for rows of up to ``longest_row`` tokens on this model.

        Sliding-window attention layers (Gemma 3's) crop a prefix key/value cache to their window,
        so the prefix path is taken only when a padded prefix and a padded suffix together, at
        most twice the longest row, fit in the window; otherwise the call takes the plain path.
        """
        config = self.model.config.get_text_config()
        window = getattr(config, "sliding_window", None)
        has_sliding = "sliding_attention" in (getattr(config, "layer_types", None) or ())
        return not (has_sliding and window) or 2 * longest_row <= window

    def _plain_chunks(
        self, encoded: list[list[int]], rows: list[int], device: Any
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(rows, last-position logits)`` per chunk of whole rows, longest first."""
        lengths = np.array([len(encoded[row]) for row in rows], dtype=np.int64)
        order = np.array(rows, dtype=np.int64)[np.argsort(-lengths, kind="stable")]
        for chunk in _chunks(order, self.batch_size):
            batch = self._left_padded([encoded[i] for i in chunk], device)
            self.num_forward_tokens += int(batch["attention_mask"].sum())
            yield chunk, self.model(**batch, use_cache=False, logits_to_keep=1).logits[:, -1, :]

    def _prefix_chunks(
        self, encoded: list[list[int]], groups: list[tuple[list[int], int]], device: Any
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(rows, last-position logits)`` per chunk, running each prompt's shared prefix once.

        ``groups`` holds each prompt's rows and the length of the (non-empty) token prefix they share.

        Prompts are taken in blocks of up to ``batch_size``, longest prefix first. A block's
        prefixes run in one forward pass; its rows' suffixes then run in chunks of ``batch_size``
        rows sorted by suffix length across the block's prompts (so chunks are full and pad
        little), each row on the key/value cache of its own prompt's prefix.
        """
        import torch  # here, not at the top: `import prompt_gym` stays torch-free
        from transformers import DynamicCache  # likewise (transformers imports torch)
        from transformers.cache_utils import DynamicLayer

        ordered = sorted(groups, key=lambda group: -group[1])
        for start in range(0, len(ordered), self.batch_size):
            block = ordered[start : start + self.batch_size]
            prefix = self._left_padded([encoded[rows[0]][:length] for rows, length in block], device)
            layers = [tuple(kv[:2]) for kv in self.model(**prefix, use_cache=True, logits_to_keep=1).cache]
            self.num_forward_tokens += int(prefix["attention_mask"].sum())
            slot = {row: index for index, (rows, _) in enumerate(block) for row in rows}
            cut = {row: block[index][1] for row, index in slot.items()}
            by_suffix = sorted(slot, key=lambda row: cut[row] - len(encoded[row]))
            for chunk in _chunks(np.array(by_suffix, dtype=np.int64), self.batch_size):
                which = torch.tensor([slot[row] for row in chunk], device=device)
                cache = DynamicCache([(keys[which], values[which]) for keys, values in layers], config=self.model.config)
                for layer in cache.layers:
                    if type(layer) is DynamicLayer:  # sliding-window layers (Gemma 3) keep their own update
                        layer.__class__ = _attend_only_layer()
                suffix = self._left_padded([encoded[row][cut[row] :] for row in chunk], device)
                starts = torch.tensor([cut[row] for row in chunk], device=device)
                mask = torch.cat([prefix["attention_mask"][which], suffix["attention_mask"]], dim=1)
                positions = suffix["position_ids"] + starts[:, None]
                logits = self.model(input_ids=suffix["input_ids"], attention_mask=mask, position_ids=positions,
                                    cache=cache, logits_to_keep=1).logits[:, -1, :]
                self.num_forward_tokens += int(suffix["attention_mask"].sum())
                yield chunk, logits

    def _left_padded(self, rows: list[list[int]], device: Any) -> dict[str, Any]:
        input_ids, mask = left_pad(rows, self.pad_id, device)
        return {"input_ids": input_ids, "attention_mask": mask, "position_ids": (mask.cumsum(1) - 1).clamp(min=0)}
