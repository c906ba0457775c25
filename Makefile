# Smart-home streaming ML pipeline. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
JARS_STAMP := .cache/kafka-jars/.resolved
SPARK_KAFKA_STAMP := .cache/spark-kafka-jars/.resolved

.DEFAULT_GOAL := help
.PHONY: help install browser prometheus wrk screenshots jars kafka-up kafka-down kafka-status spark-kafka-jars spark-up spark-down spark-status test test-fast lint format bench demo mlflow clean bench-scale chaos iptables partitions

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .  # the smarthome package, editable: tests and scripts import it
	touch $(STAMP)

install: $(STAMP) jars ## create .venv, install the pinned packages, smarthome (editable) and the Kafka jars

browser: ## install Debian's chromium for the UI browser test (Playwright never downloads one)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "note: the UI browser test needs Chromium: sudo apt-get install chromium"; fi

prometheus: ## install Debian's prometheus for the metrics test and `make demo PROMETHEUS=1`
	@if command -v prometheus >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus; \
	else echo "note: the Prometheus test needs it: sudo apt-get install prometheus"; fi

wrk: ## install Debian's wrk, the HTTP load generator of the API benchmark
	@if command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; \
	else echo "note: the API benchmark uses wrk when installed: sudo apt-get install wrk"; fi

iptables: ## install Debian's iptables: the partition harness's slow link queues packets with it
	@if command -v iptables >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables; \
	else echo "note: the network-partition tests need it: sudo apt-get install iptables"; fi

