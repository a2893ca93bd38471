"""APPO: PPO with an adaptive anchor (StablePrompt)."""
