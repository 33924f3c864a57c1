# The two set-up commands of the README: `make run` and `make test`. Both install what they need first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test run test eval-ci lint

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

run: setup
	$(BIN)/reportqa serve

test: setup-test
	$(BIN)/pytest -ra

# What CI adds after the tests: retrieval eval on the whole QA set (fails under the bar) and a full eval on a subset.
# It reuses the index and model that the tests built.
eval-ci: export REPORTQA_HOME = .reportqa/test-home
eval-ci:
	$(BIN)/reportqa eval --retrieval-only --out eval/out/retrieval --fail-under
	$(BIN)/reportqa eval --limit 12 --stratified --out eval/out/subset

lint:
	$(BIN)/ruff check .
