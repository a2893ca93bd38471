"""Agents for prompt-gym environments (installed as ``prompt_gym.agents``)."""
