#!/usr/bin/env bash
# The package test: builds the two .debs (installer/debian/build.sh), checks them with lintian,
# installs them with apt-get into a fresh Debian 12 chroot (debootstrap --variant=minbase),
# follows docs/install-appliance.md there on loopback (pass-home init, enroll, the bundle into
# /etc/pass, check-config, test message, first run and heartbeat), checks users, modes, the
# cron alternative, the units (systemd-analyze verify / security), then remove and purge.
#
#   installer/debian/test.sh [--debs DIR]     (--debs: test these .debs instead of building)
#
# Runs as root or through sudo. The pristine chroot is cached as a tarball under
# ${XDG_CACHE_HOME:-~/.cache}/pass/, keyed by suite, variant, architecture and mirror, and
# rebuilt when older than 7 days. Environment: PASS_DEB_MIRROR (http://deb.debian.org/debian),
# PASS_DEB_SECURITY_MIRROR (http://deb.debian.org/debian-security; empty: none),
# PASS_DEB_WORK (build/debian-test), PASS_DEB_KEEP=1 keeps the chroot afterwards.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mirror="${PASS_DEB_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${PASS_DEB_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
suite=bookworm
work="${PASS_DEB_WORK:-$repo/build/debian-test}"
root="$work/root"
debs=""
if [ "${1:-}" = "--debs" ] && [ -n "${2:-}" ]; then
  debs="$(cd "$2" && pwd)"
