#!/usr/bin/env bash
# The main job, end to end on embedded defaults: a home on 127.0.0.1 and two enrolled agents
# that send a test message and their heartbeats over mutual TLS, sealed and signed; the SVP
# agent follows a simulated Hitachi SVP's SIM log, and the SIMs raised arrive at the home.
# Leaves everything in ./demo-state (removed at the start of each run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev

bin=build/dev
state=demo-state
rm -rf "$state"
mkdir -p "$state"
home_pid=""
cleanup() { [ -n "$home_pid" ] && kill "$home_pid" 2>/dev/null && wait "$home_pid" 2>/dev/null; true; }
trap cleanup EXIT

echo "== pass-home init"
$bin/home/pass-home init --state "$state/home"

echo "== pass-home serve (127.0.0.1, ephemeral port)"
$bin/home/pass-home serve --state "$state/home" --listen 127.0.0.1:0 \
  --port-file "$state/home.port" 2>"$state/home.log" &
home_pid=$!
for _ in $(seq 1 100); do
  [ -s "$state/home.port" ] && break
  kill -0 "$home_pid" 2>/dev/null || { cat "$state/home.log"; exit 1; }
  sleep 0.1
done
[ -s "$state/home.port" ] || { echo "home did not start"; cat "$state/home.log"; exit 1; }
port=$(cat "$state/home.port")
echo "home listening on 127.0.0.1:$port"

for agent in svp-berlin-01 appliance-munich-01; do
  echo "== pass-home enroll $agent"
  $bin/home/pass-home enroll --state "$state/home" --customer "ACME Corp" --site "${agent#*-}" \
    --agent "$agent" --out "$state/$agent" --endpoint "https://127.0.0.1:$port"
  if [ "$agent" = svp-berlin-01 ]; then
    # A simulated SVP (tools/pass-sim/svp_log.py) writes its SIM log; the agent follows it.
    sim="$state/svp-berlin-01-sim"
    tools/pass-sim/svp_log.py --dir "$sim" raise --rc DC0123 --severity Serious \
      --text "old SIM, before PASS was installed" >/dev/null
    sed -i "s|</pass-agent>|  <arrays>\n    <hitachi-svp serial=\"470849\" model=\"DKC710\" name=\"VSP-1\" sim-dir=\"$PWD/$sim\" pattern=\"sim*.log\"/>\n  </arrays>\n</pass-agent>|" \
      "$state/$agent/agent.xml"
  fi
  echo "== pass-agent check-config / test / run ($agent)"
  $bin/linux-appliance/pass-agent check-config --config "$state/$agent/agent.xml"
  $bin/linux-appliance/pass-agent test --config "$state/$agent/agent.xml" \
    --message "hello from $agent"
  $bin/linux-appliance/pass-agent run --config "$state/$agent/agent.xml"
  $bin/linux-appliance/pass-agent status --config "$state/$agent/agent.xml"
done

echo "== the SVP raises two SIMs; the agent's next run finds them (and only them)"
tools/pass-sim/svp_log.py --dir "$state/svp-berlin-01-sim" raise --rc 307080 \
  --severity Moderate --part DKC --text "Processor failure"
tools/pass-sim/svp_log.py --dir "$state/svp-berlin-01-sim" raise --rc 212051 \
  --severity Serious --part CHA-1E --text "Channel port blocking"
$bin/linux-appliance/pass-agent run --config "$state/svp-berlin-01/agent.xml"
$bin/linux-appliance/pass-agent run --config "$state/svp-berlin-01/agent.xml"

echo "== pass-home agents"
$bin/home/pass-home agents --state "$state/home"
echo "== pass-home messages"
$bin/home/pass-home messages --state "$state/home"
echo "== pass-home events"
$bin/home/pass-home events --state "$state/home"
echo "== done: state in $state/, home log in $state/home.log"
