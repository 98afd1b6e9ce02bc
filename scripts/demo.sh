#!/usr/bin/env bash
# Run the simulated community: an embedded broker, two building gateways with every device
# kind, the cloud and the duty-room web page. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh gateway,cloud,demo
exec .venv/bin/python -m sim "$@"
