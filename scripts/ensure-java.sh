#!/usr/bin/env bash
# Make sure Spark finds Java 17+; install OpenJDK 17 with apt-get when absent and we may.
set -euo pipefail
python=${1:-.venv/bin/python}
check() { "$python" -c 'from deepframes._java import main; raise SystemExit(main())'; }
check >/dev/null && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing OpenJDK 17 with apt-get (Spark needs Java 17+)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  check >/dev/null && exit 0
fi
echo "$(check) Install it (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless) or set JAVA_HOME, then run make again." >&2
exit 1
