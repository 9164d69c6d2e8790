#!/usr/bin/env bash
# Checks that the published crates build, with every feature, on the Rust version they declare
# (`rust-version` in Cargo.toml), with the dependency versions of Cargo.lock. Installs that
# toolchain with rustup when it is missing. Uses its own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
msrv="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "$msrv" ] || { echo "msrv.sh: no rust-version in Cargo.toml" >&2; exit 1; }
rustup run "$msrv" rustc --version >/dev/null 2>&1 \
  || rustup toolchain install "$msrv" --profile minimal \
  || { echo "msrv.sh: could not install Rust $msrv with rustup" >&2; exit 1; }
cargo "+$msrv" check --locked --all-features --target-dir target/msrv \
  -p memcache-proto -p memcache-blocking -p memcache-tokio -p memcache-async-std
echo "the published crates build on Rust $msrv"
