# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean llm

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# `make run LLM=local`: every agent and expert on a small local model (SmolLM2-135M, built once per machine).
run: $(STAMP)
	$(BIN)/agentbus up $(if $(LLM),--llm $(LLM))

test: lint
	$(BIN)/python -m pytest -q

# Style and types of the product packages (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	$(BIN)/mypy

# A real OpenAI-compatible model server (llama-cpp-python on SmolLM2-135M), built once per machine
# into ~/.cache/agentbus/llm (about 15 minutes on 2 cores); a second run is quick.
llm: $(STAMP)
	$(BIN)/python -m cli.local_llm build

# The peers (eventsourcing, AutoGen, LangGraph, DBOS) live in a venv of their own, built once from
# bench/peers/requirements.txt, so they never change agentbus's dependency versions.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): bench/peers/requirements.txt bench/peers/install.sh | $(STAMP)
	sh bench/peers/install.sh $(BENCH_VENV) $(BIN)/python

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .agentbus
