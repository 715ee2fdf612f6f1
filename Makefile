# queue_exp — the two commands: `make lab` (open the course) and `make test` (run everything).
# Every target is idempotent and safe to re-run.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAB_PORT ?= 8888
# JupyterLab opens a browser only where there is a display to open it on.
LAB_BROWSER := $(if $(DISPLAY)$(WAYLAND_DISPLAY),,--no-browser)
# Jupyter refuses to run as root unless told (containers, CI, a root JupyterHub image).
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?=

# `make test-rabbitmq-next`: the RabbitMQ part of the suite on the newest RabbitMQ
# Debian ships, in a debootstrap root cached under .queue_exp/, with transient
# non-exclusive queues denied (the announced default of future RabbitMQ releases).
NEXT_HOME ?= $(CURDIR)/.queue_exp/next
NEXT_ROOT ?= $(CURDIR)/.queue_exp/rabbitmq-next-root
NEXT_TESTS ?= tests/clients/test_rabbitmq.py tests/clients/test_consumers.py \
	tests/api/test_rabbitmq_routing.py tests/course/test_rabbitmq.py tests/course/test_streams.py \
	tests/course/test_compare.py tests/course/test_perf.py tests/course/test_exercises.py \
	tests/course/test_exercises_streams_share_groups.py \
	notebooks/05-*.ipynb notebooks/06-*.ipynb notebooks/07-*.ipynb notebooks/08-*.ipynb \
	notebooks/10-*.ipynb notebooks/11-*.ipynb \
	notebooks/exercises/0[678]-*.ipynb teacher/solutions/0[678]-*.ipynb \
	notebooks/exercises/10-*.ipynb teacher/solutions/10-*.ipynb

.PHONY: help setup system-deps lab test test-rabbitmq-next brokers brokers-down brokers-status cluster cluster-down serve bench html lint notebooks clean

help:
	@echo "make lab            set up, start the brokers if needed, open JupyterLab on notebooks/"
	@echo "make test           set up, then unit + integration + notebook tests on real brokers"
	@echo "make test-rabbitmq-next   (maintainers, root) the RabbitMQ tests on the newest RabbitMQ"
	@echo "make brokers        start the embedded brokers (or find running ones); print addresses"
	@echo "make brokers-down   stop the brokers the launcher started"
	@echo "make cluster        start 3 Kafka + 3 RabbitMQ nodes (notebooks 12, 13); print them"
	@echo "make cluster-down   stop the cluster nodes (and their epmd)"
	@echo "make serve          run the API on http://127.0.0.1:8000"
	@echo "make bench          benchmarks -> bench/results/latest.json (QUICK=1: small sizes)"
	@echo "make html           the executed notebooks as static HTML handouts in build/html"
	@echo "make notebooks      re-execute every notebook in place (after editing one)"
	@echo "make lint           ruff"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -e .
	@touch $@

system-deps:
	@bash scripts/system-deps.sh

setup: system-deps $(STAMP)

brokers: setup
	$(PY) -m queue_exp brokers up

brokers-down: $(STAMP)
	$(PY) -m queue_exp brokers down

brokers-status: $(STAMP)
	$(PY) -m queue_exp brokers status

# Three Kafka and three RabbitMQ nodes on private ports, beside the single brokers
# (notebooks 12 and 13 start them by themselves when they are not running).
cluster: setup
	$(PY) -m queue_exp cluster up

cluster-down: $(STAMP)
	$(PY) -m queue_exp cluster down

lab: brokers
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 \
		--ServerApp.port=$(LAB_PORT) $(LAB_BROWSER) $(LAB_ROOT) $(LAB_ARGS)

# The suite starts any broker that is not already reachable and stops what it started.
test: setup
	$(PY) scripts/run_tests.py $(PYTEST_ARGS)

test-rabbitmq-next: setup
	bash scripts/rabbitmq-next.sh $(NEXT_ROOT)
	QUEUE_EXP_HOME=$(NEXT_HOME) QUEUE_EXP_RABBITMQ_ROOT=$(NEXT_ROOT) \
	QUEUE_EXP_RABBITMQ_EXTRA_CONF='deprecated_features.permit.transient_nonexcl_queues = false' \
		$(PY) -m pytest $(PYTEST_ARGS) $(NEXT_TESTS)

serve: brokers
	$(PY) -m queue_exp serve

bench: brokers
	$(PY) -m bench.run $(if $(QUICK),--quick)

html: $(STAMP)
	$(PY) scripts/handouts.py build/html

lint: $(STAMP)
	$(VENV)/bin/ruff check .

notebooks: brokers
	for nb in notebooks/[0-9]*.ipynb; do \
		$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=120 "$$nb" || exit 1; \
	done

clean: brokers-down cluster-down
	rm -rf .queue_exp
