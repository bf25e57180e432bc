#!/usr/bin/env bash
# The system programs the test suite drives for real: Debian's chromium (the web UI's
# browser tests) and PostgreSQL (the store tests). Installs only what is missing.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tests need ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' first" >&2
    exit 1
fi
apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
