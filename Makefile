# The two commands: `make run` (pyfaas with examples/ deployed) and `make test` (the whole suite).
# Both create .venv and install from uv.lock; the package is installed as a wheel (not editable)
# so that the tests run against what users install.
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test install install-test install-bench lint bench clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen --no-editable --reinstall-package pyfaas --quiet

install-test: $(UV)
	$(UV) sync --frozen --extra test --extra otel --no-editable --reinstall-package pyfaas --quiet
	@# The console's tests drive Debian's Chromium (Playwright cannot download a browser here).
	@command -v chromium >/dev/null 2>&1 || { \
		[ "$$(id -u)" = 0 ] || { echo "the console tests need Debian's chromium: run 'apt-get install chromium' as root" >&2; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The peers that bench/ measures pyfaas against (Ray Serve, functions-framework, numpy).
install-bench: $(UV)
	$(UV) sync --frozen --extra test --extra otel --extra bench --no-editable --reinstall-package pyfaas --quiet

run: install
	$(VENV)/bin/pyfaas serve --host $(HOST) --port $(PORT) --deploy-dir examples

lint: install-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

bench: install-bench
	$(VENV)/bin/python bench

clean:
	rm -rf $(VENV) .pyfaas dist build
