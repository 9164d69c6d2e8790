#!/usr/bin/env bash
# Makes sure the servers the tests start are available: memcached (MEMCACHED_BIN or PATH) and
# twemproxy (NUTCRACKER_BIN, PATH or /usr/sbin), installing Debian's packages `memcached` and
# `nutcracker` when missing. Prints memcached's path (and nothing else on stdout); on failure
# says why on stderr and exits non-zero.
set -euo pipefail
fail() {
  echo "could not make memcached and nutcracker available: $*" >&2
  echo "install them yourself (apt-get install memcached nutcracker) or set MEMCACHED_BIN" \
    "and NUTCRACKER_BIN to their paths" >&2
  exit 1
}
if [ -n "${MEMCACHED_BIN:-}" ] && [ ! -x "$MEMCACHED_BIN" ]; then
  fail "MEMCACHED_BIN=$MEMCACHED_BIN is not an executable file"
fi
missing=()
if [ -z "${MEMCACHED_BIN:-}" ] && ! command -v memcached >/dev/null 2>&1; then
  missing+=(memcached)
fi
if ! { [ -n "${NUTCRACKER_BIN:-}" ] && [ -x "$NUTCRACKER_BIN" ]; } \
  && ! PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v nutcracker >/dev/null 2>&1; then
  missing+=(nutcracker)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "${missing[*]} not found: installing with apt-get" >&2
  command -v apt-get >/dev/null 2>&1 || fail "there is no apt-get on this machine"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root, and there is no sudo"
    sudo="sudo"
  fi
  $sudo apt-get update -qq >&2 || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2 \
    || fail "apt-get install ${missing[*]} failed"
  # Debian starts system instances (memcached on 11211, nutcracker on 22121); the tests and
  # the demo start their own on free ports.
fi
if [ -n "${MEMCACHED_BIN:-}" ]; then
  echo "$MEMCACHED_BIN"
else
  command -v memcached || fail "memcached is still not on PATH"
fi
