"""Resolve what environments are given (names or ready objects) into a tokenizer and a scorer."""

from __future__ import annotations

from typing import Any

from prompt_gym.calibration import calibrated
from prompt_gym.generation import GenerationScorer
from prompt_gym.models import DEFAULT_MODEL, resolve_model_path, shared_causal_lm
from prompt_gym.remote.scorer import RemoteGenerationScorer, RemoteScorer
from prompt_gym.remote.spec import RemoteTarget, is_remote_spec
from prompt_gym.scoring import LMScorer, Scorer
from prompt_gym.tasks import Task

Target = str | tuple[Any, Any] | RemoteTarget
"""A model spec (alias, ``.gguf``, folder, hub id), a loaded ``(model, tokenizer)`` pair, or a remote
target (``"openai:<base_url>#<model>"`` or a :class:`~prompt_gym.remote.spec.RemoteTarget`)."""


def make_scorer(
    task: Task, target: Target | None = None, scorer: Scorer | None = None, batch_size: int = 32,
    max_new_tokens: int | None = None, calibration: str | None = None,
) -> Scorer:
    """Return the scorer an environment uses.

    Precedence: a ready ``scorer``; else ``target`` (a spec, a ``(model, tokenizer)`` pair or a
    remote target, see :mod:`prompt_gym.remote`); else the task's own default target (the toy
    task's rule); else the default model, loaded once per process and shared.

    ``calibration`` (``"batch"`` or ``"content-free"``) wraps a classification scorer in
    :class:`~prompt_gym.calibration.CalibratedScorer` (a ready scorer calibrated so already is
    used as it is).

    This is the one place that asks whether a task is a generation task: classification tasks get
    an :class:`LMScorer` (or :class:`~prompt_gym.remote.scorer.RemoteScorer`), generation tasks a
    :class:`GenerationScorer` (or :class:`~prompt_gym.remote.scorer.RemoteGenerationScorer`) that
    writes at most ``max_new_tokens`` tokens (default: the task's ``max_new_tokens``). Past this
    point every target answers the same call, ``score_examples``.

    Raises:
        TypeError: A ready scorer lacks ``score_examples`` or ``num_evaluations``.
        ValueError: The scorer's verbalizer differs from the task's, a ready scorer has another
            metric (``"accuracy"`` is a classification scorer's), or ``calibration`` is unknown,
            asked of a generation task, or differs from a ready scorer's.
    """
    if calibration is not None and task.is_generation:
        raise ValueError(f"Task {task.name!r} is a generation task: it has no classes to calibrate; drop "
                         "calibration (or use calibration=None).")
    return calibrated(_scorer(task, target, scorer, batch_size, max_new_tokens), calibration, task)


def _scorer(
    task: Task, target: Target | None, scorer: Scorer | None, batch_size: int, max_new_tokens: int | None
) -> Scorer:
    if scorer is not None:
        if not callable(getattr(scorer, "score_examples", None)) or not hasattr(scorer, "num_evaluations"):
            raise TypeError("scorer must be a prompt-gym scorer (score_examples() and num_evaluations; see "
                            f"prompt_gym.scoring.Scorer), got {type(scorer).__name__}.")
        metric = getattr(scorer, "metric", None)
        if metric != task.metric:
            raise ValueError(f"Task {task.name!r} needs a {'generation' if task.is_generation else 'classification'} "
                             f"scorer with metric {task.metric!r}; got {type(scorer).__name__} (metric {metric!r}).")
        if tuple(scorer.verbalizer) != tuple(task.verbalizer or ()):
            raise ValueError(f"The scorer's verbalizer {scorer.verbalizer} differs from task {task.name!r}'s "
                             f"{task.verbalizer}; build the scorer with the task's verbalizer.")
        return scorer
    if target is None and task.default_scorer is not None:
        return task.default_scorer(task)
    remote = is_remote_spec(target)
    if task.is_generation:
        new_tokens = max_new_tokens or task.max_new_tokens
        if remote:
            return RemoteGenerationScorer(target, task.metric, task.template, max_new_tokens=new_tokens)
        return GenerationScorer(*_loaded(target), task.metric, task.template, max_new_tokens=new_tokens,
                                batch_size=batch_size)
    if remote:
        return RemoteScorer(target, task.verbalizer or (), task.template)
    return LMScorer(*_loaded(target), task.verbalizer or (), task.template, batch_size=batch_size)


def make_tokenizer(task: Task, tokenizer: Any = None, target: Target | None = None) -> Any:
    """Return the env (agent) tokenizer.

    Precedence: a ready tokenizer object; a spec string (loads only the tokenizer); the task's own
    (``task.default_tokenizer``: the toy task's word tokenizer); the target's tokenizer (for a
    remote target: the default model's tokenizer, without loading its weights); the default
    model's tokenizer.
    """
    if tokenizer is not None and not isinstance(tokenizer, str):
        if not all(hasattr(tokenizer, name) for name in ("encode", "decode", "eos_token_id")):
            raise TypeError(f"tokenizer must be a tokenizer object (encode, decode, eos_token_id) or a model spec "
                            f"string, got {tokenizer!r}.")
        return tokenizer
    if isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(resolve_model_path(tokenizer))
    if target is None and task.default_tokenizer is not None:
        return task.default_tokenizer()
    if is_remote_spec(target):
        return make_tokenizer(task, DEFAULT_MODEL)
    return _loaded(target)[1]


def _loaded(target: Target | None) -> tuple[Any, Any]:
    if target is None or isinstance(target, str):
        return shared_causal_lm(target or DEFAULT_MODEL)
    if isinstance(target, tuple) and len(target) == 2:
        return target
    raise TypeError(f"target must be a model spec string or a (model, tokenizer) pair, got {type(target).__name__}.")
