#!/usr/bin/env bash
# Runs BENCH.md's workloads W1-W4 with every adapter against a memcached started as BENCH.md
# says, then counts allocations per call. Each workload runs the adapters interleaved REPEAT
# times (default 5) and ends with each adapter's median, min and max. One JSON line per run on
# stdout, tables on stderr. Where a C compiler and libmemcached's headers are found, W1 and W2
# also run libmemcached (bench/libmemcached.c, compiled here) in the same interleaved rounds.
#   scripts/bench.sh                      # everything, default client settings
#   BUSY_POLL_US=30 scripts/bench.sh      # the same with Builder::busy_poll(30 µs)
#   FROM=main scripts/bench.sh W1         # calls from the runtime's block_on thread
#   CONNS=32 scripts/bench.sh W3          # a connection cap of 32 per server
#   scripts/bench.sh W3 tokio,async-std   # some workloads, some adapters
#                                         # (blocking, tokio, tokio-ct, async-std, smol,
#                                         #  libmemcached, all)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/start-memcached.sh
port="${BENCH_PORT:-21411}"
start_memcached "$port" -m 1024 -t 2 -c 1024
cargo build --release --quiet -p memcache-test-support --bins
libmemcached=""
if ${CC:-cc} -O2 -o target/release/libmemcached-bench bench/libmemcached.c -lmemcached 2>/dev/null; then
  libmemcached=",libmemcached"
else
  echo "bench.sh: no libmemcached (libmemcached-dev) to compile bench/libmemcached.c against; skipping it" >&2
fi
workloads="${1:-W1 W2 W3 W4}"
adapters="${2:-blocking,tokio,tokio-ct,async-std}"
conns=()
if [ -n "${CONNS:-}" ]; then conns=(--conns "$CONNS"); fi
for w in $workloads; do
  list="$adapters"
  case "$w" in W1|W2) [ $# -ge 2 ] || list="$adapters$libmemcached" ;; esac
  target/release/mcbench --adapter "$list" --addr "127.0.0.1:$port" --workload "$w" \
    --repeat "${REPEAT:-5}" --busy-poll-us "${BUSY_POLL_US:-0}" --from "${FROM:-task}" "${conns[@]}"
done
if [ $# -eq 0 ]; then
  target/release/allocs --addr "127.0.0.1:$port"
fi
