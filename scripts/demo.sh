#!/usr/bin/env bash
# The main job, end to end on embedded defaults: a home on 127.0.0.1 and two enrolled agents
# that send a test message and their heartbeats over mutual TLS, sealed and signed. The SVP
# agent follows a simulated Hitachi SVP's SIM log; the appliance agent watches a simulated
# Hitachi HUS110 (a fake SNM2 CLI), an HPE 3PAR (Debian's sshd with a forced command) and an HPE
# Nimble (REST over TLS). Faults raised on all four arrive at the home, decoded, once each, and
# open service tickets; the home mails the customer's engineer and manager through a local SMTP
# server (STARTTLS + AUTH) and texts the engineer through a local stand-in for an SMS gateway.
# Finally a new customer is onboarded from docs/examples/new-customer-form.xml: its agents are
# enrolled and the appliance image's inputs written (docs/onboarding.md).
# Leaves everything in ./demo-state (removed at the start of each run).
#
# scripts/demo.sh --cluster runs scripts/demo_cluster.py instead: two homes on one PostgreSQL
# database behind HAProxy; one is killed, and the ticket and its mails arrive once.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") ;;
  --cluster) ;;
  *) echo "usage: scripts/demo.sh [--cluster]" >&2; exit 2 ;;
esac
./scripts/install-deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev
if [ "${1:-}" = --cluster ]; then
  exec python3 scripts/demo_cluster.py build/dev
fi

bin=build/dev
state=demo-state
rm -rf "$state"
mkdir -p "$state"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
# Polls for a file a background process writes once it is ready.
wait_for_file() {
  for _ in $(seq 1 200); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "$3 exited"; cat "$4"; exit 1; }
    sleep 0.1
  done
  echo "$3 did not start"; cat "$4"; exit 1
}

echo "== pass-home init"
$bin/home/pass-home init --state "$state/home"

echo "== a local mail server (tools/smtpd: aiosmtpd, STARTTLS, AUTH) and SMS gateway stand-in"
/usr/bin/python3 tools/smtpd/pass-smtpd.py --port 0 --port-file "$state/smtp.port" \
  --maildir "$state/mail" --self-signed "$state/smtp-tls" --require-starttls \
  --auth-user pass --auth-password demo-smtp-password 2>"$state/smtp.log" &
pids+=($!)
wait_for_file "$state/smtp.port" $! "pass-smtpd" "$state/smtp.log"
python3 tools/http-receiver/http-receiver.py --port 0 --port-file "$state/sms.port" \
  --log "$state/sms.jsonl" --status 201 2>"$state/sms.log" &
pids+=($!)
wait_for_file "$state/sms.port" $! "SMS gateway stand-in" "$state/sms.log"
echo "demo-smtp-password" >"$state/home/smtp-password"
echo "demo-twilio-token" >"$state/home/twilio-token"
cat >"$state/home/home.xml" <<XML
<pass-home schema="1">
  <notifications ack-url="http://127.0.0.1:9456"/>
  <smtp url="smtp://127.0.0.1:$(cat "$state/smtp.port")" from="PASS &lt;pass@home.example&gt;"
        user="pass" password-file="smtp-password" ca-file="$PWD/$state/smtp-tls/cert.pem"/>
  <sms-gateway name="sms" preset="twilio"
               url="http://127.0.0.1:$(cat "$state/sms.port")/2010-04-01/Accounts/AC0001/Messages.json"
               from="+15005550006" user="AC0001" password-file="twilio-token"/>
  <customer name="ACME Corp" time-zone="Europe/Berlin">
    <contact name="Mia Manager" role="management" email="mia@acme.example"/>
    <contact name="Eli Engineer" role="engineer" email="eli@acme.example" sms="+4915112345678"/>
  </customer>
</pass-home>
XML
$bin/home/pass-home check-config --state "$state/home"

echo "== pass-home serve (127.0.0.1, ephemeral port)"
$bin/home/pass-home serve --state "$state/home" --listen 127.0.0.1:0 \
  --port-file "$state/home.port" 2>"$state/home.log" &
pids+=($!)
wait_for_file "$state/home.port" $! "pass-home" "$state/home.log"
port=$(cat "$state/home.port")
echo "home listening on 127.0.0.1:$port"

echo "== simulated arrays for the appliance (tools/pass-sim/): HUS110, 3PAR, Nimble"
sims="$PWD/$state/sims"
mkdir -p "$sims/3par" "$sims/nimble"
tools/pass-sim/snm2.py --dir "$sims/hus110" init --unit HUS110_91110206 --serial 91110206
tools/pass-sim/threepar.py --state "$sims/3par/state.json" serve --dir "$sims/3par" \
  >"$sims/3par/ports.json" 2>"$sims/3par/log" &
pids+=($!)
wait_for_file "$sims/3par/ports.json" $! "3PAR simulator" "$sims/3par/log"
tools/pass-sim/nimble.py --dir "$sims/nimble" serve --port-file "$sims/nimble/port" \
  2>"$sims/nimble/log" &
pids+=($!)
wait_for_file "$sims/nimble/port" $! "Nimble simulator" "$sims/nimble/log"
echo "admin-secret" >"$sims/nimble/password"
threepar() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" \
  "$sims/3par/ports.json" "$1"; }
