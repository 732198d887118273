#!/usr/bin/env bash
# The MSI test: builds the MSI from EXE (installer/windows/build.sh) and installs it under Wine
# with a real pass-home on loopback, as docs/install-windows.md tells a field engineer:
#   installer/windows/test.sh EXE
# enroll (bundle with a hitachi-svp array on "C:\SVP Logs\Données"), msiexec /i BUNDLE=… /qn,
# the files, ProgramData\PASS, the task, the Event Log source, `test` and `run` from the
# installed program, a SIM through to the home's events, a spool kept across a repair with a
# new EVERY and a major upgrade (a rebuilt MSI of the same version), a refused bundle that fails
# the install with the program's message in the MSI log, and msiexec /x keeping ProgramData.
#
# Environment: WINEPREFIX (default: a fresh one in the work directory; a given prefix is reused,
# and must not have PASS installed), PASS_HOME_BIN (default build/dev/home/pass-home, the Linux
# build), PASS_MSI_WORK (work directory; default a new one under ${TMPDIR:-/tmp}),
# PASS_MSI_KEEP=1 keeps the work directory. Installs wine64 when missing (apt-get; sudo when
# not root). Prints FAIL lines, timings, and last `msi: N passed, N failed`; exit 1 on failure.
# No `set -e`: a failed check is counted and the test goes on; what the rest needs dies.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 EXE" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
exe="$(realpath -m "$1")"
home_bin="${PASS_HOME_BIN:-$repo/build/dev/home/pass-home}"
work="${PASS_MSI_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pass-msi-test.XXXXXX")}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
export WINEDEBUG=-all
export WINEPREFIX="${WINEPREFIX:-$work/wine}"
wine=/usr/lib/wine/wine64
wineserver=/usr/lib/wine/wineserver

PASS_LOG=msi PASS_FOCUS=RunPassSvp
. "$repo/scripts/lib.sh"
declare -A timing=()
expect_file() { # WHAT PATH
  if [ -f "$2" ]; then ok "$1"; else bad "$1: $2 does not exist"; fi
}
expect_no_path() { # WHAT PATH
  if [ -e "$2" ]; then bad "$1: $2 still exists"; else ok "$1"; fi
}
# A Unix path as Wine's Z: drive shows it.
winpath() { printf 'Z:%s' "${1//\//\\}"; }

