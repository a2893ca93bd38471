"""One training run end to end: what ``prompt-gym train`` and the benchmarks execute.

Outputs in the run folder: ``run.json`` (the settings, for ``--resume``), ``log.jsonl`` and
TensorBoard events, ``checkpoints/``, ``curves.png``, ``best_prompts.json`` and ``results.json``
(config, seeds, versions; the learned prompt chosen on validation and its test accuracy next to the
manual and the empty prompt). On a test-time editing env there is no single prompt to choose: the
trained policy writes one prompt per test input (greedy), ``test_time_prompts.json`` keeps them,
and ``results.json`` reports their accuracy as ``learned``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.remote.runs import UsageLogCallback, run_target, target_usage

SETTINGS_FILE = "run.json"
TEST_TIME_PROMPTS_FILE = "test_time_prompts.json"


@dataclass
class TrainSettings:
    """Everything that defines a run.

    Attributes:
        env: Environment id.
        out: Run folder.
        updates: Total APPO updates (a resumed run continues up to this number).
        agent: Agent name (only ``"appo"``).
        agent_model: Agent model spec.
        target_model: Target model spec; ``None`` means the agent model (one shared copy of the
            weights) or, for tasks with their own rule target (the toy task), that rule.
        num_envs: Parallel environments (a SAME_STEP vector env when > 1).
        save_every: Updates between checkpoints.
        env_kwargs: Extra ``gym.make`` arguments (``action_mode``, ``num_demos``...).
        config: APPO settings (its ``seed`` is the run's seed).
        model_config: Model and LoRA settings (``model`` is overwritten by ``agent_model``).
    """

    env: str
    out: str
    updates: int
    agent: str = "appo"
    agent_model: str = "smollm2-135m-instruct"
    target_model: str | None = None
    num_envs: int = 1
    save_every: int = 10
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    config: APPOConfig = field(default_factory=APPOConfig)
    model_config: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.agent != "appo":
            raise ValueError(f"Unknown agent {self.agent!r}; available: 'appo'.")
        if self.updates < 1 or self.num_envs < 1 or self.save_every < 1:
            raise ValueError("updates, num_envs and save_every must be positive.")
        self.model_config.model = self.agent_model

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``run.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["config"] = APPOConfig(**data["config"])
        data["model_config"] = ModelConfig(**data["model_config"])
        return cls(**data)


def train_settings_from_args(args: Any) -> TrainSettings:
    """Build settings from ``prompt-gym train``'s parsed arguments."""
    env_kwargs: dict[str, Any] = {"action_mode": args.action_mode}
    for name in ("task", "max_prompt_tokens", "num_demos", "reward_batch_size", "test_split"):
        if getattr(args, name) is not None:
            env_kwargs[name] = getattr(args, name)
    config = APPOConfig(
        seed=args.seed, device=args.device, learning_rate=args.lr, batch_size=args.batch_size,
        minibatch_size=args.batch_size, ppo_epochs=args.ppo_epochs, kl_coef=args.kl_coef,
        anchor_check_interval=args.anchor_check_interval, anchor_threshold=args.anchor_threshold,
        fixed_reference=args.fixed_reference, rollback=not args.no_rollback,
    )
    return TrainSettings(
        env=args.env, out=args.out, updates=args.updates, agent=args.agent, agent_model=args.agent_model,
        target_model=args.target_model, num_envs=args.num_envs, save_every=args.save_every, env_kwargs=env_kwargs,
        config=config, model_config=ModelConfig(model=args.agent_model, dtype=args.dtype),
    )


def versions() -> dict[str, str]:
    """Versions of python and the libraries that shape results."""
    import gymnasium
    import peft
    import torch
    import transformers

    import prompt_gym

    return {"python": platform.python_version(), "prompt_gym": prompt_gym.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "gymnasium": gymnasium.__version__}


def resume_settings(run: str | Path, updates: int | None = None) -> TrainSettings:
    """Read a run's settings for ``--resume``; ``updates`` may raise the total."""
    path = Path(run) / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {run} is not a prompt-gym run folder (nothing to resume).")
    try:
        settings = TrainSettings.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a valid run description ({error!r}); start a new run instead.") from error
    settings.out = str(run)
    if updates is not None:
        settings.updates = updates
    return settings


def _make_env(settings: TrainSettings, model: Any, tokenizer: Any) -> Any:
    import gymnasium as gym

    import prompt_gym

    kwargs = dict(settings.env_kwargs, tokenizer=tokenizer)
    task_name = settings.env_kwargs.get("task", gym.spec(settings.env).kwargs.get("task", "sst2"))
    if settings.target_model is not None:
        kwargs["target"] = run_target(settings.target_model, settings.out)  # a remote one counts in the run folder
    elif prompt_gym.get_task(task_name).default_scorer is None:
        kwargs["target"] = (model, tokenizer)  # one copy of the weights: the target runs them with adapters off
    if settings.num_envs == 1:
        return gym.make(settings.env, **kwargs)
    # the native vector env: one shared scorer, every finished prompt of a step scored in one call
    return gym.make_vec(settings.env, settings.num_envs, **kwargs)


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop records logged after the checkpoint we resume from (they will be produced again)."""
    if path.is_file():
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip() and json.loads(line)["step"] <= last_step]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def run_training(
    settings: TrainSettings, resume: bool = False, progress_bar: bool = True, callbacks: list[Any] | None = None
) -> dict[str, Any]:
    """Train, checkpoint, select a prompt on validation, report it on test; returns ``results.json``'s content.

    ``callbacks`` run next to the checkpoint callback (for example a wall-time budget).

    Raises:
        FileExistsError: ``out`` already holds a run and ``resume`` is False.
        prompt_gym.checkpoint.CheckpointError: ``resume`` and the checkpoint is missing or corrupt.
    """
    from prompt_gym import checkpoint as ckpt
    from prompt_gym.agents.appo.agent import APPOAgent
    from prompt_gym.callbacks import CheckpointCallback
    from prompt_gym.evaluation import evaluate_prompts
    from prompt_gym.logging import Logger, read_log
    from prompt_gym.models import load_causal_lm
    from prompt_gym.plotting import plot_curves
    from prompt_gym.test_time import TestTimeSampler

    out = Path(settings.out)
    if not resume and (out / SETTINGS_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; continue it with --resume {out} or pick another --out.")
    checkpoint_path = ckpt.latest_checkpoint(out / "checkpoints") if resume else None
    out.mkdir(parents=True, exist_ok=True)
    ckpt.save_json(out / SETTINGS_FILE, settings.to_dict())
    start = time.perf_counter()
    model, tokenizer = load_causal_lm(settings.agent_model, dtype=settings.model_config.dtype,
                                        device=settings.config.device)
    env = _make_env(settings, model, tokenizer)
    if checkpoint_path is not None:
        _truncate_log(out / "log.jsonl", int(checkpoint_path.name.split("-")[1]))
    logger = Logger(out)
    agent = APPOAgent(env, settings.config, settings.model_config, model=model, tokenizer=tokenizer, logger=logger)
    if checkpoint_path is not None:
        agent.load_checkpoint(checkpoint_path)
    saver = CheckpointCallback(out / "checkpoints", settings.save_every)
    usage_log = UsageLogCallback(agent.env.attr("scorer"))
    agent.learn(total_updates=settings.updates, callback=[saver, usage_log, *(callbacks or [])],
                progress_bar=progress_bar)
    logger.close()
    task, scorer, sampler = agent.env.attr("task"), agent.env.attr("scorer"), agent.env.attr("sampler")
    test_time = isinstance(sampler, TestTimeSampler)
    chosen = None if test_time else agent.select_prompt()
    evaluations = agent._target_evaluations()  # training and selection; test scoring is not counted
    prompts = {"manual": task.manual_prompt, "empty": ""} | ({} if test_time else {"learned": chosen["prompt"]})
    tested = evaluate_prompts(scorer, task, list(prompts.values()), split="test", progress=progress_bar)
    test = {name: {"prompt": p, "accuracy": r["accuracy"], "num_examples": r["num_examples"]}
            for (name, p), r in zip(prompts.items(), tested, strict=True)}
    if test_time:
        test["learned"] = _test_time_learned(agent, sampler, scorer, settings.config.seed, out)
    results = {
        "env": settings.env, "agent": settings.agent, "seed": settings.config.seed, "settings": settings.to_dict(),
        "versions": versions(), "num_updates": agent.num_updates, "num_timesteps": agent.num_timesteps,
        "promotions": agent.promotions, "rollbacks": agent.rollbacks,
        "target_evaluations": evaluations, "target_usage": target_usage(scorer),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "selected_on": None if test_time else "validation", "selected": chosen,
        "test": {name: test[name] for name in ("learned", "manual", "empty")},
    }
    ckpt.save_json(out / "best_prompts.json", agent.pool.to_list())
    ckpt.save_json(out / "results.json", results)
    plot_curves(read_log(out / "log.jsonl"), out / "curves.png", title=f"APPO on {settings.env}")
    return results


def _test_time_learned(agent: Any, sampler: Any, scorer: Any, seed: int, out: Path) -> dict[str, Any]:
    """The policy writes one prompt per test input (greedy); score each on its input, keep them on disk."""
    from prompt_gym import checkpoint as ckpt
    from prompt_gym.test_time import evaluate_test_time

    def write(meta_prompts: list[str]) -> list[str]:
        return list(agent.predict(tuple(meta_prompts), deterministic=True)[0])

    result = evaluate_test_time(sampler, scorer, write, split="test", seed=seed)
    inputs = [example.input for example in sampler.task.split("test")]
    ckpt.save_json(out / TEST_TIME_PROMPTS_FILE, [
        {"input": text, "prompt": prompt, "score": score}
        for text, prompt, score in zip(inputs, result["prompts"], result["scores"], strict=True)])
    return {"prompt": f"one per input ({TEST_TIME_PROMPTS_FILE})", "accuracy": result["accuracy"],
            "num_examples": result["num_examples"]}
