# gpchannel: the quick start is `make demo` and `make test` (see README.md).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped

.PHONY: all demo campaign-demo test lint typecheck unit bench clean

all: test

$(STAMP): pyproject.toml scripts/bootstrap.sh
	./scripts/bootstrap.sh

demo: $(STAMP)
	./scripts/demo.sh

campaign-demo: $(STAMP)
	./scripts/campaign-demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	./scripts/test.sh

test: lint typecheck unit

bench: $(STAMP)
	./scripts/pcscd.sh start || echo "bench: pcscd could not be started; the PC/SC figures will be skipped"
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
