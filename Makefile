# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install lrkit with the pinned versions in
# constraints.txt; a second run installs nothing (the stamp file is newer than its inputs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-deps bench-lr postgres-bin clean

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

# The PostgreSQL tests (tests/test_tune_postgres.py) start a throwaway server from PostgreSQL 15's
# initdb/pg_ctl (tests/pg.py finds them); a machine without them gets them from Debian's packages
# when run as root. Elsewhere those tests skip with the reason (with CI=true they fail).
PG_BIN ?= /usr/lib/postgresql/15/bin
postgres-bin:
	@test -x $(PG_BIN)/initdb -o -n "$$LRKIT_PG_BIN" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; \
	  else echo "PostgreSQL 15 is not installed (apt-get install postgresql-15): its tests will skip"; fi; }

test: $(STAMP) postgres-bin
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
