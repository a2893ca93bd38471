"""The meta-prompt: what the agent reads before it writes a prompt.

APE/StablePrompt style: a task-agnostic request plus k input/output demonstrations of the task.
When the agent's tokenizer has a chat template, the request is the user turn and the assistant
turn is opened (so the agent's first token is the start of its answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

INSTRUCTION_INDUCTION = (
    "I gave a friend an instruction and {count} inputs. The friend read the instruction and wrote an output "
    "for every one of the inputs. Here are the input-output pairs:\n\n{pairs}\n\n"
    "What was the instruction? Answer with the instruction only."
)
"""The default meta-prompt request (fields ``{count}`` and ``{pairs}``)."""

REQUEST_FIELDS = ("count", "pairs")
"""The fields a meta-prompt request may hold: the number of demonstrations (a word) and the demonstrations."""


def check_request(request: object, fields: Sequence[str] = REQUEST_FIELDS, required: Sequence[str] = ("pairs",)) -> str:
    """Check that ``request`` is a meta-prompt template this library can fill, and return it.

    Args:
        request: The template, e.g. :data:`INSTRUCTION_INDUCTION`.
        fields: The ``{field}`` names it may use.
        required: The fields it must use (the demonstrations must be shown somewhere).

    Raises:
        TypeError: ``request`` is not a string.
        ValueError: It lacks a required field or uses another one.
    """
    allowed = ", ".join(f"{{{name}}}" for name in fields)
    if not isinstance(request, str):
        raise TypeError(f"A meta-prompt template must be a string with the fields {allowed}; got {type(request).__name__}.")
    missing = [f"{{{name}}}" for name in required if f"{{{name}}}" not in request]
    if missing:
        raise ValueError(f"The meta-prompt template has no {' or '.join(missing)} field; add it where that text should "
                         f"appear (fields: {allowed}; {{pairs}} is the demonstrations, {{count}} their number).")
    try:
        request.format(**{name: "" for name in fields})
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"The meta-prompt template can only use the fields {allowed} ({error!r}); "
                         "write a literal brace as {{ or }}.") from None
    return request


def format_pairs(demos: Sequence[tuple[str, str]]) -> str:
    """Render demonstrations as ``Input: ...`` / ``Output: ...`` blocks separated by blank lines."""
    return "\n\n".join(f"Input: {source}\nOutput: {target}" for source, target in demos)


def meta_prompt_request(demos: Sequence[tuple[str, str]], request: str = INSTRUCTION_INDUCTION) -> str:
    """Return the request text (before any chat template)."""
    count = _NUMBER_WORDS[len(demos)] if len(demos) < len(_NUMBER_WORDS) else str(len(demos))
    return request.format(count=count, pairs=format_pairs(demos))


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def build_meta_prompt(
    demos: Sequence[tuple[str, str]], tokenizer: Any = None, request: str = INSTRUCTION_INDUCTION
) -> str:
    """Build the full meta-prompt string the agent continues.

    Args:
        demos: ``(input, output)`` demonstrations.
        tokenizer: The agent's tokenizer; its chat template is used when it has one.
        request: The request template (``{count}`` and ``{pairs}`` fields).

    Returns:
        The text to tokenize (with ``add_special_tokens=False`` when a chat template was applied).
    """
    text = meta_prompt_request(demos, request)
    if tokenizer is not None and has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    return f"{text}\nInstruction:"
