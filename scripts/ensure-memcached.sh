#!/usr/bin/env bash
# Makes sure a memcached binary is available (MEMCACHED_BIN or PATH); installs Debian's
# package when it is missing. Prints the binary's path.
set -euo pipefail
if [ -n "${MEMCACHED_BIN:-}" ] && [ -x "$MEMCACHED_BIN" ]; then
  echo "$MEMCACHED_BIN"; exit 0
fi
if ! command -v memcached >/dev/null 2>&1; then
  echo "memcached not found: installing it with apt-get" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq memcached >&2
  # Debian starts a system instance on 11211; the tests and the demo start their own.
fi
command -v memcached
