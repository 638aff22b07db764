#!/usr/bin/env bash
# Sets everything up and runs ferrovsd on the default config of virtual devices
# (deploy/ferrovs.toml: two net_tap ports, no hugepages, no NIC), then shows it
# forwarding: two network namespaces, one on each tap, ping each other through the
# switch, and the switch's counters are printed.
#
#   deploy/demo.sh           run until Ctrl-C (ping keeps going in the background)
#   deploy/demo.sh --once    ping, print counters, stop, clean up
#   deploy/demo.sh --config FILE   use another config (tap names fvs-tap0/1 expected)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

once=0
config=deploy/ferrovs.toml
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1 ;;
    --config) config=$2; shift ;;
    *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

deploy/setup.sh
bin=target/release
sock=$(sed -n 's/^socket *= *"\(.*\)"/\1/p' "$config" | head -1)
sock=${sock:-/run/ferrovs/ferrovsd.sock}
nsa=fvs-demo-a-$$
nsb=fvs-demo-b-$$
pid=
cleanup() {
  set +e
  [ -n "${ping_pid:-}" ] && kill "$ping_pid" 2>/dev/null
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo; echo "== stopping ferrovsd"
    kill -TERM "$pid"; wait "$pid"
  fi
  ip netns delete "$nsa" 2>/dev/null
  ip netns delete "$nsb" 2>/dev/null
}
trap cleanup EXIT INT TERM

echo "== starting ferrovsd --config $config"
"$bin/ferrovsd" --config "$config" &
pid=$!
for _ in $(seq 100); do
  "$bin/ferrovs-ctl" --socket "$sock" show >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "ferrovsd exited"; exit 1; }
  sleep 0.1
done

echo "== two hosts in network namespaces, one behind each tap port"
ip netns add "$nsa"; ip netns add "$nsb"
ip link set fvs-tap0 netns "$nsa"; ip link set fvs-tap1 netns "$nsb"
ip -n "$nsa" addr add 198.18.0.1/24 dev fvs-tap0; ip -n "$nsa" link set fvs-tap0 up
ip -n "$nsb" addr add 198.18.0.2/24 dev fvs-tap1; ip -n "$nsb" link set fvs-tap1 up

echo "== ping 198.18.0.1 -> 198.18.0.2 through ferrovs"
ip netns exec "$nsa" ping -c 5 -i 0.2 -W 2 198.18.0.2
echo "== ping 198.18.0.2 -> 198.18.0.1 through ferrovs"
ip netns exec "$nsb" ping -c 5 -i 0.2 -W 2 198.18.0.1

echo "== ferrovs-ctl show"
"$bin/ferrovs-ctl" --socket "$sock" show
echo "== ferrovs-ctl pmd-stats-show"
"$bin/ferrovs-ctl" --socket "$sock" pmd-stats-show
if [ "$once" = 1 ]; then exit 0; fi

echo "== forwarding; pinging once a second. Ctrl-C stops ferrovsd and cleans up."
echo "   try: $bin/ferrovs-ctl --socket $sock show"
ip netns exec "$nsa" ping -i 1 198.18.0.2 >/dev/null &
ping_pid=$!
wait "$pid"