elif [ $# -ne 0 ]; then
  echo "usage: $0 [--debs DIR]" >&2
  exit 2
fi

PASS_LOG=debian
. "$repo/scripts/lib.sh"
R() { as_root "$@"; }

# Processes started inside the chroot (pid files in the chroot), and mounts under $root.
server_pid_file="$root/run/pass-home-test.pid"
server_alive() {
  local pid
  pid="$(R cat "$server_pid_file" 2>/dev/null)" || return 1
  [ -n "$pid" ] && R kill -0 "$pid" 2>/dev/null
}
# SIGTERM makes nspawn power the container off; after 30 s its init and nspawn are killed.
nspawn_pid=""
leader=""
stop_container() {
  local clean=0
  R kill "$nspawn_pid" 2>/dev/null
  for _ in $(seq 300); do
    R kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
  done
  if R kill -0 "$nspawn_pid" 2>/dev/null; then
    clean=1
    [ -z "$leader" ] || R kill -9 "$leader" 2>/dev/null
    R kill -9 "$nspawn_pid" 2>/dev/null
    sleep 1
  fi
  wait "$nspawn_pid" 2>/dev/null
  R kill -0 "$nspawn_pid" 2>/dev/null || nspawn_pid=""
  return $clean
}
cleanup() {
  local rc=$?
  set +e
  if server_alive; then
    R kill "$(R cat "$server_pid_file")" 2>/dev/null
    for _ in $(seq 50); do
      server_alive || break
      sleep 0.1
    done
  fi
  R rm -f "$server_pid_file"
  if [ -n "${nspawn_pid:-}" ]; then
    stop_container || echo "FAIL: the container did not power off within 30 s (killed)" >&2
  fi
  if [ -n "${nspawn_pid:-}" ]; then
    echo "FAIL: the container (systemd-nspawn $nspawn_pid) still runs; not removing $root" >&2
    rc=1
  elif [ -d "$root" ]; then
    findmnt -rn -o TARGET | grep -F "$root/" | sort -r | while read -r m; do
      R umount "$m" 2>/dev/null || R umount -l "$m"
    done
    if findmnt -rn -o TARGET | grep -qF "$root/"; then
      echo "FAIL: still mounted under $root; not removing it" >&2
      rc=1
    elif [ "${PASS_DEB_KEEP:-0}" != 1 ]; then
      R rm -rf --one-file-system "$root"
    else
      echo "kept the chroot: $root"
    fi
  fi
  summary || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command in the chroot with a clean environment, as root.
ch() {
  R chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}
# docs/install-appliance.md quotes the figures: 1.1 (pass-home), 1.6 (pass-agent).
check_exposure() { # WHAT OUTPUT-OF-systemd-analyze-security
  local score
  score="$(printf '%s\n' "$2" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
  if [ -z "$score" ]; then
    bad "$1 printed no exposure level:"
    printf '%s\n' "$2" | tail -5 | sed 's/^/      /' >&2
  elif awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }'; then
    ok "$1: exposure $score (at most 2.5)"
  else
    bad "$1: exposure $score, want at most 2.5"
  fi
}
in_root_exists() { R test -e "$root$1" || R test -L "$root$1"; }
# Owner names as the chroot's /etc/passwd has them.
stat_in() { ch stat -c "$1" "$2" 2>/dev/null || echo "(missing)"; }

step "host tools"
need_commands debootstrap=debootstrap lintian=lintian systemd-analyze=systemd
ok "debootstrap, lintian, systemd-analyze"

package_debs "$debs" "$work"

step "package contents"
for deb in "$agent_deb" "$home_deb"; do
  pkg="$(dpkg-deb -f "$deb" Package)"
  depends="$(dpkg-deb -f "$deb" Depends)"
  expect_match "$pkg Depends computed (libc6, libstdc++6, adduser)" "$depends" \
    'libc6 \(>= [^)]+\).*libstdc\+\+6.*adduser'
  binary="$(mktemp -d)"
  dpkg-deb -x "$deb" "$binary"
  if readelf -S "$binary/usr/bin/$pkg" | grep -qE '\.(symtab|debug_)'; then
    bad "$pkg: /usr/bin/$pkg carries debug info or symbols"
  else
    ok "$pkg: /usr/bin/$pkg stripped"
  fi
  rm -rf "$binary"
done

step "lintian"
for deb in "$agent_deb" "$home_deb"; do
  rc=0
  report="$(lintian --fail-on error --tag-display-limit 0 "$deb" 2>&1)" || rc=$?
  report="$(printf '%s\n' "$report" | grep -v 'running with root privileges' || true)"
  [ -z "$report" ] || printf '%s\n' "$report" | sed 's/^/      /'
  if [ "$rc" -ne 0 ] || printf '%s\n' "$report" | grep -q '^E: '; then
    bad "lintian reports errors for $(basename "$deb")"
  else
    ok "lintian: no errors in $(basename "$deb")"
  fi
done

step "unit files (systemd-analyze on the host)"
# verify checks that ExecStart is executable: the units are checked with their ExecStart
# pointing into the unpacked packages (inside the booted chroot below, as shipped).
units="$work/units"
R rm -rf "$units"
mkdir -p "$units/tree" "$units/check"
dpkg-deb -x "$agent_deb" "$units/tree"
dpkg-deb -x "$home_deb" "$units/tree"
for unit in pass-agent.service pass-agent.timer pass-home.service; do
  sed "s|^ExecStart=/usr/bin/|ExecStart=$units/tree/usr/bin/|" \
    "$units/tree/lib/systemd/system/$unit" >"$units/check/$unit"
done
for unit in pass-agent.service pass-agent.timer pass-home.service; do
  expect_exit "systemd-analyze verify $unit" 0 \
    sh -c "cd '$units/check' && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./$unit" ||
    true
done
for unit in pass-home.service pass-agent.service; do
  check_exposure "systemd-analyze security --offline $unit" \
    "$(cd "$units/check" && systemd-analyze security --offline=true "./$unit" 2>&1 || true)"
done
R rm -rf "$units"

step "fresh chroot ($suite minbase, $mirror)"
fresh_root "$suite" "$mirror" "$root" "$work"
R mount -t proc proc "$root/proc"
R cp /etc/resolv.conf "$root/etc/resolv.conf"
# Nothing may start in the chroot (there is no systemd; this covers sysvinit scripts too).
printf '#!/bin/sh\nexit 101\n' | R tee "$root/usr/sbin/policy-rc.d" >/dev/null
R chmod 0755 "$root/usr/sbin/policy-rc.d"
{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  [ -z "$security_mirror" ] || echo "deb $security_mirror $suite-security main"
} | R tee "$root/etc/apt/sources.list" >/dev/null
# The mirror may be a snapshot whose Release files are past their Valid-Until.
echo 'Acquire::Check-Valid-Until "false";' | R tee "$root/etc/apt/apt.conf.d/99pass-test" >/dev/null
# Packages downloaded by earlier runs, so that a rerun downloads only what changed.
archives="$pass_cache/$root_key-archives"
mkdir -p "$archives"
R find "$archives" -maxdepth 1 -name '*.deb' -exec cp -t "$root/var/cache/apt/archives/" {} +
expect_eq "no systemd running in the chroot" "$(in_root_exists /run/systemd/system && echo yes || echo no)" no

step "apt-get install ./pass-agent ./pass-home (in the chroot)"
R mkdir -p "$root/root/debs"
R cp "$agent_deb" "$home_deb" "$root/root/debs/"
ch apt-get update -qq >"$work/apt-update.log" 2>&1 || {
  tail -20 "$work/apt-update.log" >&2
  die "apt-get update in the chroot failed (log: $work/apt-update.log)"
}
a="./debs/$(basename "$agent_deb")"
h="./debs/$(basename "$home_deb")"
expect_exit "apt-get install $a $h" 0 \
  R chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive sh -c "cd /root && apt-get install -y $a $h" ||
  die "the packages do not install into a bare $suite"
R find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n -t "$archives/" {} +
R chown -R "$(id -u):$(id -g)" "$archives"

step "binaries"
expect_exit "pass-agent --help" 0 ch pass-agent --help && expect_match "pass-agent --help prints the usage" "$out" '^usage: pass-agent'
expect_exit "pass-home --help" 0 ch pass-home --help && expect_match "pass-home --help prints the usage" "$out" '^usage: pass-home'

step "users and directories"
for user in pass pass-home; do
  entry="$(ch getent passwd "$user" || true)"
  if [ -z "$entry" ]; then
    bad "user $user does not exist"
    continue
  fi
  IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
  if [ "$uid" -ge 100 ] && [ "$uid" -le 999 ]; then ok "$user is a system user (uid $uid)"; else bad "$user: uid $uid is not a system uid (100-999)"; fi
  expect_eq "$user's shell" "$shell" /usr/sbin/nologin
  expect_eq "$user's home" "$home" "/var/lib/$user"
  expect_eq "$user's primary group" "$(ch getent group "$gid" | cut -d: -f1)" "$user"
  pw="$(ch getent shadow "$user" | cut -d: -f2)"
  case "$pw" in
    '*' | '!'*) ok "$user has no password ($pw)" ;;
    *) bad "$user has a usable password field '$pw'" ;;
  esac
