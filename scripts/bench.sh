#!/usr/bin/env bash
# Runs BENCH.md's workloads W1-W4 with every adapter against a memcached started as BENCH.md
# says, then counts allocations per call. One JSON line per run on stdout, tables on stderr.
#   scripts/bench.sh            # everything
#   scripts/bench.sh W3 tokio   # one workload, one adapter (blocking|tokio|tokio-ct|async-std|all)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/start-memcached.sh
port="${BENCH_PORT:-21411}"
start_memcached "$port" -m 1024 -t 2 -c 1024
cargo build --release --quiet -p memcache-test-support --bins
workloads="${1:-W1 W2 W3 W4}"
adapter="${2:-all}"
for w in $workloads; do
  target/release/mcbench --adapter "$adapter" --addr "127.0.0.1:$port" --workload "$w"
done
if [ $# -eq 0 ]; then
  target/release/allocs --addr "127.0.0.1:$port"
fi
