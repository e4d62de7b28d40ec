# Two commands for a fresh machine: `make run` (main job on the embedded data) and `make test`.
# Both create .venv first (scripts/setup.sh; idempotent, seconds when nothing changed).
SHELL := /bin/bash
PY := .venv/bin/python
export METALEARN_DATA_ROOT ?= $(abspath ../shared/datasets)
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup run test bench results

setup:
	bash scripts/setup.sh

# A short CPU budget on purpose: the omniglot5w1s preset's own budget is the paper's 60000
# meta-iterations (Finn et al. 2017), far too long for `make run`; keep --iterations explicit.
# --overwrite: `make run` is a demo that starts afresh each time, in a folder of its own
# (runs/make-run); --overwrite refuses a run there that someone extended with --resume.
run: setup
	$(PY) run.py --problem imaml --dataset omniglot5w1s --iterations 300 --out runs/make-run --overwrite

# The lint (pyproject.toml: 100 columns, no unused imports, pyflakes) and then the tests.
test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# Speed and memory benchmarks (< 15 min on 2 CPU cores): JSON lines in benchmarks/results/,
# markdown tables by `benchmarks/table.py`. The machine's GEMM and convolution peaks; Omniglot
# 5-way and 20-way 1-shot training throughput, ours at its defaults against each anchor at its
# fastest thread setting (1 or every core), with FLOPs counted; the 600-episode 10-step test
# against learn2learn adapting the episodes one by one; peak memory against inner steps.
bench: setup
	mkdir -p benchmarks/results
	rm -f benchmarks/results/speed.jsonl benchmarks/results/memory.jsonl benchmarks/results/evaluation.jsonl benchmarks/results/profile.jsonl
	$(PY) benchmarks/speed.py --settings omniglot5w1s --iters 6 --out benchmarks/results/speed.jsonl
	$(PY) benchmarks/speed.py --settings omniglot20w1s --iters 3 --out benchmarks/results/speed.jsonl
	$(PY) benchmarks/evaluation.py --ways default,l2l --episodes 600 --steps 10 --out benchmarks/results/evaluation.jsonl
	$(PY) benchmarks/memory.py --out benchmarks/results/memory.jsonl
	$(PY) benchmarks/time_breakdown.py --out benchmarks/results/profile.jsonl
	$(PY) benchmarks/table.py benchmarks/results

# Results users can trust (hours on 2 CPU cores; not in CI): trains every run of
# benchmarks/plateau.yaml two at a time, one core each (finished runs are kept, cut-off ones
# resumed), gathers them into docs/results.json, then writes docs/results.md, the README's
# summary and docs/results.png. Rerun it after an interruption: it continues where it stopped.
results: setup
	PYTHONPATH=. $(PY) benchmarks/plateau.py --jobs 2
	PYTHONPATH=. $(PY) benchmarks/results_section.py
