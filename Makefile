# Two commands do all the set-up: `make run` and `make test`. Both bootstrap .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CATALOGS := $(wildcard locales/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)

.PHONY: run test lint lock migrate locales extract bench clean
.PHONY: run test lint migrate locales extract bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

locales/%/LC_MESSAGES/messages.mo: locales/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d locales -D messages -l $* >/dev/null

locales: $(COMPILED)

run: $(STAMP) locales
	$(BIN)/ocop-bot run

migrate: $(STAMP)
	$(BIN)/ocop-bot migrate

lint: $(STAMP)
	$(BIN)/ruff check bot handlers models tests migrations bench
	$(BIN)/mypy
	# uv.lock (what deployments install) must match pyproject.toml; this reads no network.
	$(BIN)/uv lock --check --offline --quiet

# Re-resolve uv.lock after changing the dependencies in pyproject.toml (needs PyPI).
lock: $(STAMP)
	$(BIN)/uv lock

test: $(STAMP) locales lint
	$(BIN)/pytest -q

# The fuzz test with many more examples than `make test` runs (tests/test_fuzz.py).
fuzz: $(STAMP) locales
	OCOP_FUZZ_EXAMPLES=3000 $(BIN)/pytest -q tests/test_fuzz.py

# Every benchmark scenario; writes bench/results.md (see bench/README.md).
bench: $(STAMP) locales
	$(BIN)/python -m bench.run

# Refresh the catalogs after changing user-facing strings.
extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ -k ngettext:1,2 -o locales/messages.pot bot handlers models
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
