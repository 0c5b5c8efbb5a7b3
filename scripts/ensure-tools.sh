#!/usr/bin/env bash
# Command-line tools a benchmark or test needs, from Debian: `ensure-tools.sh wrk:wrk
# pdftoppm:poppler-utils`. Installs the missing ones with apt when running as root,
# otherwise says what to install and fails.
set -euo pipefail
missing=()
for pair in "$@"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "[tools] missing: ${missing[*]} -- install them (sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "[tools] installing ${missing[*]} with apt" >&2
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
