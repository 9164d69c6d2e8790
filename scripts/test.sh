#!/usr/bin/env bash
# The whole test suite: unit, property, vector, conformance (against real memcached servers
# that the tests start themselves), fault-injection and fuzz-corpus replay tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The script honours a MEMCACHED_BIN already set, and installs twemproxy if missing.
MEMCACHED_BIN="$(scripts/ensure-memcached.sh)"
export MEMCACHED_BIN
cargo test --workspace --locked
