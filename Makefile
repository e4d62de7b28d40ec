# Two commands for a fresh machine: `make run` (main job on the embedded data) and `make test`.
# Both create .venv first (scripts/setup.sh; idempotent, seconds when nothing changed).
SHELL := /bin/bash
PY := .venv/bin/python
export METALEARN_DATA_ROOT ?= $(abspath ../shared/datasets)
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup run test

setup:
	bash scripts/setup.sh

run: setup
	$(PY) run.py --problem imaml --dataset omniglot5w1s --iterations 300

test: setup
	$(PY) -m pytest -q
