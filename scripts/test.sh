#!/usr/bin/env bash
# The whole test suite: unit, property, vector, conformance (against real memcached servers
# that the tests start themselves), fault-injection and fuzz-corpus replay tests, and the
# READMEs' code (compiled as doctests), with the default features and then with all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
# The script honours a MEMCACHED_BIN already set, and installs memcached and twemproxy if
# missing. Not `export VAR="$(...)"`: `export` would succeed whatever the command did, and
# every test would then fail with its own confusing message instead of this script stopping.
bin="$(scripts/ensure-memcached.sh)" || { echo "test.sh: no memcached, not running the tests" >&2; exit 1; }
export MEMCACHED_BIN="$bin"
cargo test --workspace --locked
# Again with every feature on (TLS over memcached -Z, codecs, smol, tracing...), so that no
# feature-gated path goes untested.
cargo test --workspace --locked --all-features
