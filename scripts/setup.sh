#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: Debian packages (only those given
# and missing), then a virtual environment in .venv with the project installed.
# Usage: scripts/setup.sh EXTRAS [DEBIAN-PACKAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."
extras=$1; shift

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
echo "==> installing Python packages (.[$extras])"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]" 2>&1 \
  | grep -v -e "^WARNING: Location" -e "is ignored: it is neither" || true
