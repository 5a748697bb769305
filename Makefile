# he_ml developer entry points. Everything installs into a local virtualenv (.venv)
# from the package index; nothing relies on what was installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test install install-test test-python test-native fuzz bench clean

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

## install-test: he_ml plus test, torch (CPU) and Flower extras
install-test: $(BIN)/python
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" cmake ninja
	$(BIN)/pip install --quiet ".[test,torch,flower]"

## test: the whole suite — Python tests, native tests under ASan/UBSan, a short fuzz run
test: install-test test-native fuzz-short test-flower test-python

test-python:
	HE_ML_REQUIRE_NATIVE=1 $(BIN)/pytest $(PYTEST_ARGS)

# Flower's simulation engine (Ray) in its own pytest run: Ray's ResourceWarnings would trip
# filterwarnings=error for the rest of the suite.
test-flower:
	$(BIN)/pytest -m slow tests/integrations/test_flower.py -W "ignore::ResourceWarning"

test-native:
	PATH="$(abspath $(BIN)):$$PATH" bash native/run_native_tests.sh

fuzz-short:
	$(BIN)/python fuzz/fuzz_blobs.py --iterations 2000 --seed 1

## fuzz: the long, repeatable fuzz run (one million inputs per parser)
fuzz: install-test
	$(BIN)/python fuzz/fuzz_blobs.py --iterations 1000000 --seed 1

## bench: every benchmark script, results in benchmarks/results/
bench: install-test
	for s in benchmarks/bench_*.py; do $(BIN)/python $$s || exit 1; done

clean:
	rm -rf $(VENV) build
