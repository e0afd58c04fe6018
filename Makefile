# The two commands: `make run` (install everything, then the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.offpilot-installed

.PHONY: run setup model sandbox test check lint demo clean

run: setup  ## install everything (venv, deps, default model), then run the demo
	$(BIN)/offpilot demo

setup: $(STAMP) model sandbox

$(STAMP): pyproject.toml scripts/llama-setup.sh scripts/llama-wheel.sh
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "offpilot needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[convert,test,scale]'
	scripts/llama-setup.sh $(BIN)/python \
		|| echo "[setup] llama-cpp-python did not build (it needs a C++ compiler): the CTranslate2 engine generates instead" >&2
	touch $(STAMP)

sandbox:  ## bubblewrap and the HumanEval-X toolchains (node, go, java, g++, rustc): apt-get as root when missing, else a note (docs/eval.md)
	scripts/sandbox-setup.sh

model: $(STAMP)  ## build the default model into the cache (a verified no-op when present)
	$(BIN)/offpilot model install

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

check: $(STAMP)  ## contributors' inner loop, about a minute: format, lint, types, the fast tests (tiny model; no real model, editors, llama.cpp or Ray)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not slow and not real_model and not ray and not editors" tests/unit

test: setup lint e2e backend-setup  ## set up if needed, lint, the editor end-to-end tests, then the whole test suite (real model and llama.cpp backend included)
	OFFPILOT_REQUIRE_REAL_MODEL=1 $(BIN)/pytest

.PHONY: backend-setup
backend-setup: $(STAMP) model  ## the llama.cpp server for the backend tests (built once, cached in ~/.cache/offpilot-e2e) and the GGUF it serves
	PYTHON=$(PYTHON) tests/backend/setup.sh
	$(BIN)/offpilot model gguf >/dev/null

.PHONY: e2e
e2e: setup  ## the editors for real: VS Code (code-server + Chromium) and Neovim; tools cached in ~/.cache/offpilot-e2e
	tests/editors/setup.sh
	rm -f build/e2e/timings.txt
	OFFPILOT_E2E=1 $(BIN)/pytest -p no:cacheprovider -m editors tests/editors

demo: setup
	$(BIN)/offpilot demo

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache
