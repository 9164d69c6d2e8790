#!/usr/bin/env bash
# The whole test suite: unit, property, vector, conformance (against real memcached servers
# that the tests start themselves), fault-injection and fuzz-corpus replay tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export MEMCACHED_BIN="${MEMCACHED_BIN:-$(scripts/ensure-memcached.sh)}"
cargo test --workspace --locked