$(JARS_STAMP): kafka/pom.xml
	rm -f .cache/kafka-jars/*.jar  # a version bump must not leave two Kafka versions on the classpath
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.cache/kafka-jars -DincludeScope=runtime
	touch $(JARS_STAMP)

jars: $(JARS_STAMP) ## resolve the Kafka broker jars from Maven Central into .cache/

$(SPARK_KAFKA_STAMP): bench/spark-kafka/pom.xml
	rm -f .cache/spark-kafka-jars/*.jar
	mvn -q -B -f bench/spark-kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.cache/spark-kafka-jars -DincludeScope=runtime
	touch $(SPARK_KAFKA_STAMP)

spark-kafka-jars: $(SPARK_KAFKA_STAMP) ## resolve Spark's Kafka connector (bench_stream's Spark query) into .cache/

KAFKA_PARTITIONS ?= $(or $(PARTITIONS),1)
BROKERS ?= 1
kafka-up: install ## start local Kafka (KRaft, no Docker) on localhost:9092 [PARTITIONS=N] [BROKERS=3] [SECURE=1: TLS, SCRAM logins, ACLs]
	$(PY) -m smarthome.devtools.kafka up --partitions $(KAFKA_PARTITIONS) --brokers $(BROKERS) $(if $(SECURE),--secure)

kafka-down: ## stop the local Kafka broker or cluster started by kafka-up
	$(PY) -m smarthome.devtools.kafka down

kafka-status: ## is local Kafka running? (a cluster: its nodes and partition leaders; secured: where the clients' files are)
	$(PY) -m smarthome.devtools.kafka status

spark-up: install ## start a local Spark standalone cluster at spark://127.0.0.1:7077 [SPARK_WORKERS=N, default 2]
	$(PY) -m smarthome.devtools.spark up --workers $(or $(SPARK_WORKERS),2)

spark-down: ## stop the local Spark cluster started by spark-up (no JVM left)
	$(PY) -m smarthome.devtools.spark down

spark-status: ## is the local Spark cluster running, with how many workers?
	$(PY) -m smarthome.devtools.spark status

TEST_WORKERS ?= 4
test: install browser prometheus iptables ## the whole test suite (real Kafka, real local Spark, Chromium, Prometheus; network namespaces as root) [TEST_WORKERS=N]
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder  # longest files first: tests/conftest.py

screenshots: install browser ## refresh the README's UI pictures in docs/ (the browser test, saving into docs/)
	SMARTHOME_SCREENSHOTS_DIR=$(CURDIR)/docs $(PY) -m pytest tests/ui/test_ui_browser.py

test-fast: install ## unit tests only (no Kafka, no Spark, no browser, no network namespaces)
	$(PY) -m pytest -m "not kafka and not spark and not browser and not partitions"

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## ruff format and fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install wrk spark-kafka-jars ## run the benchmarks and print a table
	$(PY) -m bench

bench-scale: install jars ## 100k/300k/1M synthetic records: producer, 2 consumers, one Spark set (about 10 min)
	$(PY) -m bench.bench_scale

# CLUSTER=1: the pipeline on a 3-node Kafka cluster and a Spark master with 2 workers
DEMO_BROKERS = $(if $(CLUSTER),3,$(BROKERS))
DEMO_WORKERS = $(if $(CLUSTER),2,$(or $(SPARK_WORKERS),0))
demo: install ## the whole pipeline live (Ctrl-C stops) [BROKERS=3] [SPARK_WORKERS=N] [CLUSTER=1] [PROMETHEUS=1] [MLFLOW=1] [SECURE=1: TLS, SCRAM logins, ACLs]
	$(PY) -m smarthome.devtools.demo --brokers $(DEMO_BROKERS) --spark-workers $(DEMO_WORKERS) $(if $(PROMETHEUS),--prometheus) $(if $(MLFLOW),--mlflow-uri $(MLFLOW_URI)) $(if $(SECURE),--secure) $(DEMO_ARGS)

# MLflow: the store `make demo MLFLOW=1` logs into and `make mlflow` shows. The UI is the full
# mlflow package of the version requirements.txt pins mlflow-skinny to (same store schema), in
# a venv of its own: its pins (pyarrow<26) cannot live beside ours
MLFLOW_URI ?= sqlite:///$(CURDIR)/mlflow.db
MLFLOW_PORT ?= 5050
MLFLOW_UI_VENV := .cache/mlflow-ui
MLFLOW_VERSION = $(shell sed -n 's/^mlflow-skinny==\([^ ]*\).*/\1/p' requirements.txt)
$(MLFLOW_UI_VENV)/.installed: requirements.txt
	test -d $(MLFLOW_UI_VENV) || $(PYTHON) -m venv $(MLFLOW_UI_VENV)
	$(MLFLOW_UI_VENV)/bin/pip install -q "mlflow==$(MLFLOW_VERSION)"
	touch $@

mlflow: $(MLFLOW_UI_VENV)/.installed ## MLflow's UI on 127.0.0.1:5050 over the runs of `make demo MLFLOW=1` [MLFLOW_PORT=N] [MLFLOW_URI=...]
	MLFLOW_DISABLE_TELEMETRY=true $(MLFLOW_UI_VENV)/bin/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 --backend-store-uri $(MLFLOW_URI) --artifacts-destination $(CURDIR)/mlartifacts

chaos: install jars ## exactly once under faults: kills, pauses, broker kills on a private broker (about 3 min) [BROKERS=3] [SECURE=1: TLS, SCRAM logins, ACLs]
	$(PY) -m smarthome.devtools.chaos --brokers $(BROKERS) $(if $(SECURE),--secure) $(CHAOS_ARGS)

partitions: install jars iptables ## exactly once under network partitions, brokers and clients on hosts of their own (root; about 6 min) [SEED=n]
	$(PY) -m smarthome.devtools.partitions --seed $(or $(SEED),1) $(PARTITIONS_ARGS)

clean: ## stop the local broker and Spark cluster; remove batches, model sets, logs and the broker's data
	-$(PY) -m smarthome.devtools.kafka down 2>/dev/null
	-$(PY) -m smarthome.devtools.spark down 2>/dev/null
	rm -rf batched_data/* batched_data/.tmp spark_models/* spark_models/.tmp logs .run
