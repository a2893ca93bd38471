"""Environment registration (installed as ``prompt_gym.envs``): ``register`` calls only.

Entry points are strings, so nothing heavy is imported until ``gym.make``.
"""

from gymnasium.envs.registration import register

from prompt_gym.task_suite import CLASSIFICATION_ENVS, II_TASKS, MMLU_LONG_SUBJECTS, MMLU_NUM_DEMOS, MMLU_SUBJECTS

# --- Teaching / testing: no model is loaded -------------------------------------------------
register(
    id="PromptTune-Toy-v0",
    entry_point="prompt_gym.envs.prompt_tune:PromptTuneEnv",
    vector_entry_point="prompt_gym.envs.vector:PromptTuneVectorEnv",
    kwargs={"task": "toy", "max_prompt_tokens": 12, "num_demos": 3, "reward_batch_size": 8},
)

# --- Few-shot classification (SST-2 and the suite, prompt_gym.task_suite): data is read at make time
for _infix, (_spec, _kwargs) in CLASSIFICATION_ENVS.items():
    register(
        id=f"PromptTune-{_infix}-v0",
        entry_point="prompt_gym.envs.prompt_tune:PromptTuneEnv",
        vector_entry_point="prompt_gym.envs.vector:PromptTuneVectorEnv",
        kwargs={"task": _spec.name, **_kwargs},
    )

for _name in II_TASKS:
    register(
        id=f"PromptTune-II-{_name}-v0",
        entry_point="prompt_gym.envs.prompt_tune:PromptTuneEnv",
        vector_entry_point="prompt_gym.envs.vector:PromptTuneVectorEnv",
        kwargs={"task": f"ii_{_name}", "max_meta_prompt_tokens": 768},
    )

for _subject in MMLU_SUBJECTS:
    register(
        id=f"PromptTune-MMLU-{_subject}-v0",
        entry_point="prompt_gym.envs.prompt_tune:PromptTuneEnv",
        vector_entry_point="prompt_gym.envs.vector:PromptTuneVectorEnv",
        kwargs={"task": f"mmlu_{_subject}", "num_demos": MMLU_NUM_DEMOS,
                "max_meta_prompt_tokens": 2560 if _subject in MMLU_LONG_SUBJECTS else 1280},
    )

# --- Test-time editing: one prompt per input (any task via task=...) --------------------------
register(
    id="PromptTune-TTE-SST2-v0",
    entry_point="prompt_gym.envs.tte:TTEEnv",
    vector_entry_point="prompt_gym.envs.tte:TTEVectorEnv",
    kwargs={"task": "sst2"},
)