done
expect_eq "/etc/pass" "$(stat_in '%U:%G %a' /etc/pass)" "root:pass 750"
expect_eq "/var/lib/pass" "$(stat_in '%U:%G %a' /var/lib/pass)" "pass:pass 750"
expect_eq "/etc/pass/state" "$(R readlink "$root/etc/pass/state" || echo '(missing)')" /var/lib/pass
expect_eq "/var/lib/pass-home" "$(stat_in '%U:%G %a' /var/lib/pass-home)" "pass-home:pass-home 700"
expect_eq "pass-agent.timer enabled" \
  "$(R readlink "$root/etc/systemd/system/timers.target.wants/pass-agent.timer" || echo '(not enabled)')" \
  /lib/systemd/system/pass-agent.timer
expect_eq "pass-home.service enabled" \
  "$(R readlink "$root/etc/systemd/system/multi-user.target.wants/pass-home.service" || echo '(not enabled)')" \
  /lib/systemd/system/pass-home.service

step "cron alternative (no systemd here, so postinst installed it)"
cron="$root/etc/cron.d/pass-agent"
if R cmp -s "$cron" "$root/usr/share/pass-agent/pass-agent.cron"; then
  ok "/etc/cron.d/pass-agent is /usr/share/pass-agent/pass-agent.cron"
else
  bad "/etc/cron.d/pass-agent is missing or differs from /usr/share/pass-agent/pass-agent.cron"
fi
expect_eq "/etc/cron.d/pass-agent owner and mode" "$(stat_in '%U:%G %a' /etc/cron.d/pass-agent)" "root:root 644"
# cron(8) of Debian: a cron.d file name of letters, digits, - and _ only; each job line is
# five time fields, a user and a command; the file ends with a newline.
cron_text="$(R cat "$cron" 2>/dev/null || true)"
if [ "$(R tail -c1 "$cron" 2>/dev/null | od -An -c | tr -d ' ')" = '\n' ]; then
  ok "cron file ends with a newline"
else
  bad "cron file does not end with a newline"
