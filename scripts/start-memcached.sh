# Sourced by the scripts that need a memcached of their own:
#   start_memcached PORT [ARGS...]  starts one on 127.0.0.1:PORT (installing it if missing),
#   waits until it accepts connections, and stops it when the calling script exits.
start_memcached() {
  local port="$1"
  shift
  local bin
  bin="$(scripts/ensure-memcached.sh)"
  local user=()
  [ "$(id -u)" -eq 0 ] && user=(-u root)
  "$bin" -l 127.0.0.1 -p "$port" -U 0 "$@" "${user[@]}" &
  MEMCACHED_PID=$!
  trap 'kill $MEMCACHED_PID 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "memcached did not start on port $port" >&2
  return 1
}
