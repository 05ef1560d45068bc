# Two commands for everyone: `make demo` runs the course, `make test` checks it.
# Both create .venv on first use and install everything from this repository's own files.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.twdl-installed
# torch pinned for this project's machines (the wheels lie on their disk); on Colab keep the preinstalled torch.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# The data mirror and the batch/offline environment come from the twdl tooling (twdl_tools/repo.py and
# [tool.twdl] in pyproject.toml), not from here.
# The course nets are small: one CPU thread per process is faster than two fighting over two cores.
export OMP_NUM_THREADS ?= 1

.PHONY: install demo test sync references book bench gpu-check clean chromium bubblewrap

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e ".[tools,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/twdl run all --profile smoke --offline --output-dir runs

# Headless Chromium (Debian's package) for the site's page checks; installed when missing and root.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "warning: install Debian's chromium for the site tests (apt-get install chromium)"

# bubblewrap (Debian's package) for the grading sandbox's tests; installed when missing and root.
bubblewrap:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || echo "warning: install Debian's bubblewrap for the grading sandbox and its tests (apt-get install bubblewrap)"

test: $(STAMP) chromium bubblewrap
	$(BIN)/python -m pytest

sync: $(STAMP)
	$(BIN)/twdl sync

references: $(STAMP)
	$(BIN)/twdl execute-references

book: $(STAMP)
	$(BIN)/twdl book

bench: $(STAMP)
	$(BIN)/twdl bench

# The students' real path on one CUDA GPU: all notebooks in the full profile, LoRA vs QLoRA memory and speed in
# bf16 and fp16; writes bench/results/gpu.json and the GPU section of docs/benchmarks.md. (CPU: --dry-run.)
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py

clean:
	rm -rf runs _build .pytest_cache