fi
jobs=0
while IFS= read -r line; do
  case "$line" in '' | '#'*) continue ;; esac
  if printf '%s\n' "$line" | grep -qE '^[A-Za-z_][A-Za-z0-9_]*='; then continue; fi
  read -r f1 f2 f3 f4 f5 user command <<<"$line"
  field='^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*$'
  for f in "$f1" "$f2" "$f3" "$f4" "$f5"; do
    printf '%s\n' "$f" | grep -qE "$field" || bad "cron: time field '$f' is not valid in: $line"
  done
  ch getent passwd "$user" >/dev/null || bad "cron: user '$user' does not exist"
  printf '%s\n' "$command" | grep -q '/usr/bin/pass-agent run' || bad "cron: the job does not run pass-agent: $line"
  jobs=$((jobs + 1))
done <<<"$cron_text"
expect_eq "cron job lines" "$jobs" 1
# The job itself, as cron would run it (sh -c as pass): a no-op until agent.xml exists.
job="$(printf '%s\n' "$cron_text" | grep -E '^[0-9*]' | cut -f3-)"
expect_exit "the cron job runs (sh -c, as pass, before the bundle: does nothing)" 1 \
  ch runuser -u pass -- sh -c "$job"

# From here on, the steps of docs/install-appliance.md, with the home on loopback.
step "home: init, home.xml, check-config (docs/install-appliance.md)"
expect_exit "pass-home init" 0 ch runuser -u pass-home -- pass-home init --state /var/lib/pass-home \
  --name localhost --name 127.0.0.1
expect_eq "home.db (the unit's ConditionPathExists)" "$(stat_in '%U:%G' /var/lib/pass-home/home.db)" "pass-home:pass-home"
expect_eq "/var/lib/pass-home after init" "$(stat_in '%U:%G %a' /var/lib/pass-home)" "pass-home:pass-home 700"
expect_exit "pass-home check-config without home.xml" 0 ch runuser -u pass-home -- pass-home check-config --state /var/lib/pass-home
# A customer with quiet hours in a time zone: check-config needs tzdata for it.
ch runuser -u pass-home -- sh -c 'umask 077 && cat >/var/lib/pass-home/home.xml' <<'EOF'
<pass-home schema="1">
  <smtp url="smtp://mail.example.com:587" from="PASS &lt;pass@example.com&gt;"/>
  <customer name="ACME" time-zone="Europe/Berlin" quiet-hours="22:00-07:00">
    <contact name="Eli Engineer" role="engineer" email="eli@acme.example"/>
  </customer>
</pass-home>
EOF
expect_exit "pass-home check-config with home.xml (time zones from tzdata)" 0 \
  ch runuser -u pass-home -- pass-home check-config --state /var/lib/pass-home &&
  expect_match "check-config says ok" "$out" 'home.xml: ok \(1 customer'

step "home: serve on 127.0.0.1 (what pass-home.service runs)"
R rm -f "$root/run/pass-home-test.port"
R mkdir -p "$root/run/pass-home-test"
ch chown pass-home /run/pass-home-test
# setpriv execs the server itself, so the pid file names the server (cleanup kills it).
R chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 sh -c \
  'echo $$ >/run/pass-home-test.pid
   exec setpriv --reuid=pass-home --regid=pass-home --init-groups /usr/bin/pass-home serve \
     --state /var/lib/pass-home --listen 127.0.0.1:0 --admin-listen off \
     --port-file /run/pass-home-test/port' >"$work/serve.log" 2>&1 &
port=""
for _ in $(seq 100); do
  port="$(R cat "$root/run/pass-home-test/port" 2>/dev/null || true)"
  [ -n "$port" ] && break
  # Dead after it wrote its pid: it will not listen.
  if R test -s "$server_pid_file" && ! server_alive; then break; fi
  sleep 0.1
done
[ -n "$port" ] || {
  cat "$work/serve.log" >&2
  die "pass-home serve did not listen within 10 s (log above)"
}
ok "pass-home serve listens on 127.0.0.1:$port"

step "home: enroll and hand over the bundle (docs/install-appliance.md)"
expect_exit "pass-home enroll" 0 ch runuser -u pass-home -- pass-home enroll --state /var/lib/pass-home \
  --customer ACME --site Berlin --agent appliance-01 --endpoint "https://127.0.0.1:$port" \
  --out /var/lib/pass-home/bundles/appliance-01
agent_id="$out"
expect_exit "tar the bundle" 0 ch tar -C /var/lib/pass-home/bundles -czf /root/appliance-01.tar.gz appliance-01
expect_exit "remove the home's copy" 0 ch rm -r /var/lib/pass-home/bundles/appliance-01

