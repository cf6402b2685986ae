# hkai-qa: `make run` serves the chat at http://127.0.0.1:8000, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch that pip finds on this machine; elsewhere override it, e.g.
# `make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"`, or TORCH_SPEC= to skip.
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
CORPUS ?= corpus
INDEX ?= index
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run build test lint typecheck pytest eval eval-unseen bench screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH_SPEC)),$(BIN)/python -m pip install $(TORCH_SPEC))
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

build: install
	$(BIN)/hkai-qa build --corpus $(CORPUS) --index $(INDEX)

$(INDEX)/CURRENT:
	$(MAKE) build

run: install $(INDEX)/CURRENT
	$(BIN)/hkai-qa serve --corpus $(CORPUS) --index $(INDEX) --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff format --check hkai_qa tests benchmarks
	$(BIN)/ruff check hkai_qa tests benchmarks

typecheck: install
	$(BIN)/mypy

pytest: install
	@test -x /usr/bin/chromium || echo "note: the browser tests need Debian's chromium (apt-get install chromium); .ci/run installs it"
	$(BIN)/python -m pytest

test: lint typecheck pytest

eval: install $(INDEX)/CURRENT
	$(BIN)/hkai-qa eval --index $(INDEX)

# The same eval on documents no weight or threshold was tuned on (benchmarks/unseen-corpus/README.md).
UNSEEN := benchmarks/unseen-corpus
eval-unseen: install
	$(BIN)/hkai-qa build --corpus $(UNSEEN)/corpus --index $(UNSEEN)/index
	$(BIN)/hkai-qa eval --questions $(UNSEEN)/questions.jsonl --index $(UNSEEN)/index

# Benchmarks measure, tests check: timings live here, never in `make test`. Each script writes its own JSON
# under benchmarks/results/. serve.py drives load with wrk when it is installed (Debian's package; installed
# here when apt-get can), else with a Python client.
bench: install
	$(BIN)/python benchmarks/build.py --corpus $(CORPUS)
	@command -v wrk >/dev/null || (command -v apt-get >/dev/null && { apt-get install -y -q wrk || \
		{ apt-get update -q && apt-get install -y -q wrk; }; }) || echo "note: no wrk; serve.py uses its Python load generator"
	$(BIN)/python benchmarks/serve.py --corpus $(CORPUS) --index $(INDEX)
	$(BIN)/python benchmarks/stages.py --index $(INDEX)
	$(BIN)/python benchmarks/scale.py

screenshots: install
	HKAI_QA_SCREENSHOTS=docs $(BIN)/python -m pytest tests/test_web.py -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
