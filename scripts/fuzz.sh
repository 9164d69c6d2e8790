#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 30) on the stable toolchain.
# Longer runs: scripts/fuzz.sh 3600, or see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "== fuzz $target for ${secs}s"
  cargo fuzz run "$target" -- -max_total_time="$secs" 2>&1 | tail -n 20
  test "${PIPESTATUS[0]}" -eq 0
done
