# gpchannel: the quick start is `make demo` and `make test` (see README.md).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped

.PHONY: all demo campaign-demo test lint typecheck unit bench fuzz clean

all: test

$(STAMP): pyproject.toml scripts/bootstrap.sh
	./scripts/bootstrap.sh

demo: $(STAMP)
	./scripts/demo.sh

campaign-demo: $(STAMP)
	./scripts/campaign-demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench fuzz
	$(VENV)/bin/ruff format --check src tests bench fuzz
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py tests/test_module_size.py

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	./scripts/test.sh

test: lint typecheck unit

bench: $(STAMP)
	./scripts/pcscd.sh start || echo "bench: pcscd could not be started; the PC/SC figures will be skipped"
	$(PY) -m bench

# The mutation fuzzer over every input taken from outside (fuzz/__init__.py): seeded, time-bounded, reproducible.
# Findings are printed and written to fuzz-findings/ (replay one: $(PY) -m fuzz --replay FILE).
FUZZ_SEED ?= 1
FUZZ_SECONDS ?= 600
FUZZ_INPUTS ?= 200000
fuzz: $(STAMP)
	$(PY) -m fuzz --seed $(FUZZ_SEED) --seconds $(FUZZ_SECONDS) --inputs $(FUZZ_INPUTS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
