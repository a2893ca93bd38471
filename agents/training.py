"""One training run end to end: what ``prompt-gym train`` and the benchmarks execute.

Outputs in the run folder: ``run.json`` (the settings, for ``--resume``), ``log.jsonl`` and
TensorBoard events, ``checkpoints/``, ``curves.png``, ``best_prompts.json`` and ``results.json``
(config, seeds, versions; the learned prompt chosen on validation and its test accuracy next to the
manual and the empty prompt). On a test-time editing env there is no single prompt to choose: the
trained policy writes one prompt per test input (greedy), ``test_time_prompts.json`` keeps them,
and ``results.json`` reports their accuracy as ``learned``.

Run folders are safe (see ``docs/reliability.md``): a new run writes only into a folder that does
not exist or is empty, unless ``overwrite`` (then the previous run's outputs are deleted first and
nothing else is touched); ``run.json`` is written only once the models and the env are loaded, and
a start that fails removes what it wrote, so the corrected command works as is. ``--resume``
continues from the newest checkpoint that verifies, with the evaluation count of that checkpoint.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prompt_gym.agents.appo.config import APPOConfig, ModelConfig
from prompt_gym.checks import check_int, check_type
from prompt_gym.remote.runs import UsageLogCallback, run_target, target_usage

SETTINGS_FILE = "run.json"
TEST_TIME_PROMPTS_FILE = "test_time_prompts.json"
RUN_OUTPUTS = (SETTINGS_FILE, "log.jsonl", "checkpoints", "results.json", "best_prompts.json", "curves.png",
               TEST_TIME_PROMPTS_FILE, "events.out.tfevents.*")
"""What a training run writes into its folder (what ``overwrite`` deletes)."""
EVALUATIONS_KEY = "time/target_evaluations"
RESUME_FLAGS = {
    "env": "env", "agent": "agent", "agent_model": "agent_model", "target_model": "target_model",
    "num_envs": "num_envs", "save_every": "save_every", "seed": "config.seed", "device": "config.device",
    "lr": "config.learning_rate", "batch_size": "config.batch_size", "ppo_epochs": "config.ppo_epochs",
    "kl_coef": "config.kl_coef", "anchor_check_interval": "config.anchor_check_interval",
    "advantage": "config.advantage", "elite_replay": "config.elite_replay", "temperature": "config.temperature",
    "anchor_samples": "config.anchor_samples",
    "anchor_threshold": "config.anchor_threshold", "fixed_reference": "config.fixed_reference",
    "no_rollback": "config.rollback", "dtype": "model_config.dtype", "action_mode": "env_kwargs.action_mode",
    "max_prompt_tokens": "env_kwargs.max_prompt_tokens", "num_demos": "env_kwargs.num_demos",
    "reward_batch_size": "env_kwargs.reward_batch_size", "test_split": "env_kwargs.test_split",
    "task": "env_kwargs.task",
}
"""``prompt-gym train`` flags (argparse ``dest``) and the ``run.json`` setting each one sets."""


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
        import gymnasium as gym

        import prompt_gym  # noqa: F401  (registers the environments)

        if self.agent != "appo":
            raise ValueError(f"Unknown agent {self.agent!r}; available: 'appo'.")
        for name in ("updates", "num_envs", "save_every"):
            check_int(name, getattr(self, name), minimum=1)
        if self.env not in gym.registry:
            raise ValueError(f"Unknown environment {self.env!r}; `prompt-gym envs` lists them.")
        check_type("env_kwargs", self.env_kwargs, dict, "a dict of gym.make arguments")
        task = self.env_kwargs.get("task")
        if isinstance(task, str) and task not in prompt_gym.list_tasks():
            raise ValueError(f"Unknown task {task!r}; known tasks: {', '.join(prompt_gym.list_tasks())}.")
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
    config = APPOConfig.from_preset(
        args.preset, seed=args.seed, device=args.device, learning_rate=args.lr, batch_size=args.batch_size,
        ppo_epochs=args.ppo_epochs, advantage=args.advantage, elite_replay=args.elite_replay,
        temperature=args.temperature, kl_coef=args.kl_coef, anchor_check_interval=args.anchor_check_interval,
        anchor_samples=args.anchor_samples, anchor_threshold=args.anchor_threshold,
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
    inside = [folder for folder in Path(run).resolve().parents if (folder / SETTINGS_FILE).is_file()]
    if not path.is_file() and inside:
        raise FileNotFoundError(f"{run} is inside the run folder {inside[0]}: pass that folder to --resume (it picks "
                                "the newest checkpoint that verifies).")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {run} is not a prompt-gym run folder (nothing to resume).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        settings = TrainSettings.from_dict(data)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a valid run description ({error!r}); start a new run instead.") from error
    settings.out = str(run)
    if updates is not None:
        settings.updates = updates
    return settings


def resume_conflicts(settings: TrainSettings, args: Any, given: set[str]) -> list[str]:
    """The flags given with ``--resume`` whose value differs from the run's saved setting.

    Args:
        settings: The saved settings (:func:`resume_settings`).
        args: ``prompt-gym train``'s parsed arguments.
        given: The ``dest`` of every flag given on the command line.

    Returns:
        One line per conflict: the flag, its value, the saved setting and its value.
    """
    merged = argparse.Namespace(**(vars(args) | {"out": settings.out, "updates": settings.updates}))
    new, old = train_settings_from_args(merged).to_dict(), settings.to_dict()
    conflicts = []
    for dest in sorted(given & RESUME_FLAGS.keys()):
        path = RESUME_FLAGS[dest]
        if _lookup(new, path) != _lookup(old, path):
            conflicts.append(f"--{dest.replace('_', '-')} {getattr(args, dest)} (the run has {path} = "
                             f"{_lookup(old, path)!r})")
    if "out" in given and Path(args.out).resolve() != Path(settings.out).resolve():
        conflicts.append(f"--out {args.out} (the run is in {settings.out})")
    return conflicts


def _lookup(data: dict[str, Any], path: str) -> Any:
    """``data["a"]["b"]`` for ``path="a.b"`` (``None`` where a key is missing: the env's default)."""
    for key in path.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


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


def check_run_folder(out: Path, resume: bool, overwrite: bool = False) -> None:
    """Refuse to start a run in a folder it may not write into.

    Raises:
        FileExistsError: ``out`` holds a run (and neither ``resume`` nor ``overwrite``), or holds
            other files (and not ``overwrite``).
        NotADirectoryError: ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a run folder; pick another --out.")
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    if overwrite:
        return
    if (out / SETTINGS_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; continue it with --resume {out}, replace it with "
                              "--overwrite, or pick another --out.")
    raise FileExistsError(f"{out} is not empty and holds no prompt-gym run; pick a new or empty --out folder, or "
                          "pass --overwrite to write the run there (files with the names a run writes, such as "
                          "results.json and log.jsonl, are then replaced).")


def _remove_outputs(out: Path) -> None:
    """Delete what a training run writes into ``out`` (:data:`RUN_OUTPUTS`), nothing else."""
    for pattern in RUN_OUTPUTS:
        for path in out.glob(pattern):
            _delete(path)


def _delete(path: Path) -> None:
    """Delete a file, a link or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


@contextmanager
def _clean_failed_start(out: Path, resume: bool) -> Iterator[None]:
    """If the start of a new run fails, leave ``out`` as it was when it was new or empty.

    A new folder is removed, an empty one emptied again. A folder started with ``overwrite`` keeps
    the earlier run when the failure came before its outputs were replaced; after that, the same
    command (with ``--overwrite``) starts again.
    """
    created = not out.exists()
    empty = created or not any(out.iterdir())
    try:
        yield
    except BaseException:
        if not resume and created:
            shutil.rmtree(out, ignore_errors=True)
        elif not resume and empty and out.is_dir():
            for path in out.iterdir():
                _delete(path)
        raise


def _restore_evaluations(agent: Any, records: list[dict[str, Any]], step: int) -> None:
    """Set the target's evaluation count to the one logged at the checkpoint's update."""
    from prompt_gym.logging import logged_value

    count = logged_value(records, step, EVALUATIONS_KEY)
    if count is None:
        warnings.warn(f"The log has no {EVALUATIONS_KEY} for update {step}: target evaluations are counted "
                      "from 0 again.", stacklevel=3)
        return
    agent.env.attr("scorer").num_evaluations = int(count)


def run_training(
    settings: TrainSettings, resume: bool = False, progress_bar: bool = True, callbacks: list[Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train, checkpoint, select a prompt on validation, report it on test; returns ``results.json``'s content.

    ``callbacks`` run next to the checkpoint callback (for example a wall-time budget).
    ``overwrite`` lets a new run replace the outputs of an earlier one in ``out``.

    Raises:
        FileExistsError: ``out`` is not empty and neither ``resume`` nor ``overwrite`` is set.
        prompt_gym.checkpoint.CheckpointError: ``resume`` and no checkpoint verifies.
        ValueError: ``resume`` with fewer ``updates`` than the checkpoint has done.
    """
    from prompt_gym import checkpoint as ckpt
    from prompt_gym.agents.appo.agent import APPOAgent
    from prompt_gym.callbacks import CheckpointCallback
    from prompt_gym.evaluation import evaluate_prompts
    from prompt_gym.logging import Logger, read_log, truncate_log
    from prompt_gym.models import load_causal_lm
    from prompt_gym.plotting import plot_curves
    from prompt_gym.tte import TTESampler

    out = Path(settings.out)
    check_run_folder(out, resume, overwrite)
    checkpoint_path = ckpt.latest_checkpoint(out / "checkpoints") if resume else None
    step = int(ckpt.STEP_NAME.fullmatch(checkpoint_path.name).group(1)) if checkpoint_path is not None else 0
    if step > settings.updates:
        raise ValueError(f"{out} has done {step} updates already; give --updates {step} or more.")
    start = time.perf_counter()
    with _clean_failed_start(out, resume):
        model, tokenizer = load_causal_lm(settings.agent_model, dtype=settings.model_config.dtype,
                                          device=settings.config.device)
        env = _make_env(settings, model, tokenizer)
        if overwrite and not resume:
            _remove_outputs(out)
        out.mkdir(parents=True, exist_ok=True)
        records = truncate_log(out / "log.jsonl", step) if checkpoint_path is not None else []
        logger = Logger(out)
        agent = APPOAgent(env, settings.config, settings.model_config, model=model, tokenizer=tokenizer,
                          logger=logger)
        if checkpoint_path is not None:
            agent.load_checkpoint(checkpoint_path)
            _restore_evaluations(agent, records, step)
        ckpt.save_json(out / SETTINGS_FILE, settings.to_dict())  # last: the start succeeded
    saver = CheckpointCallback(out / "checkpoints", settings.save_every)
    usage_log = UsageLogCallback(agent.env.attr("scorer"))
    agent.learn(total_updates=settings.updates, callback=[saver, usage_log, *(callbacks or [])],
                progress_bar=progress_bar)
    logger.close()
    task, scorer, sampler = agent.env.attr("task"), agent.env.attr("scorer"), agent.env.attr("sampler")
    test_time = isinstance(sampler, TTESampler)
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
        "policy_accuracy": policy_accuracy_trend(read_log(out / "log.jsonl")),
        "test": {name: test[name] for name in ("learned", "manual", "empty")},
    }
    ckpt.save_json(out / "best_prompts.json", agent.pool.to_list())
    ckpt.save_json(out / "results.json", results)
    plot_curves(read_log(out / "log.jsonl"), out / "curves.png", title=f"APPO on {settings.env}")
    return results


def policy_accuracy_trend(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The policy's own validation accuracy at its first and last measurement (``None`` if never measured)."""
    points = [(r["step"], r["eval/policy_accuracy"]) for r in records if r.get("eval/policy_accuracy") is not None]
    if not points:
        return None
    return {"first_update": points[0][0], "first": points[0][1], "last_update": points[-1][0], "last": points[-1][1]}


def _test_time_learned(agent: Any, sampler: Any, scorer: Any, seed: int, out: Path) -> dict[str, Any]:
    """The policy writes one prompt per test input (greedy); score each on its input, keep them on disk."""
    from prompt_gym import checkpoint as ckpt
    from prompt_gym.tte import evaluate_tte

    def write(meta_prompts: list[str]) -> list[str]:
        return list(agent.predict(tuple(meta_prompts), deterministic=True)[0])

    result = evaluate_tte(sampler, scorer, write, split="test", seed=seed)
    inputs = [example.input for example in sampler.task.split("test")]
    ckpt.save_json(out / TEST_TIME_PROMPTS_FILE, [
        {"input": text, "prompt": prompt, "score": score}
        for text, prompt, score in zip(inputs, result["prompts"], result["scores"], strict=True)])
    return {"prompt": f"one per input ({TEST_TIME_PROMPTS_FILE})", "accuracy": result["accuracy"],
            "num_examples": result["num_examples"]}
