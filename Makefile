# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when the pinned requirements change.
# The project itself is installed editable, so the `crisis-console` command exists too.
$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.runtime

## run: create .venv, install, serve on http://127.0.0.1:5000 (embedded Redis unless REDIS_URL is set)
run: $(VENV)/.runtime
	$(BIN)/python -m crisis_console serve --host $${HOST:-127.0.0.1} --port $${PORT:-5000}

## test: install test tools (and Chromium, nginx, redis-sentinel when missing, as root), lint, run the suite
test: $(VENV)/.dev chromium servers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

# $(call apt_install,PACKAGE,TEST THAT IT IS THERE,WHAT FOR,WHAT HAPPENS WITHOUT IT)
define apt_install
	@if $(2); then exit 0; fi; \
	if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "Installing $(1) $(3) (apt-get)…"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	else \
		echo "warning: $(1) is missing and cannot be installed here; $(4)" >&2; \
	fi
endef

.PHONY: chromium
chromium:
	$(call apt_install,chromium,[ -x "$(CHROMIUM)" ],for the browser tests,browser tests will be skipped)

# The real parts the deployment tests run the console behind and on: nginx in front of two
# web processes, and Redis Sentinel (the redis-server binary itself is already here).
.PHONY: servers
servers:
	$(call apt_install,nginx redis-sentinel,command -v nginx >/dev/null && command -v redis-sentinel >/dev/null,for the deployment tests,the nginx and Sentinel tests will be skipped)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.dev wrk
	$(BIN)/python -m bench.auth
	$(BIN)/python -m bench.push
	$(BIN)/python -m bench.voice
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.detector
	$(BIN)/python -m bench.public

# The HTTP load generator of the benchmarks (a C program: the client must not be the bottleneck).
.PHONY: wrk
wrk:
	$(call apt_install,wrk,command -v wrk >/dev/null,for the benchmarks,HTTP rate rows will be skipped)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
