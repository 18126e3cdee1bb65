# Two commands: `make run` (set up, seed demo data, start) and `make test` (set up, run every test).
# Both bootstrap what they need on a fresh Debian machine and are fast when already done.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DATALABS_HOME ?= $(CURDIR)/var
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test bench lint setup system clean

run: setup
	@$(BIN)/datalabs admin seed-demo > $(DATALABS_HOME)/.seed.txt 2>&1 || { cat $(DATALABS_HOME)/.seed.txt; exit 1; }
	@echo ""
	@echo "  Datalabs is starting on http://localhost:$(PORT)/"
	@cat $(DATALABS_HOME)/.seed.txt
	@echo "  (state in $(DATALABS_HOME); stop with Ctrl-C)"
	@echo ""
	@exec $(BIN)/datalabs serve --host $(HOST) --port $(PORT)

test: setup system
	DATALABS_REQUIRE_PG=1 DATALABS_REQUIRE_BROWSER=1 DATALABS_REQUIRE_CONFORMANCE=1 DATALABS_REQUIRE_SLURM=1 $(BIN)/pytest -n 2 --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

bench: setup system
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

setup: $(STAMP) $(BIN)/datalabs-become
	@mkdir -p $(DATALABS_HOME)

# The last step into every sandbox (src/datalabs/sandbox/become.c): statically linked, it costs a wide
# scatter's tools the least. Without a C compiler the platform uses a shell and setpriv instead.
$(BIN)/datalabs-become: src/datalabs/sandbox/become.c $(STAMP)
	-gcc -O2 -static -Wall -o $@.tmp $< || gcc -O2 -Wall -o $@.tmp $<
	-mv $@.tmp $@

$(STAMP): pyproject.toml
	scripts/install-system-packages.sh base
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[test]'
	@# Labs import from this environment read-only: compile it once so they never recompile at start.
	@# (An optimisation only: some packages ship Python 2 example files that cannot compile; skip those.)
	-$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1
	touch $(STAMP)

system:
	@scripts/install-system-packages.sh test

clean:
	rm -rf $(VENV) .pytest_cache
