#!/usr/bin/env bash
# Makes sure the servers the tests start are available: memcached (MEMCACHED_BIN or PATH) and
# twemproxy (NUTCRACKER_BIN, PATH or /usr/sbin), installing Debian's packages `memcached` and
# `nutcracker` when missing. Prints memcached's path (and nothing else on stdout).
set -euo pipefail
missing=()
if ! { [ -n "${MEMCACHED_BIN:-}" ] && [ -x "$MEMCACHED_BIN" ]; } && ! command -v memcached >/dev/null 2>&1; then
  missing+=(memcached)
fi
if ! { [ -n "${NUTCRACKER_BIN:-}" ] && [ -x "$NUTCRACKER_BIN" ]; } \
  && ! PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v nutcracker >/dev/null 2>&1; then
  missing+=(nutcracker)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "${missing[*]} not found: installing with apt-get" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
  # Debian starts system instances (memcached on 11211, nutcracker on 22121); the tests and
  # the demo start their own on free ports.
fi
if [ -n "${MEMCACHED_BIN:-}" ] && [ -x "$MEMCACHED_BIN" ]; then
  echo "$MEMCACHED_BIN"
else
  command -v memcached
fi
