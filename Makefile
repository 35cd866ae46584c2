# Two commands on a fresh machine: `make demo` runs the main job end to end on the embedded defaults,
# `make test` runs the test suite. Both create .venv when missing and stop every process they start.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test ui migrate clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/enhancement-pipeline demo $(if $(UI),--ui,)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

ui: $(STAMP)
	$(BIN)/enhancement-pipeline ui

migrate: $(STAMP)
	$(BIN)/enhancement-pipeline migrate

clean:
	rm -rf .local
