# Sourced by the scripts that need a memcached of their own:
#   start_memcached PORT [ARGS...]  starts one on 127.0.0.1:PORT (installing it if missing),
#   waits until that very process answers on the port, and stops it when the calling script
#   exits.
#
# "Something accepts connections on PORT" is not enough: a memcached left over from an earlier
# run would answer while ours fails to bind, the script would measure the wrong server and its
# exit trap would kill nothing. So the server on the port is asked for its pid (`stats`).

# Prints the pid that the memcached answering on 127.0.0.1:PORT reports; fails if nothing
# answers like a memcached within a second.
memcached_pid_on() (
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf 'stats\r\nquit\r\n' >&3
  while IFS= read -r -t 1 line <&3; do
    line="${line%$'\r'}"
    case "$line" in
      "STAT pid "*) echo "${line#STAT pid }"; exit 0 ;;
      END) break ;;
    esac
  done
  exit 1
)

start_memcached() {
  local port="$1"
  shift
  local bin
  bin="$(scripts/ensure-memcached.sh)" || return 1
  local user=()
  [ "$(id -u)" -eq 0 ] && user=(-u root)
  "$bin" -l 127.0.0.1 -p "$port" -U 0 "$@" "${user[@]}" &
  MEMCACHED_PID=$!
  trap 'kill $MEMCACHED_PID 2>/dev/null || true' EXIT
  local answering
  for _ in $(seq 50); do
    if ! kill -0 "$MEMCACHED_PID" 2>/dev/null; then
      echo "memcached ($bin) exited at start; is port $port already taken?" >&2
      return 1
    fi
    answering="$(memcached_pid_on "$port" 2>/dev/null)" || answering=""
    if [ "$answering" = "$MEMCACHED_PID" ]; then
      return 0
    elif [ -n "$answering" ]; then
      echo "port $port is served by another memcached (pid $answering), not the one just" \
        "started (pid $MEMCACHED_PID): stop it, or pick another port (DEMO_PORT, BENCH_PORT)" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "memcached (pid $MEMCACHED_PID) did not answer on port $port within 5 s" >&2
  return 1
}
