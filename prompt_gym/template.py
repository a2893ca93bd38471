"""The target template: how the target LLM reads a prompt and one input.

Tasks carry a template (:attr:`prompt_gym.tasks.Task.template`, with ``{prompt}`` and ``{input}``
fields) and scorers fill it; both import the default from here, so neither depends on the other.
"""

DEFAULT_TEMPLATE = "{prompt}\nInput: {input}\nOutput:"
"""How the target reads a prompt and one input; the verbalizer word is the next token."""
