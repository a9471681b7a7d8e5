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
.PHONY: help serve build test lint typecheck pytest test-all ledger pdf offline bench bench-offline lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11.5 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11, 5) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	@touch $@

serve: $(VENV)/.installed ## serve the site with live reload on http://127.0.0.1:$(PORT)
	SITE_URL=http://127.0.0.1:$(PORT)/ $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(PORT) --livereload

build: $(VENV)/.installed ## build the site into site/ (strict: any warning fails)
	$(BIN)/python -m tools.build

lint: $(VENV)/.installed ## ruff on all the code: snippets/, tests/, tools/, benchmarks/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed ## mypy (strict) on snippets/, tests/, tools/, benchmarks/
	$(BIN)/mypy

pytest: $(VENV)/.installed
	@mkdir -p .reports
	$(BIN)/python -m pytest --junitxml=.reports/pytest.xml $(PYTEST_ARGS)

test: lint typecheck build pytest ## every check: lint, types, strict build, all tests
	@$(BIN)/python tests/summary.py

test-all: $(VENV)/.installed ## the snippet tests on Python 3.11, 3.12 and 3.13
	@$(BIN)/python tests/python_matrix.py

ledger: build ## add the built site's pages and anchors to links/link-ledger.txt
	$(BIN)/python -m tools.links site

pdf: $(VENV)/.installed ## the whole guide as one PDF: build/concurrency-patterns.pdf
	$(BIN)/python -m tools.pdf.build_pdf

offline: $(VENV)/.installed ## the site as a zip that works from file://
	$(BIN)/python -m tools.offline

bench-offline: $(VENV)/.installed ## time make pdf, size the PDF and zip: benchmarks/results.md
	$(BIN)/python -m benchmarks.offline_reading

benchmarks/node_modules/.installed: benchmarks/package-lock.json
	cd benchmarks && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

bench: $(VENV)/.installed benchmarks/node_modules/.installed ## Lighthouse and build times against a default Material site: benchmarks/results.md
	$(BIN)/python -m benchmarks.bench $(foreach ref,$(BEFORE),--before $(ref))

lock: ## re-resolve requirements.lock from pyproject.toml (needs network to PyPI)
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet uv==0.13.9
	.venv-lock/bin/uv pip compile pyproject.toml --extra docs --extra test --universal \
	  --python-version 3.11.5 --generate-hashes -o requirements.lock

clean: ## remove the build output and the virtual environments
	rm -rf site build .bench .venv .venv-* .pytest_cache .mypy_cache .ruff_cache benchmarks/node_modules
