# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install lrkit with the pinned versions in
# constraints.txt; a second run installs nothing (the stamp file is newer than its inputs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-deps bench-lr clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt setuptools
	$(BIN)/python -m pip install --quiet --no-build-isolation -c constraints.txt -e ".[test]"
	touch $(STAMP)

# The main job on the default task: a range test (plot and JSON), one training run at the lr the
# range test suggested (--lr-from its JSON; the task's default lr, with the reason, when it
# trusted none) with a warmup-cosine schedule and its signals logged, then the doctor's verdict.
demo: $(STAMP)
	rm -rf runs/demo && mkdir -p runs/demo  # afresh: a --logdir holds one run
	$(BIN)/lrkit find --task digits-mlp --png runs/demo/find.png --json runs/demo/find.json
	$(BIN)/lrkit train --task digits-mlp --lr-from runs/demo/find.json --schedule "warmup(5%) >> cosine(to=0.01)" --out runs/demo --logdir runs/demo/signals
	$(BIN)/lrkit doctor runs/demo/signals

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/driver_overhead.py

# The LR-selection benchmark compares lrkit with other packages: the `bench` extra, installed
# only here (make test needs none of them but lightning, which its own extra brings).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-build-isolation -c constraints.txt -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench-deps: $(BENCH_STAMP)

bench-lr: $(BENCH_STAMP)
	$(BIN)/python benchmarks/lr_selection.py --jobs 2

clean:
	rm -rf $(VENV) runs build src/*.egg-info .pytest_cache .hypothesis
