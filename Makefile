# The commands people type. `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv bytecode demo test bench lint format simulator clean

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.txt
	touch $@

venv: $(BIN)/.installed

# Every Airflow process imports thousands of modules: from source, that is twice the time (where
# PYTHONDONTWRITEBYTECODE is set, Python never caches them itself). The libraries are compiled as they are
# installed, our own code here (only what changed since the last time).
bytecode: venv
	$(BIN)/python -m compileall -q plugins dags callfilter_dev scripts tests bench

demo: bytecode  ## screen batch DEMO-1 end to end on embedded defaults
	$(BIN)/python scripts/demo.py

test: bytecode lint  ## the whole test suite
	$(BIN)/python -m pytest

bench: bytecode  ## the benchmarks, one after another (minutes each; figures in docs/benchmarks.md)
	$(BIN)/python bench/saturation.py
	$(BIN)/python bench/dataplane.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/vendor_requests.py
	$(BIN)/python bench/scheduler.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

simulator: venv  ## a vendor simulator on :8099 (see --help for options)
	$(BIN)/python -m callfilter_dev.simulator --port 8099

clean:
	rm -rf .demo .test-run .bench-run
