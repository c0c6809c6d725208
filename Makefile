# The two commands of the README, each doing its own set-up on a fresh machine.
#   make book   build the whole Jupyter Book on the `default` profile
#   make test   unit tests, every notebook on `smoke`, a strict `smoke` book build,
#               then a check of that build in headless Chromium

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# MathJax is served from the built book, not from a CDN, so math renders offline.
# `npm pack` fetches the pinned release from the npm registry, its checksum is
# checked, and its browser files go where book/_config.yml (mathjax_path) looks.
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX_DIR := book/_vendor/mathjax
MATHJAX := $(MATHJAX_DIR)/.fetched-$(MATHJAX_VERSION)

# Debian's Chromium, for the browser check of the built book (tools/check_book.py).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: book test mathjax lock lab clean

# Idle OpenMP threads sleep instead of spinning. On a shared 2-core machine a
# spinning PyTorch thread fights every other busy process for a core: one
# training step then took 1 s instead of 36 ms. Results do not change.
export OMP_WAIT_POLICY ?= PASSIVE

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

$(MATHJAX):
	@command -v npm >/dev/null || { echo "npm is needed once to fetch MathJax" \
		"from the npm registry (Debian: apt-get install npm)" >&2; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT \
	&& (cd "$$tmp" && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null) \
	&& echo "$(MATHJAX_SHA256)  $$tmp/mathjax-$(MATHJAX_VERSION).tgz" | sha256sum -c --quiet \
	&& rm -rf $(MATHJAX_DIR) && mkdir -p $(MATHJAX_DIR) \
	&& tar -xzf "$$tmp/mathjax-$(MATHJAX_VERSION).tgz" -C $(MATHJAX_DIR) \
		--strip-components=2 package/es5 \
	&& tar -xzf "$$tmp/mathjax-$(MATHJAX_VERSION).tgz" -C $(MATHJAX_DIR) \
		--strip-components=1 package/LICENSE \
	&& touch $@ && echo "MathJax $(MATHJAX_VERSION) unpacked into $(MATHJAX_DIR)"

mathjax: $(MATHJAX)

$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		chromium fonts-dejavu-core

book: $(STAMP) $(MATHJAX)
	@start=$$(date +%s); \
	AUTOTASK_PROFILE=$${AUTOTASK_PROFILE:-default} $(BIN)/jupyter-book build --all book/ \
	&& echo "Built in $$(( $$(date +%s) - start )) s on the $${AUTOTASK_PROFILE:-default} profile." \
	&& echo "The book is at $(CURDIR)/book/_build/html/index.html"

test: $(STAMP) $(MATHJAX) $(CHROMIUM)
	$(BIN)/python -m pytest tests
	AUTOTASK_PROFILE=smoke $(BIN)/python -m pytest --nbmake --nbmake-timeout=900 notebooks/
	rm -rf artifacts/smoke-book
	AUTOTASK_PROFILE=smoke $(BIN)/jupyter-book build -W -n --keep-going \
		--path-output artifacts/smoke-book book/
	$(BIN)/python tools/check_book.py artifacts/smoke-book/_build/html \
		--screenshots artifacts/smoke-book/screenshots

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
