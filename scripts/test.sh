#!/usr/bin/env bash
# Run the whole test suite against real servers (Mosquitto, InfluxDB, PostgreSQL, a RabbitMQ
# cluster, Chromium), installing what is missing first. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test mosquitto mosquitto-clients influxdb postgresql rabbitmq-server chromium \
  prometheus \
  fonts-noto-cjk
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
