# he_ml developer entry points. Everything installs into a local virtualenv (.venv)
# from the package index; nothing relies on what was installed by hand, and no target needs
# an activated virtualenv (they call .venv/bin/... directly).
#
#   make demo            environment report + end-to-end encrypted inference
#   make test            everything CI runs (see below)
#   make test-versions   the fast suite on each Python in PY_VERSIONS (pyenv interpreters)
#   make docs            API reference site (mkdocs build --strict) into site/
#   make bench           every benchmark, results saved to benchmarks/results/
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?= -m "not slow"
# Extra interpreters for the fast suite besides the main .venv (which runs $(PYTHON); CI makes that
# 3.11, see .ci/run); each gets its own .venv-<version>.
PY_VERSIONS ?= 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)

.PHONY: demo test install install-test test-python test-native fuzz fuzz-short bench clean \
        test-flower test-distributed docs install-docs build-docs test-versions

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

## install: build the C++ core and install he_ml with its runtime dependencies
install: $(BIN)/python
	$(BIN)/pip install --quiet .

## demo: the main job — environment report and end-to-end encrypted inference
demo: install
	$(BIN)/he-ml info
	$(BIN)/he-ml demo

## install-test: he_ml plus test, torch (CPU), Flower, Ray, pandas and docs extras
install-test: $(BIN)/python
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" cmake ninja
	$(BIN)/pip install --quiet ".[test,torch,flower,ray,pandas,docs]"

## test: the whole suite — native tests under ASan/UBSan, short fuzz runs, Flower (simulation and
## real processes), a real two-node Ray cluster, the docs build, the fast Python suite on the
## main interpreter and on the other versions in PY_VERSIONS.
test: install-test test-native fuzz-short test-flower test-distributed build-docs test-python test-versions

test-python:
	HE_ML_REQUIRE_NATIVE=1 $(BIN)/pytest $(PYTEST_ARGS)

# Flower's simulation engine (Ray) in its own pytest run: Ray's ResourceWarnings would trip
# filterwarnings=error for the rest of the suite.
test-flower:
	$(BIN)/pytest -m slow tests/integrations/test_flower.py -W "ignore::ResourceWarning"

## test-distributed: real processes — a two-node Ray cluster (ray start x 2) and Flower's
## flower-superlink + 2 flower-supernode + flwr run; every process is stopped afterwards
test-distributed:
	$(BIN)/pytest -m slow tests/integrations/test_ray.py tests/integrations/test_flower_deploy.py \
		-W "ignore::ResourceWarning"

test-native:
	PATH="$(abspath $(BIN)):$$PATH" bash native/run_native_tests.sh

# Short fuzz runs for CI. One line per fuzzer; add new fuzz commands (e.g. the structure-aware
# fuzzer) as further lines here, with a fixed seed and an iteration count that keeps it < 2 min.
fuzz-short:
	$(BIN)/python fuzz/fuzz_blobs.py --iterations 2000 --seed 1
	$(BIN)/python fuzz/fuzz_structured.py --iterations 300 --seed 1

## fuzz: the long, repeatable fuzz run (one million inputs per parser; the structured run resumes)
fuzz: install-test
	$(BIN)/python fuzz/fuzz_blobs.py --iterations 1000000 --seed 1
	for i in $$(seq $$(nproc)); do $(BIN)/python fuzz/long_run.py --target 1000000 & done; wait
	$(BIN)/python fuzz/long_run.py --summary

## test-versions: the fast suite on every Python in PY_VERSIONS, each in its own .venv-<version>
## (fails with a clear message if pyenv has no such interpreter)
test-versions: $(addprefix test-py,$(PY_VERSIONS))

test-py%:
	@interp=$$(ls -d $(PYENV_ROOT)/versions/$*.*/bin/python$* 2>/dev/null | sort -V | tail -n 1); \
	if [ -z "$$interp" ]; then \
	  echo "make test-py$*: no Python $* interpreter under $(PYENV_ROOT)/versions; install it with" \
	       "'pyenv install $*' or drop it from PY_VERSIONS (make test PY_VERSIONS=...)." >&2; \
	  exit 1; \
	fi; \
	echo "== fast suite on $$interp"; \
	set -e; \
	[ -x .venv-$*/bin/pip ] || $$interp -m venv --clear .venv-$*; \
	.venv-$*/bin/pip install --quiet --upgrade pip; \
	.venv-$*/bin/pip install --quiet ".[test,pandas]"; \
	HE_ML_REQUIRE_NATIVE=1 .venv-$*/bin/pytest $(PYTEST_ARGS) -p no:cacheprovider

## docs: the API reference (MkDocs Material + mkdocstrings), built strictly into site/
install-docs: $(BIN)/python
	$(BIN)/pip install --quiet ".[docs]"

docs: install-docs build-docs

build-docs:
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## bench: every benchmark script, results saved in benchmarks/results/
bench: install-test
	for s in benchmarks/bench_*.py; do \
	  if $(BIN)/python $$s --help | grep -q -- --save; then $(BIN)/python $$s --save || exit 1; \
	  else $(BIN)/python $$s || exit 1; fi; \
	done

clean:
	rm -rf $(VENV) $(addprefix .venv-,$(PY_VERSIONS)) build site
