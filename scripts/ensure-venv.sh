#!/usr/bin/env bash
# Create the project's virtual environment (.venv) with Python 3.11+, installing venv support
# from the system's packages when it is missing and we are allowed to.
set -euo pipefail
venv=${1:-.venv}
[ -x "$venv/bin/python" ] && exit 0

python=""
for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$candidate; break
  fi
done
if [ -z "$python" ]; then
  echo "deepframes needs Python 3.11 or newer: install it (Debian/Ubuntu: sudo apt-get install python3.11 python3.11-venv) and run make again." >&2
  exit 1
fi

if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Installing python$version-venv with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$version-venv" >/dev/null
    "$python" -m venv "$venv"
  else
    echo "Python's venv module is missing: run 'sudo apt-get install python$version-venv' and run make again." >&2
    exit 1
  fi
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
