#!/usr/bin/env bash
# Runs the demo (examples/basic.rs of memcache-blocking) against a memcached of its own,
# installing memcached first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(scripts/ensure-memcached.sh)"
port="${DEMO_PORT:-21211}"
user=()
[ "$(id -u)" -eq 0 ] && user=(-u root)
"$bin" -l 127.0.0.1 -p "$port" -U 0 -m 64 "${user[@]}" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
cargo run --quiet -p memcache-blocking --example basic -- "127.0.0.1:$port"
