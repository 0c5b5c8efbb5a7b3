#!/usr/bin/env bash
# The PostgreSQL server `make bench-search` measures against: a cluster of its own (Debian's
# pg_createcluster, the machine's PostgreSQL version) on 127.0.0.1:${BENCH_PG_PORT:-5433},
# configured like the production database instead of like a package default.
#
# Production is RDS db.r7g.large (16 GiB, cluster/aws/data.py), whose default parameter group
# gives shared_buffers 25 % of the instance's memory (4 GB) and effective_cache_size 75 %.
# The machine's shared server (127.0.0.1:5432, used by the test suite) keeps Debian's 128 MB:
# with it, a cold search on a 100,000-PoC tenant reads most of its heap pages from the OS
# cache (~5 us each instead of a buffer hit), which is not what production does. A separate
# cluster leaves the shared server's configuration and the test suite's database alone.
#
# Idempotent: creates the cluster once, (re)starts it when it is down. Loopback is trusted
# (as on the shared server here), nothing listens beyond 127.0.0.1.
set -euo pipefail

say() { printf '[bench-postgres] %s\n' "$*"; }

port=${BENCH_PG_PORT:-5433}
name=${BENCH_PG_CLUSTER:-pocdojo_bench}
shared_buffers=${BENCH_PG_SHARED_BUFFERS:-4GB}
effective_cache_size=${BENCH_PG_EFFECTIVE_CACHE_SIZE:-12GB}

ready() { pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; }

if ready; then
  say "PostgreSQL answers on 127.0.0.1:$port"
  exit 0
fi
bash "$(dirname "$0")/ensure-services.sh" >/dev/null  # installs PostgreSQL when missing
if [ "$(id -u)" != 0 ]; then
  say "nothing answers on 127.0.0.1:$port and creating a cluster needs root: run this as root,"
  say "or point BENCH_PG_PORT at a PostgreSQL with trust auth on loopback"
  exit 1
fi
version=$(ls /etc/postgresql | sort -V | tail -n1)
conf="/etc/postgresql/$version/$name"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version $name"; then
  say "creating cluster $version/$name on port $port"
  pg_createcluster "$version" "$name" --port "$port" -- \
    --auth-local=trust --auth-host=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi
cat > "$conf/conf.d/pocdojo-bench.conf" <<EOF
# Written by scripts/ensure-bench-postgres.sh: RDS db.r7g.large defaults (16 GiB instance).
listen_addresses = '127.0.0.1'
port = $port
shared_buffers = $shared_buffers
effective_cache_size = $effective_cache_size
maintenance_work_mem = 1GB
max_connections = 200
EOF
say "starting cluster $version/$name (shared_buffers $shared_buffers)"
pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
for _ in $(seq 1 60); do ready && { say "up on 127.0.0.1:$port"; exit 0; }; sleep 0.5; done
say "cluster $version/$name did not become ready on 127.0.0.1:$port"
exit 1
