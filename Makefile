# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_HOME

.PHONY: demo test test-fast test-scale ui bench clean screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

# Build the seed scenario's databases fresh, run maintain_database on target goals, print the report.
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python examples/build_demo.py
	$(BIN)/python -m maintenance_pipeline run maintain_database goals

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -m "not scale"

# the inner loop: everything but PostgreSQL, the end-to-end and the safety (processes, kills) tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not postgres and not e2e and not safety and not scale"

# production-shaped runs: the nightly over 22 databases under a real daemon, and the daemon test with the instance
# on PostgreSQL (~6 minutes; CI runs it after make test)
test-scale: $(STAMP)
	$(BIN)/python -m pytest -q -m scale

# The Dagster UI and its daemon (schedules, sensors, alerts), as two processes; Ctrl-C stops both.
# PORT=3001 make ui serves elsewhere; report and alert links follow (UI_BASE_URL).
PORT ?= 3000
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@test -f examples/data/goals.db || $(BIN)/python examples/build_demo.py
	@echo "Dagster UI: http://127.0.0.1:$(PORT)  (webserver + daemon; Ctrl-C stops both)"
	@export UI_BASE_URL=http://127.0.0.1:$(PORT); trap 'trap - INT TERM EXIT; kill 0' INT TERM EXIT; \
	  $(BIN)/dagster-daemon run -w workspace.yaml & \
	  $(BIN)/dagster-webserver -h 127.0.0.1 -p $(PORT) -w workspace.yaml

# The README's pictures of the UI (docs/images/*.png), from the demo on a throwaway DAGSTER_HOME; needs Chromium.
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py --out docs/images

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_diff.py
	$(BIN)/python benchmarks/bench_backup.py
	$(BIN)/python benchmarks/bench_rows_preserved.py
	$(BIN)/python benchmarks/bench_rows_guard.py
	$(BIN)/python benchmarks/bench_sensor_tick.py
	$(BIN)/python benchmarks/bench_scaling.py --engine both
	$(BIN)/python benchmarks/bench_pg_backup.py
	$(BIN)/python benchmarks/bench_pg_fingerprint.py
	$(BIN)/python benchmarks/crash_trials.py --trials-per-mode 50
	$(BIN)/python benchmarks/bench_app_stall.py

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) reports/*/ backups/*/ examples/data/*.db
