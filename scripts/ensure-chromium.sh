#!/usr/bin/env bash
# The page test drives Debian's Chromium through Playwright: install it with apt-get when absent and we may.
set -euo pipefail
browser=/usr/bin/chromium
[ -x "$browser" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing Chromium with apt-get (the web page test runs it headless)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$browser" ] && exit 0
fi
echo "$browser is missing, so the web page test will fail: run 'sudo apt-get install chromium' (Debian) and run make again." >&2
exit 0