step "appliance: the bundle into /etc/pass (docs/install-appliance.md)"
expect_exit "unpack the bundle" 0 ch tar -C /root -xzf /root/appliance-01.tar.gz
expect_exit "install the public files" 0 ch sh -c 'cd /root/appliance-01 &&
  install -o root -g pass -m 0640 agent.xml agent-tls.crt home-ca.crt home-hpke.pub /etc/pass/'
expect_exit "install the private keys" 0 ch sh -c 'cd /root/appliance-01 &&
  install -o pass -g pass -m 0600 agent-sign.key agent-tls.key /etc/pass/'
expect_exit "remove the unpacked bundle" 0 ch rm -r /root/appliance-01 /root/appliance-01.tar.gz
for f in agent-sign.key agent-tls.key; do
  expect_eq "/etc/pass/$f" "$(stat_in '%U:%G %a' "/etc/pass/$f")" "pass:pass 600"
done
# Step 3: an array with its password file. The doc's `editor` is a printf and a sed here;
# the array (a Nimble on a closed loopback port) is unreachable, which a run reports and
# survives.
expect_exit "secrets directory" 0 ch install -d -o root -g pass -m 0750 /etc/pass/secrets
expect_exit "password file" 0 ch install -o pass -g pass -m 0600 /dev/null /etc/pass/secrets/nimble-1
expect_exit "write the password" 0 ch sh -c "printf 'not-a-real-password\n' >/etc/pass/secrets/nimble-1"
expect_exit "add the array to agent.xml" 0 ch sed -i 's#</pass-agent>#  <arrays>\n    <nimble serial="AF-109084" model="AF40" name="Nimble-1" address="127.0.0.1" rest-port="1" user="passmon" password-file="secrets/nimble-1" timeout-seconds="5"/>\n  </arrays>\n</pass-agent>#' /etc/pass/agent.xml
expect_eq "/etc/pass/agent.xml after the edit" "$(stat_in '%U:%G %a' /etc/pass/agent.xml)" "root:pass 640"
expect_eq "/etc/pass/secrets/nimble-1" "$(stat_in '%U:%G %a' /etc/pass/secrets/nimble-1)" "pass:pass 600"
expect_exit "others cannot read /etc/pass" 1 ch runuser -u nobody -- cat /etc/pass/agent.xml
# --config-only: the example's SNM2 folder (/opt/snm2) is not on this machine.
expect_exit "the shipped example agent.xml passes check-config --config-only (with this bundle's keys)" 0 \
  ch sh -c 'd="$(mktemp -d)" && cp /usr/share/doc/pass-agent/examples/agent.xml /etc/pass/*.key \
    /etc/pass/*.crt /etc/pass/*.pub "$d/" &&
    pass-agent check-config --config-only --config "$d/agent.xml"; rc=$?; rm -r "$d"; exit $rc'

step "appliance: check-config, test, run, status (docs/install-appliance.md)"
expect_exit "pass-agent check-config" 0 ch runuser -u pass -- pass-agent check-config &&
  expect_match "check-config names the agent and the array" "$out" \
    "agent.xml: ok \\(agent $agent_id, customer ACME, site Berlin, 1 endpoint\\(s\\), 1 array\\(s\\)\\)"
# docs/install-appliance.md, troubleshooting: a key file the agent's user cannot read.
expect_exit "chmod 0000 /etc/pass/agent-tls.key" 0 ch chmod 0000 /etc/pass/agent-tls.key
expect_exit "check-config: exit 2 for a key file pass cannot read" 2 \
  ch runuser -u pass -- pass-agent check-config &&
  expect_match "check-config names the file and why" "$out" \
    'agent\.xml: agent-tls\.key file: cannot open /etc/pass/agent-tls\.key: Permission denied'
expect_exit "chmod 0600 /etc/pass/agent-tls.key" 0 ch chmod 0600 /etc/pass/agent-tls.key
expect_exit "pass-agent test" 0 ch runuser -u pass -- pass-agent test &&
  expect_match "test: accepted" "$out" '^test: accepted by https://127\.0\.0\.1'
expect_exit "pass-agent run (as the timer runs it)" 0 ch runuser -u pass -- pass-agent run &&
  expect_match "run: heartbeat delivered" "$out" 'run: heartbeat spooled, delivered 1,' &&
  expect_match "run: the unreachable array is reported" "$out" 'collect: nimble AF-109084: unreachable'
