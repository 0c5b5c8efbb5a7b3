#!/usr/bin/env bash
# Offline validators for cluster/tests, installed into cluster/.tools (git-ignored):
#  - promtool, unpacked from Debian's `prometheus` package (no daemon is installed or started);
#  - checkov in a venv of its own: its pins (packaging<24) conflict with Ray's, so it cannot
#    live in the project's lock. Both come from the ordinary registries (Debian, PyPI).
# Idempotent: does nothing when both are already there.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
tools="$here/.tools"
mkdir -p "$tools"

if [[ ! -x "$tools/promtool" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download prometheus >/dev/null 2>&1 \
     || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; })
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/promtool" "$tools/promtool"
fi

if [[ ! -x "$tools/checkov/bin/checkov" ]]; then
  uv="$here/../.venv/bin/uv"
  command -v "$uv" >/dev/null || uv="uv"
  python="$here/../.venv/bin/python"
  [[ -x "$python" ]] || python="python3"
  "$uv" venv -q --python "$python" "$tools/checkov"
  "$uv" pip install -q --python "$tools/checkov/bin/python" "checkov==3.3.30"
fi
"$tools/promtool" --version | head -1
"$tools/checkov/bin/checkov" --version
