"""Remote targets: the frozen target LLM behind an OpenAI-compatible server (vLLM, hosted APIs).

Write the target as ``openai:<base_url>[,<base_url>...]#<model>[?option=value&...]`` wherever a
target is accepted (``gym.make(env_id, target=...)``, ``--target`` of ``prompt-gym train``,
``eval`` and ``compare``); see :mod:`prompt_gym.remote.spec` for the options and
``docs/remote-target.md`` for serving recipes. Modules:

* :mod:`~prompt_gym.remote.spec`: the spelling (standard library only);
* :mod:`~prompt_gym.remote.client`: requests over replicas, retries, budgets (uses ``openai``);
* :mod:`~prompt_gym.remote.modes`: how class probabilities are read from a reply;
* :mod:`~prompt_gym.remote.cache`, :mod:`~prompt_gym.remote.usage`: the on-disk cache and counters;
* :mod:`~prompt_gym.remote.session`, :mod:`~prompt_gym.remote.scorer`: the scorers environments use;
* :mod:`~prompt_gym.remote.runs`: usage file, log records and results of a training run;
* :mod:`~prompt_gym.remote.launch`: start and stop a local vLLM or ``transformers serve`` (tests, benchmarks);
* :mod:`~prompt_gym.remote.fake_server`: a tiny in-process server for tests of error paths.

Importing this package imports neither ``openai`` nor torch.
"""

from prompt_gym.remote.spec import RemoteTarget, is_remote_spec, parse_remote_target

__all__ = ["RemoteTarget", "is_remote_spec", "parse_remote_target"]
