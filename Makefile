# Two commands for a fresh machine: `make run` (main job on the embedded data) and `make test`.
# Both create .venv first (scripts/setup.sh; idempotent, seconds when nothing changed).
SHELL := /bin/bash
PY := .venv/bin/python
export METALEARN_DATA_ROOT ?= $(abspath ../shared/datasets)
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup run test bench

setup:
	bash scripts/setup.sh

# A short CPU budget on purpose: the omniglot5w1s preset's own budget is the paper's 60000
# meta-iterations (Finn et al. 2017), far too long for `make run`; keep --iterations explicit.
# --overwrite: `make run` is a demo that starts afresh each time (its folder holds only its own run;
# any other run folder is refused, never reused).
run: setup
	$(PY) run.py --problem imaml --dataset omniglot5w1s --iterations 300 --overwrite

test: setup
	$(PY) -m pytest -q

# Speed and memory benchmarks (< 15 min on 2 CPU cores): JSON lines in benchmarks/results/,
# markdown tables by `benchmarks/table.py`. Omniglot: 2 rounds x 10 timed meta-iterations per
# configuration (FOMAML vs learn2learn: add --methods ...,l2l-fomaml); mini-ImageNet shapes
# (5-10 s per iteration on CPU): a smaller sample, 3 timed iterations.
BENCH_THREADS ?= 2
bench: setup
	mkdir -p benchmarks/results
	rm -f benchmarks/results/speed.jsonl benchmarks/results/memory.jsonl
	$(PY) benchmarks/speed.py --settings omniglot5w1s --iters 10 --rounds 2 --threads $(BENCH_THREADS) --out benchmarks/results/speed.jsonl
	$(PY) benchmarks/speed.py --settings mini5w1s-shapes --methods maml,l2l-maml,imaml,betty-imaml --iters 3 --rounds 1 --warmup 1 --threads $(BENCH_THREADS) --out benchmarks/results/speed.jsonl
	$(PY) benchmarks/memory.py --threads $(BENCH_THREADS) --out benchmarks/results/memory.jsonl
	$(PY) benchmarks/table.py benchmarks/results
