# Concurrency Patterns: the two commands a reader needs are `make serve` and `make test`.
# Everything else here is what those two are made of.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# Material for MkDocs prints an end-of-life notice on every build; readers of this
# Makefile have already chosen their engine (docs/about/engine.md).
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true

.DEFAULT_GOAL := help
.PHONY: help venv serve build test lint typecheck pytest test-all properdocs ledger pdf offline bench bench-offline lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# One lock per purpose (requirements/README.md), one stamp per lock in the venv:
# `make serve` and `make build` install the site's lock only. The test lock holds
# every group at the same pins as the smaller locks, so installing it stands for them.
define install_lock
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11.5 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11, 5) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(1)
endef

$(VENV)/.installed-%: requirements/%.lock
	$(call install_lock,$<)
	@touch $@

$(VENV)/.installed-test: requirements/test.lock
	$(call install_lock,$<)
	@touch $@ $(VENV)/.installed-docs $(VENV)/.installed-pdf $(VENV)/.installed-lint

venv: $(VENV)/.installed-test ## .venv with everything the tests need (requirements/test.lock)

# A save rebuilds the pages it changed (tools/dirty.py); FULL=1 rebuilds everything.
serve: $(VENV)/.installed-docs ## serve the site with live reload on http://127.0.0.1:$(PORT)
	SITE_URL=http://127.0.0.1:$(PORT)/ $(BIN)/python -m tools.build --no-strict --serve 127.0.0.1:$(PORT) $(if $(FULL),--full-rebuilds)

build: $(VENV)/.installed-docs ## build the site into site/ (strict: any warning fails)
	$(BIN)/python -m tools.build

lint: $(VENV)/.installed-lint ## ruff on all the code: snippets/, tests/, tools/, benchmarks/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test ## mypy (strict) on snippets/, tests/, tools/, benchmarks/
	$(BIN)/mypy

# pytest-xdist: each pattern's tests stay on one worker, each site module is a
# unit of its own (tests/conftest.py). PYTEST_WORKERS=0 runs everything in one
# process. Four on 2 cores: most pattern tests wait on services and timers, and
# with two workers make test kept the CPU busy 39 % of the time
# (benchmarks/results.md, "The test suite in parallel").
PYTEST_WORKERS ?= 4
PYTEST_PARALLEL = $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadscope)

pytest: $(VENV)/.installed-test
	@mkdir -p .reports
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) --durations=20 --junitxml=.reports/pytest.xml $(PYTEST_ARGS)

test: lint typecheck build pytest ## every check: lint, types, strict build, all tests
	@$(BIN)/python tests/summary.py

test-all: ## the pattern tests on every Python in .ci/versions, side by side; then the "tested on" stamps
	@$(PYTHON) tests/python_matrix.py

properdocs: $(VENV)/.installed-properdocs ## strict build with ProperDocs, the drop-in fork (docs/about/engine.md)
	$(BIN)/properdocs build --strict --site-dir build/properdocs-site

ledger: build ## add the built site's pages and anchors to links/link-ledger.txt
	$(BIN)/python -m tools.links site

pdf: $(VENV)/.installed-pdf ## the whole guide as one PDF: build/concurrency-patterns.pdf
	$(BIN)/python -m tools.pdf.build_pdf

offline: $(VENV)/.installed-docs ## the site as a zip that works from file://
	$(BIN)/python -m tools.offline

bench-offline: $(VENV)/.installed-test ## time make pdf, size the PDF and zip: benchmarks/results.md
	$(BIN)/python -m benchmarks.offline_reading

benchmarks/node_modules/.installed: benchmarks/package-lock.json
	cd benchmarks && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

bench: $(VENV)/.installed-test benchmarks/node_modules/.installed ## Lighthouse and build times against a default Material site: benchmarks/results.md
	$(BIN)/python -m benchmarks.bench $(foreach ref,$(BEFORE),--before $(ref))

# The test lock first (every group but properdocs); each smaller lock is resolved
# within its pins, so that the test venv stands for all of them.
UV_COMPILE = .venv-lock/bin/uv pip compile --quiet --universal --python-version 3.11.5 --generate-hashes
lock: ## re-resolve requirements/*.lock from pyproject.toml's groups (needs network to PyPI)
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet uv==0.13.9
	$(UV_COMPILE) --group docs --group pdf --group snippets --group test --group site-test --group lint -o requirements/test.lock
	$(UV_COMPILE) -c requirements/test.lock --group docs -o requirements/docs.lock
	$(UV_COMPILE) -c requirements/test.lock --group docs --group pdf -o requirements/pdf.lock
	$(UV_COMPILE) -c requirements/test.lock --group snippets --group test -o requirements/snippets.lock
	$(UV_COMPILE) -c requirements/test.lock --group lint -o requirements/lint.lock
	$(UV_COMPILE) -c requirements/docs.lock --group docs --group properdocs -o requirements/properdocs.lock

clean: ## remove the build output and the virtual environments
	rm -rf site build .bench .venv .venv-* .pytest_cache .mypy_cache .ruff_cache benchmarks/node_modules
