# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench install clean reliability

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/extraction-watch demo

test: $(STAMP)
	$(VENV)/bin/ruff check models streams extraction_watch bench tests
	$(VENV)/bin/mypy
	deploy/kafka/with-broker.sh $(PY) -m pytest

# The reliability suite at full size (about 500k events, 5 kills -9, a broker restart, a
# worker taking over, 10k+ fuzzed bad payloads; up to about 15 min) against a throwaway
# broker; figures to bench/results/reliability.json. `make test` runs it short.
reliability: $(STAMP)
	EXW_RELIABILITY_SCALE=full EXW_RELIABILITY_RESULTS=bench/results/reliability.json \
		deploy/kafka/with-broker.sh $(PY) -m pytest -m reliability --durations=12 tests/reliability

lint: $(STAMP)
	$(VENV)/bin/ruff check models streams extraction_watch bench tests
	$(VENV)/bin/mypy

# A local Apache Kafka broker (KRaft, 127.0.0.1, port KAFKA_PORT or 9092) from Maven
# Central; needs Java 17 and Maven. See deploy/kafka/README.md.
# `make kafka-down PURGE=1` also deletes its data.
.PHONY: kafka-up kafka-down
kafka-up:
	$(PYTHON) deploy/kafka/broker.py up

kafka-down:
	$(PYTHON) deploy/kafka/broker.py down $(if $(PURGE),--purge)

bench: $(STAMP)
	$(PY) bench/engine_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
