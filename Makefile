# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# compiled builds of the hot modules (models/_native.py): rebuilt when a source changes;
# without a C compiler the package runs as pure Python (slower, same results)
NATIVE := $(VENV)/exw-native/models/_digests.json
NATIVE_SRC := $(wildcard models/*.py models/*.pxd models/*.h) extraction_watch/compile.py

.PHONY: demo test lint bench bench-report install clean reliability quality-sweep

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NATIVE): $(STAMP) $(NATIVE_SRC)
	$(PY) -m extraction_watch.compile

install: $(STAMP) $(NATIVE)

demo: $(STAMP) $(NATIVE)
	$(VENV)/bin/extraction-watch demo

test: $(STAMP) $(NATIVE)
	$(VENV)/bin/ruff check models streams extraction_watch bench tests
	$(VENV)/bin/mypy
	deploy/kafka/with-broker.sh $(PY) -m pytest

# The reliability suite at full size (about 500k events, 5 kills -9, a broker restart, a
# worker taking over, 10k+ fuzzed bad payloads; up to about 15 min) against a throwaway
# broker; figures to bench/results/reliability.json. `make test` runs it short.
reliability: $(STAMP) $(NATIVE)
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

# `make bench`: scripts that print figures (not timed tests) and write bench/results/*.json,
# docs/performance.png and docs/performance.md. The defaults finish in about 31 minutes
# on 2 cores; full sizes (about 40 minutes on quiet cores, up to an hour on a shared machine):
#   make bench BENCH_LONG_EVENTS=20000000 BENCH_PUBLIC_SCALE=1.0 BENCH_LATENCY_SCALE=1.0 BENCH_WORKER_SCALE=1.0
# engine vs decode-only and engine vs bytewax (default scenario, about this many events)
BENCH_EVENTS ?= 1000000
# memory per tracked account and per tracked proxy at these account counts
BENCH_ACCOUNTS ?= 100000,1000000
# RSS over a long stream (full size: 20000000)
BENCH_LONG_EVENTS ?= 5000000
# public-report campaign sizes (full size: 1.0, about 16 million events)
BENCH_PUBLIC_SCALE ?= 0.25
# worker vs bare consumer on the real broker (0.5: about 490 thousand events; a short
# run flatters the worker, whose engine costs more per event the more accounts it holds)
BENCH_WORKER_SCALE ?= 0.5
# event-to-alert latency at BENCH_LATENCY_RATE events/s (1.0: about 1 million events, 200 s)
BENCH_LATENCY_SCALE ?= 0.5
BENCH_LATENCY_RATE ?= 5000
# detection quality over this many random small worlds (about 8 minutes for 240)
BENCH_SWEEP_WORLDS ?= 240
RESULTS := bench/results

$(BENCH_STAMP): $(STAMP) $(NATIVE) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/engine_throughput.py --events $(BENCH_EVENTS) --accounts $(BENCH_ACCOUNTS) --json $(RESULTS)/engine_throughput.json
	$(PY) bench/peer_bytewax.py --events $(BENCH_EVENTS) --json $(RESULTS)/peer_bytewax.json
	$(PY) bench/rss_long_run.py --events $(BENCH_LONG_EVENTS) --quiet --json $(RESULTS)/rss_long_run.json
	$(PY) bench/scale_public_reports.py --scale $(BENCH_PUBLIC_SCALE) --json $(RESULTS)/scale_public_reports.json
	deploy/kafka/with-broker.sh sh -c '$(PY) bench/worker_throughput.py --scale $(BENCH_WORKER_SCALE) --json $(RESULTS)/worker_throughput.json; a=$$?; $(PY) bench/latency.py --scale $(BENCH_LATENCY_SCALE) --rate $(BENCH_LATENCY_RATE) --json $(RESULTS)/latency.json; b=$$?; exit $$((a | b))'
	$(PY) -m extraction_watch.cli sweep --worlds $(BENCH_SWEEP_WORLDS) --json $(RESULTS)/quality_sweep.json
	$(MAKE) --no-print-directory bench-report

# detection quality over BENCH_SWEEP_WORLDS random small worlds (about 3 s each on 2 cores)
quality-sweep: $(STAMP) $(NATIVE)
	$(PY) -m extraction_watch.cli sweep --worlds $(BENCH_SWEEP_WORLDS) --json $(RESULTS)/quality_sweep.json

bench-report: $(BENCH_STAMP)
	$(PY) bench/plot.py --results $(RESULTS) --out docs/performance.png
	$(PY) bench/report.py --results $(RESULTS) --out docs/performance.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