expect_exit "pass-agent status" 0 ch runuser -u pass -- pass-agent status &&
  expect_match "status: spool empty" "$out" 'spool: +0 envelope' &&
  expect_match "status: next heartbeat scheduled" "$out" 'next heartbeat: [0-9]{4}-'
expect_eq "the state went to /var/lib/pass" "$(stat_in '%U:%G' /var/lib/pass/agent-state.json)" "pass:pass"
expect_exit "pass-home agents" 0 ch runuser -u pass-home -- pass-home agents --state /var/lib/pass-home &&
  expect_match "the home has the agent's heartbeat" "$out" "$agent_id"
expect_exit "the cron job with the bundle in place (runs the agent)" 0 \
  ch runuser -u pass -- sh -c "$job"

step "reinstall (postinst over an existing installation)"
expect_exit "apt-get install --reinstall" 0 ch sh -c "cd /root && apt-get install -y --reinstall $a $h"
expect_eq "/etc/pass kept" "$(stat_in '%U:%G %a' /etc/pass)" "root:pass 750"
expect_eq "agent-sign.key kept" "$(stat_in '%U:%G %a' /etc/pass/agent-sign.key)" "pass:pass 600"
expect_exit "pass-agent check-config after reinstall" 0 ch runuser -u pass -- pass-agent check-config

step "stop the home"
R kill "$(R cat "$server_pid_file")"
for _ in $(seq 100); do
  server_alive || break
  sleep 0.1
done
if server_alive; then
  bad "pass-home serve did not exit within 10 s of SIGTERM"
else
  ok "pass-home serve exited on SIGTERM"
  R rm -f "$server_pid_file"
fi

step "apt-get remove: binaries go, configuration and state stay"
expect_exit "apt-get remove" 0 ch apt-get remove -y pass-agent pass-home
for p in /usr/bin/pass-agent /usr/bin/pass-home /lib/systemd/system/pass-agent.timer; do
  if in_root_exists "$p"; then bad "$p is still there after remove"; else ok "$p removed"; fi
done
for p in /etc/pass/agent.xml /etc/pass/agent-sign.key /var/lib/pass/agent-state.json \
  /var/lib/pass-home/home.db /etc/cron.d/pass-agent; do
  if in_root_exists "$p"; then ok "$p kept"; else bad "$p was deleted by remove"; fi
done
for user in pass pass-home; do
  if ch getent passwd "$user" >/dev/null; then ok "user $user kept"; else bad "user $user deleted by remove"; fi
done

step "dpkg --purge: configuration, state and users go"
expect_exit "dpkg --purge" 0 ch dpkg --purge pass-agent pass-home
for p in /etc/pass /var/lib/pass /var/lib/pass-home /etc/cron.d/pass-agent \
  /etc/systemd/system/timers.target.wants/pass-agent.timer \
  /etc/systemd/system/multi-user.target.wants/pass-home.service; do
  if in_root_exists "$p"; then bad "$p is still there after purge"; else ok "$p purged"; fi
done
for user in pass pass-home; do
  if ch getent passwd "$user" >/dev/null; then bad "user $user still there after purge"; else ok "user $user removed"; fi
  if ch getent group "$user" >/dev/null; then bad "group $user still there after purge"; else ok "group $user removed"; fi
done
expect_eq "dpkg knows neither package" "$(ch dpkg-query -W -f '${db:Status-Abbrev}' pass-agent pass-home 2>/dev/null || true)" ""