home_pid=""
stop_home() {
  [ -n "$home_pid" ] || return 0
  kill "$home_pid" 2>/dev/null || true
  wait "$home_pid" 2>/dev/null || true
  home_pid=""
}
wine_started=0
cleanup() {
  local rc=$?
  set +e
  stop_home
  [ "$wine_started" -eq 0 ] || "$wineserver" -k 2>/dev/null
  if [ "${PASS_MSI_KEEP:-0}" = 1 ]; then
    echo "kept: $work"
  elif [ -z "${PASS_MSI_WORK:-}" ]; then
    rm -rf "$work"
  fi
  for t in $(printf '%s\n' "${!timing[@]}" | sort); do say "$t ${timing[$t]} s"; done
  summary || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "tools"
[ -f "$exe" ] || die "$exe does not exist (the cross-built pass-svp.exe)"
[ -x "$home_bin" ] || die "$home_bin does not exist (build pass-home: ninja -C build/dev pass-home, or set PASS_HOME_BIN)"
need_packages wine wine64
# A copy: build/dev is rebuilt by others, and a binary being relinked cannot be run.
cp "$home_bin" "$work/pass-home" || die "cannot copy $home_bin to $work"
home_src="$home_bin"
home_bin="$work/pass-home"
ok "wine64, pass-home ($home_src)"

step "build.sh (two builds of one version: the second is the upgrade)"
t0=$(date +%s%N)
msi_a="$("$here/build.sh" "$exe" "$work/a")" || die "build.sh failed"
timing[msi-build]=$(elapsed "$t0")
msi_b="$("$here/build.sh" "$exe" "$work/b")" || die "build.sh failed (second build)"
expect_match "MSI named for the version" "$(basename "$msi_a")" '^pass-svp-[0-9]+\.[0-9]+\.[0-9]+-x64\.msi$'
code_of() { msiinfo export "$1" Property | tr -d '\r' | awk -F'\t' '$1 == "ProductCode" { print $2 }'; }
code_a="$(code_of "$msi_a")"
code_b="$(code_of "$msi_b")"
if [ -n "$code_a" ] && [ "$code_a" != "$code_b" ]; then
  ok "each build has its own ProductCode ($code_a, $code_b)"
else
  bad "ProductCodes: '$code_a' and '$code_b' (want two different ones)"
fi
listing="$(msiextract -l "$msi_a" 2>&1 | tr -d '\r')"
expect_match "the MSI carries pass-svp.exe" "$listing" 'PASS/pass-svp\.exe$'
expect_match "the MSI carries docs/install-windows.md" "$listing" 'PASS/docs/install-windows\.md$'
expect_match "the MSI carries vendor-codes/hitachi_svp/sim-log-profiles.json" "$listing" \
  'PASS/vendor-codes/hitachi_svp/sim-log-profiles\.json$'

step "Wine prefix ($WINEPREFIX)"
t0=$(date +%s%N)
drive_c="$WINEPREFIX/drive_c"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  mkdir -p "$WINEPREFIX"
  "$wine" wineboot --init >/dev/null 2>&1 || die "wineboot --init failed in $WINEPREFIX"
  "$wineserver" -w
fi
# One wineserver for the whole test instead of a cold start per program (fails harmlessly when
# one runs already).
# Its services inherit the output of whatever starts them: never a pipe the caller waits on.
"$wineserver" -p >/dev/null 2>&1 || true
wine_started=1
"$wine" cmd /c exit 0 >/dev/null 2>&1 || die "Wine does not start programs in $WINEPREFIX"
[ ! -e "$drive_c/Program Files/PASS" ] ||
  die "$WINEPREFIX has PASS installed already; use a fresh prefix (unset WINEPREFIX)"
# An earlier run's state in a reused prefix (its uninstall keeps ProgramData\PASS on purpose).
rm -rf "$drive_c/ProgramData/PASS" "$drive_c/SVP Logs"
timing[wine-prefix]=$(elapsed "$t0")
ok "prefix ready"

step "home on loopback, bundle (docs/install-windows.md: before you go)"
state="$work/home"
expect_exit "pass-home init" 0 "$home_bin" init --state "$state" || die "pass-home init failed"
port=""
start_home() { # PORT (0: any)
  rm -f "$work/port"
  "$home_bin" serve --state "$state" --listen "127.0.0.1:$1" --port-file "$work/port" \
    --admin-listen off >>"$work/home.log" 2>&1 &
  home_pid=$!
  local deadline=$(($(date +%s) + 20))
  while [ ! -s "$work/port" ]; do
    kill -0 "$home_pid" 2>/dev/null || { tail -5 "$work/home.log" >&2; return 1; }
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
  port="$(cat "$work/port")"
}
start_home 0 || die "pass-home serve did not write its port within 20 s (log: $work/home.log)"
ok "pass-home serve on 127.0.0.1:$port"
bundle="$work/bundle for svp-1"
expect_exit "pass-home enroll svp-1" 0 "$home_bin" enroll --state "$state" --customer ACME \
  --site "Site München" --agent svp-1 --out "$bundle" --endpoint "https://127.0.0.1:$port" ||
  die "enroll failed"
agent_id="$(sed -n 's/.*<identity id="\([^"]*\)".*/\1/p' "$bundle/agent.xml")"
expect_match "bundle agent id" "$agent_id" '^[0-9a-f-]{36}$'
# The SVP's SIM logs, in a folder with a space and a non-ASCII letter; one SIM from before the
# install, which the first run must not report (it follows the files from their end).
sim_dir="$drive_c/SVP Logs/Données"
mkdir -p "$sim_dir"
sim_log="$sim_dir/sim001.log"
printf '2026/11/27,14:10:10,307080,Moderate,DKC,SIM from before the install\r\n' >"$sim_log"
# docs/install-windows.md, "Add the SVP's array": the element goes inside <pass-agent>.
sed -i 's|</pass-agent>|  <arrays>\n    <hitachi-svp serial="470849" model="DKC710" name="VSP-1" sim-dir="C:\\SVP Logs\\Données" pattern="sim*.log"/>\n  </arrays>\n</pass-agent>|' \
  "$bundle/agent.xml"
expect_match "bundle agent.xml has the hitachi-svp array" "$(cat "$bundle/agent.xml")" \
  'sim-dir="C:\\SVP Logs\\Données"'

installed="$drive_c/Program Files/PASS"
data="$drive_c/ProgramData/PASS"
svp='C:\Program Files\PASS\pass-svp.exe'
config='C:\ProgramData\PASS\agent.xml'
task_file="$drive_c/windows/system32/tasks/PASS Agent"
msiexec() { # LOGNAME ARGS...: msiexec with a verbose log in $work/LOGNAME.log
  local log="$work/$1.log"
  shift
  timeout 600 "$wine" msiexec "$@" /qn /l*v "$(winpath "$log")"
}
svp() { timeout 300 "$wine" "$svp" "$@"; }
reg_query() { "$wine" reg query "$@" 2>&1 | tr -d '\r'; }

step "msiexec /i BUNDLE=… /qn"
t0=$(date +%s%N)
expect_exit "msiexec /i $(basename "$msi_a") BUNDLE=\"$(winpath "$bundle")\"" 0 \
  msiexec install /i "$(winpath "$msi_a")" "BUNDLE=$(winpath "$bundle")"
timing[install]=$(elapsed "$t0")
expect_file "Program Files\\PASS\\pass-svp.exe" "$installed/pass-svp.exe"
if x86_64-w64-mingw32-objdump -h "$installed/pass-svp.exe" | grep -q '\.debug_'; then
  bad "the installed pass-svp.exe carries debug sections (build.sh strips it)"
else
  ok "the installed pass-svp.exe is stripped"
fi
for doc in install-windows.md agent.md configuration.md supported-arrays.md; do
  expect_file "Program Files\\PASS\\docs\\$doc" "$installed/docs/$doc"
done
missing_codes=0
while IFS= read -r f; do
  cmp -s "$repo/vendor-codes/$f" "$installed/vendor-codes/$f" || {
    bad "vendor-codes/$f is not installed as it is in the tree"
    missing_codes=1
  }
done < <(cd "$repo/vendor-codes" && find . -type f ! -name '.*' -printf '%P\n')
[ "$missing_codes" -ne 0 ] || ok "Program Files\\PASS\\vendor-codes holds vendor-codes/ as it is"
for f in agent.xml agent-sign.key agent-tls.key agent-tls.crt home-ca.crt home-hpke.pub; do
  if cmp -s "$bundle/$f" "$data/$f"; then ok "ProgramData\\PASS\\$f imported"; else bad "ProgramData\\PASS\\$f is not the bundle's"; fi
done
if [ -d "$data/state" ]; then ok "ProgramData\\PASS\\state created"; else bad "ProgramData\\PASS\\state was not created"; fi
expect_file "scheduled task \"PASS Agent\" registered (Wine keeps its name only)" "$task_file"
log="$(tr -d '\r' <"$work/install.log")"
expect_match "MSI log: import-bundle ran and succeeded" "$log" 'RunPassSvp: pass-svp\.exe import-bundle finished \(exit code 0\)'
expect_match "MSI log: install-task --every 5" "$log" 'RunPassSvp: running .*pass-svp\.exe" install-task --config C:\\ProgramData\\PASS\\agent\.xml --every 5$'
eventlog='HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\PASS'
reg="$(reg_query "$eventlog")"
expect_match "Event Log source: EventMessageFile" "$reg" 'EventMessageFile +REG_(EXPAND_)?SZ +C:\\Program Files\\PASS\\pass-svp\.exe'
expect_match "Event Log source: TypesSupported 7" "$reg" 'TypesSupported +REG_DWORD +0x7'
expect_match "HKLM\\SOFTWARE\\PASS remembers Every=5" "$(reg_query 'HKLM\SOFTWARE\PASS' /v Every)" 'Every +REG_SZ +5'

step "pass-svp.exe check-config, test, run, status (docs/install-windows.md: check it works)"
expect_exit "pass-svp.exe check-config" 0 svp check-config
expect_match "check-config names the array" "$out" '1 array'
t0=$(date +%s%N)
expect_exit "pass-svp.exe test" 0 svp test
timing[pass-svp-test]=$(elapsed "$t0")
expect_match "test: the home accepted it" "$out" 'accepted'
t0=$(date +%s%N)
expect_exit "pass-svp.exe run (first: heartbeat, the SIM log followed from its end)" 0 svp run --config "$config"
timing[pass-svp-run]=$(elapsed "$t0")
expect_exit "pass-svp.exe status" 0 svp status
expect_match "status: the array is ok" "$out" 'hitachi_svp 470849.*ok'
messages="$("$home_bin" messages --state "$state" --agent "$agent_id" 2>&1)"
expect_match "home stored the test message" "$messages" " test "
expect_match "home stored the heartbeat" "$messages" " heartbeat "
expect_file "log file ProgramData\\PASS\\logs\\pass-svp.log" "$data/logs/pass-svp.log"

step "a new SIM reaches the home"
printf '2026/11/27,14:12:10,307080,Serious,DKC,SIM after the install\r\n' >>"$sim_log"
expect_exit "pass-svp.exe run" 0 svp run
events="$("$home_bin" events --state "$state" --array 470849 2>&1)"
expect_match "home events: the new SIM" "$events" 'SIM after the install'
if printf '%s\n' "$events" | grep -q 'SIM from before the install'; then
  bad "home events: the SIM from before the install was reported"
else
  ok "home events: the SIM from before the install was not reported"
fi

step "home down: a SIM waits in the spool"
stop_home
printf '2026/11/27,14:20:00,307080,Acute,DKC,SIM while the home is down\r\n' >>"$sim_log"
expect_exit "pass-svp.exe run (home unreachable: still exit 0)" 0 svp run
spool_count() { find "$data/state/spool" -type f 2>/dev/null | wc -l; }
spooled="$(spool_count)"
if [ "$spooled" -ge 1 ]; then ok "spool holds $spooled envelope file(s)"; else bad "spool is empty after a run without the home"; fi
seq_before="$(cat "$data/state/seq" 2>/dev/null || echo missing)"
expect_match "state\\seq exists" "$seq_before" '^[0-9]+$'
seq_kept() { # WHAT
  local now
  now="$(cat "$data/state/seq" 2>/dev/null || echo missing)"
  if [[ "$now" =~ ^[0-9]+$ ]] && [ "$now" -ge "$seq_before" ]; then
    ok "$1: state\\seq kept ($seq_before -> $now)"
  else
    bad "$1: state\\seq is '$now', was $seq_before"
  fi
  if [ "$(spool_count)" -ge "$spooled" ]; then ok "$1: spool kept"; else bad "$1: spool lost envelopes ($(spool_count) of $spooled)"; fi
}

step "the same MSI again with EVERY=10 (repair)"
expect_exit "msiexec /i $(basename "$msi_a") EVERY=10" 0 msiexec repair /i "$(winpath "$msi_a")" EVERY=10
seq_kept "repair"
log="$(tr -d '\r' <"$work/repair.log")"
expect_match "MSI log: install-task --every 10" "$log" 'pass-svp\.exe" install-task --config C:\\ProgramData\\PASS\\agent\.xml --every 10$'
expect_match "HKLM\\SOFTWARE\\PASS remembers Every=10" "$(reg_query 'HKLM\SOFTWARE\PASS' /v Every)" 'Every +REG_SZ +10'
if cmp -s "$bundle/agent.xml" "$data/agent.xml"; then ok "agent.xml untouched"; else bad "agent.xml changed"; fi

step "upgrade: a rebuilt MSI of the same version, without BUNDLE or EVERY"
t0=$(date +%s%N)
expect_exit "msiexec /i $(basename "$msi_b") (upgrade)" 0 msiexec upgrade /i "$(winpath "$msi_b")"
timing[upgrade]=$(elapsed "$t0")
seq_kept "upgrade"
uninstall_keys="$(reg_query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall')"
if printf '%s\n' "$uninstall_keys" | grep -qF "$code_b" && ! printf '%s\n' "$uninstall_keys" | grep -qF "$code_a"; then
  ok "the upgrade replaced $code_a by $code_b"
else
  bad "after the upgrade, Uninstall lists: $(printf '%s\n' "$uninstall_keys" | grep -o '{[^}]*}' | tr '\n' ' ')"
fi
log="$(tr -d '\r' <"$work/upgrade.log")"
expect_match "MSI log: the old version was found" "$log" "WIX_UPGRADE_DETECTED = $code_a"
expect_match "MSI log: install-task keeps the remembered --every 10" "$log" 'install-task --config C:\\ProgramData\\PASS\\agent\.xml --every 10$'
expect_file "scheduled task still registered" "$task_file"
if cmp -s "$bundle/agent.xml" "$data/agent.xml"; then ok "agent.xml untouched"; else bad "agent.xml changed"; fi

step "home back: the spooled SIM is delivered"
start_home "$port" || die "pass-home serve could not listen on 127.0.0.1:$port again (log: $work/home.log)"
ok "pass-home serve on 127.0.0.1:$port again"
expect_exit "pass-svp.exe run" 0 svp run
events="$("$home_bin" events --state "$state" --array 470849 2>&1)"
expect_match "home events: the SIM from while the home was down" "$events" 'SIM while the home is down'
expect_eq "spool drained" "$(spool_count)" 0

step "a refused bundle fails the install with the program's message"
other="$work/bundle for svp-2"
expect_exit "pass-home enroll svp-2" 0 "$home_bin" enroll --state "$state" --customer ACME \
  --site "Site München" --agent svp-2 --out "$other" --endpoint "https://127.0.0.1:$port"
rc=0
msiexec refused /i "$(winpath "$msi_b")" "BUNDLE=$(winpath "$other")" >/dev/null 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then ok "msiexec fails (exit $rc; 1603 on Windows)"; else bad "msiexec accepted another agent's bundle while state exists"; fi
log="$(tr -d '\r' <"$work/refused.log")"
expect_match "MSI log: import-bundle's exit code" "$log" 'RunPassSvp: pass-svp\.exe import-bundle failed with exit code 2'
expect_match "MSI log: the program's sentence" "$log" "RunPassSvp: pass-svp\.exe import-bundle: pass-svp: .*is agent $agent_id, whose state"
if cmp -s "$bundle/agent.xml" "$data/agent.xml"; then ok "agent.xml still svp-1's"; else bad "agent.xml was replaced by the refused bundle"; fi
expect_file "the installed program is still there" "$installed/pass-svp.exe"

step "msiexec /x"
t0=$(date +%s%N)
expect_exit "msiexec /x $(basename "$msi_b")" 0 msiexec uninstall /x "$(winpath "$msi_b")"
timing[uninstall]=$(elapsed "$t0")
expect_no_path "Program Files\\PASS removed" "$installed"
expect_file "ProgramData\\PASS\\agent.xml kept" "$data/agent.xml"
expect_file "ProgramData\\PASS\\agent-sign.key kept" "$data/agent-sign.key"
expect_file "ProgramData\\PASS\\state\\seq kept" "$data/state/seq"
expect_no_path "scheduled task removed" "$task_file"
expect_match "MSI log: remove-task ran" "$(tr -d '\r' <"$work/uninstall.log")" 'RunPassSvp: pass-svp\.exe remove-task finished'
expect_match "Event Log source removed" "$(reg_query "$eventlog")" 'Unable to find'
expect_match "HKLM\\SOFTWARE\\PASS removed" "$(reg_query 'HKLM\SOFTWARE\PASS')" 'Unable to find'
say "   ($(elapsed "$step_started") s)"
