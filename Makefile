# Every target creates .venv first (if missing) and installs the project into it.
# Exact versions come from constraints.txt (torch 2.14.1 / torchvision 0.29.1 are on this machine's disk).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# test processes: one per core (pytest-xdist); JOBS=0 runs the suite in this process.
# --dist loadscope keeps a module's tests in one process, so a module's fixture (a
# full-size caffemodel, torchvision's weights) is built once, not once per process.
JOBS ?= auto

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# MALLOC_*: glibc keeps freed memory for reuse instead of unmapping every block above
# 32 MiB, which the kernel must fault in and zero again each step (README "Benchmarks").
demo: $(STAMP)
	MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 \
	  $(BIN)/alexnet train --preset demo --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/alexnet bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache build dist src/*.egg-info
