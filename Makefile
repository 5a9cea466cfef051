# The two commands of the README: `make run` and `make test`. Both install what they need
# into .venv from this project's own files first.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The send path's modules are compiled by mypyc (setup.py; gateway/native.py lists them), which
# reads every module of gateway/ and policy/: editing any of them, or the build, rebuilds.
# (Until then the compiled modules run from source.)
SOURCES := $(shell find gateway policy -name '*.py')

$(STAMP): pyproject.toml setup.py MANIFEST.in build_support/stopgate_build.py $(SOURCES)
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

.PHONY: install run test lint system-deps
install: $(STAMP)

system-deps:
	bash scripts/system-deps

run: $(STAMP)
	$(BIN)/stopgate demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint system-deps
	$(BIN)/pytest
