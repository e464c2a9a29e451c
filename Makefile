# The two commands: `make run` (pyfaas with examples/ deployed) and `make test` (the whole suite).
# Both create .venv and install from uv.lock; the package is installed as a wheel (not editable)
# so that the tests run against what users install.
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test install install-test install-bench lint bench clean bubblewrap

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv==$(UV_VERSION)

# bubblewrap (bwrap) for the workers' sandbox: installed from Debian's packages when it is
# missing and we are root with apt-get (CI, the dev machines); anywhere else a note, and
# pyfaas runs without the sandbox (`pyfaas doctor` says what that leaves unenforced).
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; } || \
	    echo "note: could not install bubblewrap; workers will run without the sandbox"; \
	  else \
	    echo "note: bwrap not found; workers will run without the sandbox (apt-get install bubblewrap)"; \
	  fi; }

install: $(UV) bubblewrap
	$(UV) sync --frozen --compile-bytecode --no-editable --reinstall-package pyfaas --quiet

install-test: $(UV) bubblewrap
	$(UV) sync --frozen --compile-bytecode --extra test --extra otel --no-editable --reinstall-package pyfaas --quiet
	@# The console's tests drive Debian's Chromium (Playwright cannot download a browser here).
	@command -v chromium >/dev/null 2>&1 || { \
		[ "$$(id -u)" = 0 ] || { echo "the console tests need Debian's chromium: run 'apt-get install chromium' as root" >&2; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The peers that bench/ measures pyfaas against (Ray Serve, functions-framework, numpy).
install-bench: $(UV) bubblewrap
	$(UV) sync --frozen --compile-bytecode --extra test --extra otel --extra bench --no-editable --reinstall-package pyfaas --quiet

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
