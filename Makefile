# hallgate: `make run` serves with embedded Redis and billing simulator; `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint protos bench bench-audit redis postgres clean fuzz

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's redis-server (and redis-sentinel) when missing.
redis:
	@command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null || { \
	  echo "installing Debian's redis-server"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server redis-sentinel; }

# Debian's PostgreSQL server binaries (the audit archive's tests start their own server from them).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  echo "installing Debian's postgresql"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

run: $(STAMP) redis
	$(BIN)/hallgate serve --dev

test: $(STAMP) redis postgres lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

bench: $(STAMP) redis
	$(BIN)/python -m bench.run

# The audit trail's indexed queries at 100,000 and 500,000 events (docs/audit.md, Indexes), then the trail at
# scale across Redis and the PostgreSQL archive at 1 M and 5 M events (docs/performance.md; about 10 minutes).
bench-audit: $(STAMP) redis
	$(BIN)/python -m bench.audit_index
	@$(MAKE) --no-print-directory postgres
	$(BIN)/python -m bench.audit_scale

# Not part of `make test`: every public RPC fuzzed from every channel (10,000 cases each; FUZZ_CASES=200
# for a short run, FUZZ_SECONDS bounds the time), then the delivery verifier's mutation tests, longer.
fuzz: $(STAMP) redis
	$(BIN)/python -m tests.hostile.rpc_fuzz
	VERIFIER_EXAMPLES=$${VERIFIER_EXAMPLES:-5000} $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/hostile/test_verifier_fuzz.py

clean:
	rm -rf $(VENV) .hallgate .pytest_cache .mypy_cache .ruff_cache
