#!/usr/bin/env bash
# Runs the demo (examples/basic.rs of memcache-blocking) against a memcached of its own,
# installing memcached first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/start-memcached.sh
port="${DEMO_PORT:-21211}"
start_memcached "$port" -m 64
cargo run --quiet -p memcache-blocking --example basic -- "127.0.0.1:$port"
