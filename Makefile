# Smart-home streaming ML pipeline. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
JARS_STAMP := .cache/kafka-jars/.resolved

.DEFAULT_GOAL := help
.PHONY: help install browser wrk jars kafka-up kafka-down kafka-status test test-fast lint format bench demo clean bench-scale

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	touch $(STAMP)

install: $(STAMP) jars ## create .venv and install the Python packages and the Kafka jars

browser: ## install Debian's chromium for the UI browser test (Playwright never downloads one)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "note: the UI browser test needs Chromium: sudo apt-get install chromium"; fi

wrk: ## install Debian's wrk, the HTTP load generator of the API benchmark
	@if command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; \
	else echo "note: the API benchmark uses wrk when installed: sudo apt-get install wrk"; fi

$(JARS_STAMP): kafka/pom.xml
	rm -f .cache/kafka-jars/*.jar  # a version bump must not leave two Kafka versions on the classpath
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.cache/kafka-jars -DincludeScope=runtime
	touch $(JARS_STAMP)

jars: $(JARS_STAMP) ## resolve the Kafka broker jars from Maven Central into .cache/

KAFKA_PARTITIONS ?= $(or $(PARTITIONS),1)
kafka-up: install ## start a local Kafka broker (KRaft, no Docker) on localhost:9092 [PARTITIONS=N]
	$(PY) -m smarthome.kafka_local up --partitions $(KAFKA_PARTITIONS)

kafka-down: ## stop the local Kafka broker started by kafka-up
	$(PY) -m smarthome.kafka_local down

kafka-status: ## is the local Kafka broker running?
	$(PY) -m smarthome.kafka_local status

test: install browser ## the whole test suite (real Kafka broker, real local Spark, Chromium)
	$(PY) -m pytest

test-fast: install ## unit tests only (no Kafka, no Spark)
	$(PY) -m pytest -m "not kafka and not spark and not browser"

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## ruff format and fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install wrk ## run the benchmarks and print a table
	$(PY) -m bench

bench-scale: install jars ## 100k/300k/1M synthetic records: producer, 2 consumers, one Spark set (about 10 min)
	$(PY) -m bench.bench_scale

demo: install ## the whole pipeline live: Kafka, producer, consumer, training, API, UI (Ctrl-C stops)
	$(PY) -m smarthome.demo $(DEMO_ARGS)

clean: ## stop the local broker; remove batches, model sets, logs and the broker's data
	-$(PY) -m smarthome.kafka_local down 2>/dev/null
	rm -rf batched_data/* batched_data/.tmp spark_models/* spark_models/.tmp logs .run
