"""Environment registration (installed as ``prompt_gym.envs``): ``register`` calls only.

Entry points are strings, so nothing heavy is imported until ``gym.make``.
"""

from gymnasium.envs.registration import register

# --- Teaching / testing: no model is loaded -------------------------------------------------
register(
    id="PromptTune-Toy-v0",
    entry_point="prompt_gym.envs.prompt_tune:PromptTuneEnv",
    kwargs={"task": "toy", "max_prompt_tokens": 8, "num_demos": 3, "reward_batch_size": 8},
)

# --- Few-shot classification -----------------------------------------------------------------
register(
    id="PromptTune-SST2-v0",
    entry_point="prompt_gym.envs.prompt_tune:PromptTuneEnv",
    kwargs={"task": "sst2"},
)
