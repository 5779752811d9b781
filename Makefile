# Two entry points do all setup on a fresh machine:
#   make run   - the operator and sidecar on an embedded local stack
#   make test  - lint, type-check and the whole test suite against real components
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV_BIN := .venv/bin
BIN_DIR = $(shell bash hack/build-binaries.sh)

.PHONY: test run lint binaries env clean system-packages

env: $(UV)
	$(UV) sync --locked --extra devstack

$(UV):
	python3 -m pip install --quiet --user "uv==$(UV_VERSION)"

binaries:
	bash hack/build-binaries.sh

system-packages:  # swaks and Postfix's tools (SMTP intake tests); skipped with a warning without root
	bash hack/install-system-packages.sh

lint: env
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy

test: env binaries system-packages lint
	EMAILSETTINGS_BIN_DIR="$(BIN_DIR)" $(VENV_BIN)/pytest $(PYTEST_ARGS)

run: env binaries system-packages
	EMAILSETTINGS_BIN_DIR="$(BIN_DIR)" $(VENV_BIN)/emailsettings-devstack up

clean:
	rm -rf .venv .mypy_cache .ruff_cache