appliance_arrays="    <hitachi-df serial=\"91110206\" model=\"HUS110\" name=\"HUS-1\" snm2-dir=\"$sims/hus110\" unit=\"HUS110_91110206\"/>
    <hpe-3par serial=\"1400123\" model=\"8200\" name=\"3PAR-1\" address=\"127.0.0.1\" ssh-port=\"$(threepar ssh_port)\" user=\"$(threepar ssh_user)\" key-file=\"$(threepar key_file)\"/>
    <nimble serial=\"AF-109084\" model=\"AF40\" name=\"Nimble-1\" address=\"127.0.0.1\" rest-port=\"$(cat "$sims/nimble/port")\" user=\"admin\" password-file=\"$sims/nimble/password\"/>"

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
  else
    # The appliance watches the other three families over the (here: loopback) network.
    python3 - "$state/$agent/agent.xml" "$appliance_arrays" <<'PY'
import sys
path, arrays = sys.argv[1], sys.argv[2]
text = open(path).read()
open(path, "w").write(text.replace("</pass-agent>", f"  <arrays>\n{arrays}\n  </arrays>\n</pass-agent>"))
PY
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

echo "== faults on the HUS110, the 3PAR and the Nimble; the appliance's next run finds them"
tools/pass-sim/snm2.py --dir "$sims/hus110" raise --unit HUS110_91110206 --section Fan --id 0/1
tools/pass-sim/threepar.py --state "$sims/3par/state.json" raise --code 0x2200de \
  --severity Degraded --message "Node 0, Power Supply 1, Battery 0 Degraded" >/dev/null
tools/pass-sim/nimble.py --dir "$sims/nimble" event --type 2002 --severity warning \
  --summary "Controller takeover" --target-type controller --target B >/dev/null
tools/pass-sim/nimble.py --dir "$sims/nimble" alarm open --type 2004 --severity critical \
  --object-type controller --object-name A --activity "Standby controller unavailable" >/dev/null
appliance="$state/appliance-munich-01/agent.xml"
$bin/linux-appliance/pass-agent run --config "$appliance"
echo "== the HUS110's fan is replaced and the 3PAR alert fixed: recoveries; then nothing new"
tools/pass-sim/snm2.py --dir "$sims/hus110" clear --unit HUS110_91110206 --section Fan --id 0/1
tools/pass-sim/threepar.py --state "$sims/3par/state.json" fix 1
$bin/linux-appliance/pass-agent run --config "$appliance"
$bin/linux-appliance/pass-agent run --config "$appliance"
$bin/linux-appliance/pass-agent status --config "$appliance"

echo "== pass-home agents"
$bin/home/pass-home agents --state "$state/home"
echo "== pass-home messages"
$bin/home/pass-home messages --state "$state/home"
echo "== pass-home events"
$bin/home/pass-home events --state "$state/home"

echo "== the home's outbox drains: every message sent (polling with a deadline)"
python3 - "$bin/home/pass-home" "$state/home" <<'PY'
import json, subprocess, sys, time
home, state = sys.argv[1], sys.argv[2]
def show(args):
    return json.loads(subprocess.run([home, *args, "--state", state, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
deadline = time.monotonic() + 60
while True:
    tickets = show(["tickets", "list", "--all"])
    messages = [m for t in tickets for m in show(["tickets", "show", str(t["id"])])["messages"]]
    pending = [m for m in messages if m["state"] == "pending"]
    if not pending:
        break
    if time.monotonic() > deadline:
        sys.exit(f"{len(pending)} messages still pending: {pending}")
    time.sleep(0.2)
print(f"{len(tickets)} tickets, {len(messages)} messages: "
      + ", ".join(f"{n} {s}" for s, n in sorted(
          {m['state']: sum(1 for x in messages if x['state'] == m['state'])
           for m in messages}.items())))
PY
echo "== pass-home tickets list --all"
$bin/home/pass-home tickets list --all --state "$state/home"
first=$($bin/home/pass-home tickets list --all --json --state "$state/home" |
  python3 -c "import json,sys; print(json.load(sys.stdin)[0]['id'])")
echo "== pass-home tickets show $first"
$bin/home/pass-home tickets show "$first" --state "$state/home"
echo "== the mailbox of the local SMTP server ($state/mail/new): subjects"
grep -h '^Subject:' "$state"/mail/new/* | sort
echo "== one of the e-mails, as delivered"
cat "$(grep -l "^Subject: \[PASS #$first\]" "$state"/mail/new/* | head -1)"
echo "== the SMS gateway stand-in received"
python3 -c "
import json, sys, urllib.parse
for line in open(sys.argv[1]):
    r = json.loads(line)
    form = urllib.parse.parse_qs(r['body'])
    print(form['To'][0], '<-', form['Body'][0])" "$state/sms.jsonl"
echo "== a new customer: pass-home onboard docs/examples/new-customer-form.xml"
# The example form's appliance and SVP, enrolled at this home; scripts/onboard.sh would go on
# to build the appliance image (OVA, VHD, qcow2) from $state/onboard/appliance.
$bin/home/pass-home onboard --state "$state/home" --form docs/examples/new-customer-form.xml \
  --out "$state/onboard" --endpoint "https://127.0.0.1:$port"
echo "-- what the image builder gets ($state/onboard/appliance):"
(cd "$state/onboard/appliance" && find . -type f | LC_ALL=C sort | sed 's/^\.\//   /')
echo "-- its network, from the form:"
sed 's/^/   /' "$state/onboard/appliance/rootfs/etc/systemd/network/10-eth0.network"
echo "-- the agents the home now expects to report (no heartbeat yet):"
$bin/home/pass-home agents --state "$state/home" | grep -E "^ID|ACME Bank"
echo "== done: state in $state/, home log in $state/home.log, mail in $state/mail/new/"
