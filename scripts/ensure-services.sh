#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback: start them when installed but stopped,
# install them with apt when missing and running as root, otherwise say what to install.
set -euo pipefail

say() { printf '[services] %s\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

apt_install() {
  if ! is_root; then
    say "missing: $* -- install them (Debian/Ubuntu: sudo apt-get install -y $*) and rerun"
    exit 1
  fi
  say "installing $* with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

ensure_postgres() {
  if pg_ready; then return; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql postgresql-contrib
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    is_root || { say "no PostgreSQL cluster; create one with pg_createcluster"; exit 1; }
    pg_createcluster "$version" main >/dev/null
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Local development trusts loopback connections (as the machine is set up for CI).
  if is_root && [ -f "$hba" ] && ! grep -q "pocdojo: trust loopback" "$hba"; then
    sed -i '1i # pocdojo: trust loopback\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_ready && return; sleep 0.5; done
  say "PostgreSQL did not become ready on 127.0.0.1:5432"; exit 1
}

ensure_redis() {
  if redis_ready; then return; fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 40); do redis_ready && return; sleep 0.25; done
  say "Redis did not become ready on 127.0.0.1:6379"; exit 1
}

ensure_postgres
ensure_redis
say "PostgreSQL and Redis are up on 127.0.0.1"
