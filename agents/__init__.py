"""Agents for prompt-gym environments (installed as ``prompt_gym.agents``).

``make_agent(name, env, seed=...)`` builds any registered agent (see :data:`AGENTS`); the
agent modules are imported only then.
"""

from prompt_gym.agents.registry import AGENTS, make_agent

__all__ = ["AGENTS", "make_agent"]
