# The two commands of the README, each doing its own set-up on a fresh machine.
#   make book   build the whole Jupyter Book on the `default` profile
#   make test   unit tests, every notebook on `smoke`, a strict `smoke` book build

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test lock lab clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	@start=$$(date +%s); \
	AUTOTASK_PROFILE=$${AUTOTASK_PROFILE:-default} $(BIN)/jupyter-book build book/ \
	&& echo "Built in $$(( $$(date +%s) - start )) s on the $${AUTOTASK_PROFILE:-default} profile." \
	&& echo "The book is at $(CURDIR)/book/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest tests
	AUTOTASK_PROFILE=smoke $(BIN)/python -m pytest --nbmake --nbmake-timeout=900 notebooks/
	AUTOTASK_PROFILE=smoke $(BIN)/jupyter-book build -W -n --keep-going \
		--path-output artifacts/smoke-book book/

# Open the notebooks in JupyterLab.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Re-pin every package after changing requirements.in (needs the registry).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -r requirements.in
	{ echo "# Every package pinned, for pip: make installs from this file."; \
	  echo "# Regenerate with 'make lock' after changing requirements.in."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; \
	} > requirements.lock
	rm -rf .lock-venv
	$(BIN)/python tools/write_environment_yml.py

clean:
	rm -rf book/_build artifacts
