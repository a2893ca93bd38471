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
