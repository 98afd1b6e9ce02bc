#!/usr/bin/env bash
# Run the whole test suite against real servers (Mosquitto, InfluxDB, PostgreSQL, a RabbitMQ
# cluster, Chromium), installing what is missing first. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test mosquitto mosquitto-clients influxdb postgresql rabbitmq-server chromium \
  prometheus \
  patroni etcd-server \
  fonts-noto-cjk
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
# Two workers (pytest-xdist; SC_TEST_WORKERS to change): most tests wait on servers, so two
# share two cores well. Tests of the one RabbitMQ cluster stay on one worker (xdist_group).
exec .venv/bin/python -m pytest -n "${SC_TEST_WORKERS:-2}" --dist loadgroup "$@"