# The units under a real systemd: the same chroot with systemd installed, booted with
# systemd-nspawn (private network: only loopback). PASS_DEB_BOOT=0 skips this; =auto (the
# default) skips it with a SKIP line where systemd-nspawn cannot boot a container; =1 fails.
boot_mode="${PASS_DEB_BOOT:-auto}"
skip_boot() {
  [ "$boot_mode" = 1 ] && die "$*"
  echo "SKIP: $* (PASS_DEB_BOOT=1 makes this a failure)"
}
find_leader() { # the container's systemd: a child (or, through sudo, a grandchild) of $1
  local p="$1" c
  for _ in 1 2 3; do
    c="$(ps --ppid "$p" -o pid= | head -1 | tr -d ' ')"
    [ -n "$c" ] || return 1
    if [ "$(ps -p "$c" -o comm=)" = systemd ]; then
      echo "$c"
      return 0
    fi
    p="$c"
  done
  return 1
}
booted() { # runs a command in the booted container
  R nsenter -t "$leader" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
if [ "$boot_mode" != 0 ]; then
  step "systemd: install systemd in the chroot, the packages again, the home and the bundle"
  if ! command -v systemd-nspawn >/dev/null; then
    R env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      systemd-container >/dev/null || true
  fi
  if ! command -v systemd-nspawn >/dev/null || ! command -v nsenter >/dev/null; then
    skip_boot "systemd-nspawn is not available on this host"
  else
    expect_exit "apt-get install systemd systemd-sysv dbus" 0 \
      ch apt-get install -y --no-install-recommends systemd systemd-sysv dbus ||
      die "systemd does not install into the chroot"
    expect_exit "apt-get install ./pass-agent ./pass-home" 0 \
      ch sh -c "cd /root && apt-get install -y $a $h"
    R find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n -t "$archives/" {} +
    R chown -R "$(id -u):$(id -g)" "$archives"
    expect_exit "pass-home init" 0 ch runuser -u pass-home -- pass-home init \
      --state /var/lib/pass-home --name localhost --name 127.0.0.1
    expect_exit "pass-home enroll (endpoint on the default port)" 0 ch runuser -u pass-home -- \
      pass-home enroll --state /var/lib/pass-home --customer ACME --site Berlin \
      --agent appliance-01 --endpoint https://localhost:9455 \
      --out /var/lib/pass-home/bundles/appliance-01
    agent_id="$out"
    expect_exit "the bundle into /etc/pass" 0 ch sh -c 'cd /var/lib/pass-home/bundles/appliance-01 &&
      install -o root -g pass -m 0640 agent.xml agent-tls.crt home-ca.crt home-hpke.pub /etc/pass/ &&
      install -o pass -g pass -m 0600 agent-sign.key agent-tls.key /etc/pass/ &&
      rm -r /var/lib/pass-home/bundles/appliance-01'
    ch runuser -u pass-home -- sh -c 'umask 077 && cat >/var/lib/pass-home/home.xml' <<'EOF'
<pass-home schema="1">
  <customer name="ACME" time-zone="Europe/Berlin" quiet-hours="22:00-07:00"/>
</pass-home>
EOF
    R umount "$root/proc"
    R rm -f "$root/usr/sbin/policy-rc.d"

    step "systemd: boot"
    boot_log="$work/boot.log"
    # Not through R: a function in the background is a subshell, and $! must be nspawn (or
    # sudo, which passes signals on).
    $sudo systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network -b \
      >"$boot_log" 2>&1 </dev/null &
    nspawn_pid=$!
    leader=""
    state=""
    for _ in $(seq 600); do
      R kill -0 "$nspawn_pid" 2>/dev/null || break
      leader="$(find_leader "$nspawn_pid" || true)"
      if [ -n "$leader" ]; then
        state="$(booted systemctl is-system-running 2>/dev/null || true)"
        case "$state" in running | degraded) break ;; esac
      fi
      sleep 0.1
    done
    case "$state" in
      running | degraded)
        ok "the container booted ($state)"
        [ "$state" = running ] || booted systemctl --failed --no-pager || true
        ;;
      *)
        tail -20 "$boot_log" | sed 's/^/      /'
        R kill "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
        nspawn_pid=""
        skip_boot "systemd-nspawn did not boot the chroot within 60 s (log: $boot_log)"
        ;;
    esac
    if [ -n "$nspawn_pid" ]; then
      step "systemd: the units (docs/install-appliance.md)"
      expect_exit "systemd-analyze verify, units as installed" 0 booted env SYSTEMD_LOG_LEVEL=notice \
        systemd-analyze verify --man=no pass-agent.service pass-agent.timer pass-home.service
      expect_eq "pass-agent.timer enabled" "$(booted systemctl is-enabled pass-agent.timer || true)" enabled
      expect_eq "pass-agent.timer active" "$(booted systemctl is-active pass-agent.timer || true)" active
      expect_eq "pass-home.service enabled" "$(booted systemctl is-enabled pass-home.service || true)" enabled
      expect_eq "pass-home.service active" "$(booted systemctl is-active pass-home.service || true)" active
      # The home is active once started; it listens a moment later.
      journal=""
      for _ in $(seq 100); do
        journal="$(booted journalctl -u pass-home --no-pager -o cat 2>/dev/null || true)"
        printf '%s\n' "$journal" | grep -q '"event":"listening"' && break
        sleep 0.1
      done
      expect_match "journal: pass-home listens on 9455 in its sandbox" "$journal" \
        '"event":"listening".*"port":9455'
      # A timer tick may start a run meanwhile; test then finds the run lock taken.
      for _ in 1 2 3 4 5; do
        rc=0
        out="$(booted runuser -u pass -- pass-agent test 2>&1)" || rc=$?
        printf '%s\n' "$out" | grep -q '\[locked\]' || break
        sleep 2
      done
      expect_eq "pass-agent test exit code" "$rc" 0
      expect_match "test: accepted" "$out" '^test: accepted by https://localhost:9455'
      expect_exit "systemctl start pass-agent.service" 0 booted systemctl start pass-agent.service
      expect_eq "pass-agent.service result" \
        "$(booted systemctl show -p Result --value pass-agent.service)" success
      expect_exit "journalctl -u pass-agent" 0 booted journalctl -u pass-agent --no-pager -o cat &&
        expect_match "the run in the sandbox delivered the heartbeat" "$out" 'run: heartbeat spooled, delivered 1,'
      expect_exit "pass-agent status" 0 booted runuser -u pass -- pass-agent status &&
        expect_match "status: last error none" "$out" 'last error: +none'
      expect_exit "pass-home agents" 0 booted runuser -u pass-home -- pass-home agents \
        --state /var/lib/pass-home && expect_match "the home lists the agent" "$out" "$agent_id"
      booted mkdir -p /etc/systemd/system/pass-agent.timer.d
      printf '[Timer]\nOnCalendar=\nOnCalendar=*:0/10\n' |
        R nsenter -t "$leader" -a tee /etc/systemd/system/pass-agent.timer.d/interval.conf >/dev/null
      booted systemctl daemon-reload
      expect_match "the interval drop-in" "$(booted systemctl show -p TimersCalendar pass-agent.timer)" \
        'OnCalendar=\*-\*-\* \*:00/10:00'
      booted systemctl list-timers --no-pager pass-agent.timer | sed 's/^/      /'
      for unit in pass-home.service pass-agent.service; do
        check_exposure "systemd-analyze security $unit (booted)" \
          "$(booted systemd-analyze security --no-pager "$unit" 2>&1 || true)"
      done
      step "systemd: an upgrade (reinstall) and a stop"
      pid_before="$(booted systemctl show -p MainPID --value pass-home.service)"
      booted systemctl disable --now pass-agent.timer >/dev/null 2>&1
      expect_exit "apt-get install --reinstall, systemd running" 0 \
        booted sh -c "cd /root && apt-get install -y --reinstall $a $h"
      pid_after="$(booted systemctl show -p MainPID --value pass-home.service)"
      if [ "$pid_after" != 0 ] && [ "$pid_after" != "$pid_before" ]; then
        ok "the upgrade restarted pass-home (pid $pid_before, now $pid_after)"
      else
        bad "the upgrade did not restart pass-home (pid $pid_before, now $pid_after)"
      fi
      expect_eq "a timer disabled by the administrator stays disabled" \
        "$(booted systemctl is-enabled pass-agent.timer || true)" disabled
      booted systemctl enable --now pass-agent.timer >/dev/null 2>&1
      expect_exit "systemctl stop pass-home" 0 booted systemctl stop pass-home.service
      expect_eq "pass-home exit status after stop" \
        "$(booted systemctl show -p ExecMainStatus --value pass-home.service)" 0
      expect_eq "pass-home result after stop" \
        "$(booted systemctl show -p Result --value pass-home.service)" success
      booted systemctl start pass-home.service
      expect_exit "apt-get remove, systemd running" 0 booted apt-get remove -y pass-agent pass-home
      for unit in pass-agent.timer pass-home.service; do
        expect_eq "$unit stopped by remove" "$(booted systemctl is-active "$unit" || true)" inactive
      done
      step "systemd: power off"
      if stop_container; then
        ok "the container powered off"
      else
        bad "the container did not power off within 30 s of SIGTERM (killed)"
      fi
    fi
  fi
fi

step "done"
