#!/usr/bin/env bash
# Runs BENCH.md's workloads W1-W4 with every adapter against a memcached started as BENCH.md
# says, then counts allocations per call. Each workload runs the adapters interleaved REPEAT
# times (default 5) and ends with each adapter's median, min and max. One JSON line per run on
# stdout, tables on stderr.
#   scripts/bench.sh                      # everything, default client settings
#   BUSY_POLL_US=30 scripts/bench.sh      # the same with Builder::busy_poll(30 µs)
#   scripts/bench.sh W3 tokio,async-std   # some workloads, some adapters
#                                         # (blocking, tokio, tokio-ct, async-std, smol, all)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/start-memcached.sh
port="${BENCH_PORT:-21411}"
start_memcached "$port" -m 1024 -t 2 -c 1024
cargo build --release --quiet -p memcache-test-support --bins
workloads="${1:-W1 W2 W3 W4}"
adapters="${2:-blocking,tokio,tokio-ct,async-std}"
for w in $workloads; do
  target/release/mcbench --adapter "$adapters" --addr "127.0.0.1:$port" --workload "$w" \
    --repeat "${REPEAT:-5}" --busy-poll-us "${BUSY_POLL_US:-0}"
done
if [ $# -eq 0 ]; then
  target/release/allocs --addr "127.0.0.1:$port"
fi
