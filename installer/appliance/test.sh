#!/usr/bin/env bash
# The appliance boot test: builds the pass-agent/pass-home .debs (or takes --debs), starts a real
# home (pass-home serve on 127.0.0.1, ephemeral port), writes an appliance input for QEMU user
# networking (10.0.2.15/24, gateway 10.0.2.2 = the host's 127.0.0.1, DNS 10.0.2.3), builds the
# image with build.sh, checks the qcow2, OVA and VHD, boots the qcow2 under qemu-system-x86_64
# from BIOS and then from UEFI (OVMF), reads the status block from the serial console and checks
# the network, the timer, check-config, the listening ports, the first heartbeat at the home
# and an SSH login; then builds and boots a second image with SSH off.
#
#   installer/appliance/test.sh [--debs DIR] [--form FILE] [--quick] [--accel auto|kvm|tcg]
#
# --form: a new-customer form for `pass-home onboard` (@HOSTNAME@, @SSH@ are replaced); without
#         it a built-in form.
# --quick: one image (SSH on), BIOS boot only, no OVA/VHD checks beyond the first build.
# --accel: auto (default) uses KVM when /dev/kvm works and falls back to TCG when KVM cannot
#          run the guest; tcg forces software emulation.
# Runs as root (build.sh needs it). Environment: PASS_APPLIANCE_WORK (build/appliance-test),
# PASS_APPLIANCE_KEEP=1 keeps the work directory, PASS_HOME_BIN (a pass-home to use instead of
# the one in the .deb), PASS_APPLIANCE_BOOT_DEADLINE (seconds from
# qemu start to the status block; default 240 with KVM, 900 with TCG).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${PASS_APPLIANCE_WORK:-$repo/build/appliance-test}"
debs="" form="" quick=0 accel=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --debs) debs="$(cd "$2" && pwd)"; shift 2 ;;
    --form) form="$(realpath "$2")"; shift 2 ;;
    --quick) quick=1; shift ;;
    --accel) accel="$2"; shift 2 ;;
    *) echo "usage: $0 [--debs DIR] [--form FILE] [--quick] [--accel auto|kvm|tcg]" >&2; exit 2 ;;
  esac
done
case "$accel" in auto | kvm | tcg) ;; *) echo "--accel: auto, kvm or tcg" >&2; exit 2 ;; esac

PASS_LOG=appliance
. "$repo/scripts/lib.sh"

home_pid=""
qemu_pid=""
mon_pid=""
stop_qemu() {
  [ -z "$mon_pid" ] || kill "$mon_pid" 2>/dev/null
  mon_pid=""
  [ -n "$qemu_pid" ] || return 0
  kill "$qemu_pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$qemu_pid" 2>/dev/null
  wait "$qemu_pid" 2>/dev/null
  qemu_pid=""
}
cleanup() {
  local rc=$?
  set +e
  stop_qemu
  if [ -n "$home_pid" ]; then
    kill "$home_pid" 2>/dev/null
    wait "$home_pid" 2>/dev/null
  fi
  if [ "${PASS_APPLIANCE_KEEP:-0}" = 1 ]; then
    say "kept $work"
  else
    rm -rf "$work/images" "$work/out-"* "$work/vm-"*
  fi
  summary || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0): the image build needs it"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

step "host tools"
need_packages qemu-system-x86 qemu-utils ovmf
ok "qemu-system-x86_64, qemu-img, OVMF"

package_debs "$debs" "$work"

step "the home (pass-home serve on 127.0.0.1, ephemeral port)"
rm -rf "$work/bin" "$work/home" "$work/serve"
mkdir -p "$work/bin" "$work/serve"
if [ -n "${PASS_HOME_BIN:-}" ]; then
  cp "$PASS_HOME_BIN" "$work/bin/pass-home"
else
  tree="$(mktemp -d)"
  dpkg-deb -x "$home_deb" "$tree"
  cp "$tree/usr/bin/pass-home" "$work/bin/"
  rm -rf "$tree"
fi
pass_home="$work/bin/pass-home"
"$pass_home" init --state "$work/home" --name 10.0.2.2 --name 127.0.0.1 >/dev/null ||
  die "pass-home init failed"
"$pass_home" serve --state "$work/home" --listen 127.0.0.1:0 --admin-listen off \
  --port-file "$work/serve/port" >"$work/serve/log" 2>&1 &
home_pid=$!
port=""
for _ in $(seq 100); do
  port="$(cat "$work/serve/port" 2>/dev/null || true)"
  [ -n "$port" ] && break
  kill -0 "$home_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || {
  sed 's/^/#   /' "$work/serve/log"
  die "pass-home serve did not listen within 10 s"
}
ok "pass-home serve listens on 127.0.0.1:$port (the guest reaches it as 10.0.2.2:$port)"

# The form for `pass-home onboard`: QEMU user networking's addresses; two Nimble arrays whose
# management address is the host (10.0.2.2), where nothing listens on its REST port, so that a
# collection fails at once and the heartbeat still goes out; the second's password is on-site.
write_form() { # NAME SSH DIR
  local key_line=""
  [ "$2" = off ] || key_line="    <ssh-key key=\"$(cat "$work/ssh/id.pub")\"/>"
  printf 'not-a-real-password\n' >"$3/nimble.txt"
  # A password typed in on site: the image is built without it (SSH on only: the form refuses
  # "on-site" without a way to log in).
  local on_site="file:nimble.txt"
  [ "$2" = off ] || on_site="on-site"
  cat >"$3/form.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<new-customer-form schema="1">
  <customer name="ACME Bank" site="Test Lab" time-zone="Europe/Berlin">
    <contact name="Dana Ops" role="management" email="dana.ops@acme.example"/>
  </customer>
  <appliance hostname="$1" hypervisor="kvm" ssh="$2" domain="test.example">
    <interface address="10.0.2.15" netmask="255.255.255.0" gateway="10.0.2.2"/>
    <dns server="10.0.2.3"/>
    <ntp server="10.0.2.2"/>
$key_line
  </appliance>
  <array family="nimble" model="AF40" serial="AF-109084" name="Nimble-1"
         management="10.0.2.2" user="guest" password="file:nimble.txt"/>
  <array family="nimble" model="HF20" serial="AF-109085" name="Nimble-2"
         management="10.0.2.2" user="guest" password="$on_site"/>
</new-customer-form>
EOF
}

# make_input NAME SSH -> $input (an OUT/appliance directory) and $agent_id
make_input() {
  local name="$1" ssh="$2" dir="$work/in-$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ -n "$form" ]; then
    cp -r "$(dirname "$form")"/. "$dir/" 2>/dev/null || true
    sed -e "s/@HOSTNAME@/$name/g" -e "s/@SSH@/$ssh/g" "$form" >"$dir/form.xml"
  else
    write_form "$name" "$ssh" "$dir"
  fi
  "$pass_home" onboard --state "$work/home" --form "$dir/form.xml" --out "$dir/out" \
    --endpoint "https://10.0.2.2:$port" >"$dir/onboard.log" 2>&1 || {
    sed 's/^/#   /' "$dir/onboard.log"
    die "pass-home onboard failed"
  }
  input="$dir/out/appliance"
  agent_id="$(sed -n 's/.*<identity id="\([^"]*\)".*/\1/p' "$input/bundle/agent.xml" | head -1)"
  ok "input for $name by pass-home onboard (agent $agent_id, ssh $ssh)"
}

ssh_ok=0
if command -v ssh-keygen >/dev/null && command -v ssh >/dev/null; then
  rm -rf "$work/ssh"
  mkdir -p "$work/ssh"
  ssh-keygen -q -t ed25519 -N '' -C pass-admin@appliance-test -f "$work/ssh/id" && ssh_ok=1
fi
if [ "$ssh_ok" = 0 ]; then
  mkdir -p "$work/ssh"
  echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm0w+9D3l1cOAQj7P1rS0ck6XgGmS0p7kq1h6CwXz2H test" >"$work/ssh/id.pub"
  say "no ssh client on this host: the SSH login checks are skipped"
fi

step "input (SSH on)"
make_input pass-test-ssh on
input_on="$input"
agent_on="$agent_id"

step "build.sh (SSH on; qcow2, OVA, VHD)"
out_on="$work/out-ssh"
build_started=$(date +%s%N)
"$here/build.sh" --input "$input_on" --debs "$debs" --out "$out_on" --work "$work/images" ||
  die "build.sh failed"
ok "build.sh in $(elapsed "$build_started") s"

step "the image files"
gib8=$((8 * 1024 * 1024 * 1024))
info() { # FILE FIELD -> a field of qemu-img info --output=json
  qemu-img info --output=json "$1" | sed -n "s/^ *\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -1
}
q="$out_on/pass-test-ssh.qcow2"
v="$out_on/pass-test-ssh.vhd"
o="$out_on/pass-test-ssh.ova"
for f in "$q" "$v" "$o" "$out_on/pass-test-ssh.packages" "$out_on/SHA256SUMS"; do
  [ -s "$f" ] && ok "$(basename "$f") ($(du -h "$f" | cut -f1))" || bad "$f is missing or empty"
done
expect_eq "qcow2 format" "$(info "$q" format)" qcow2
expect_eq "qcow2 virtual size" "$(info "$q" virtual-size)" "$gib8"
expect_eq "VHD format" "$(info "$v" format)" vpc
expect_eq "VHD virtual size" "$(info "$v" virtual-size)" "$gib8"
(cd "$out_on" && sha256sum --quiet -c SHA256SUMS) && ok "SHA256SUMS verifies" || bad "SHA256SUMS does not verify"
expect_match "package list has pass-agent, the kernel, openssh-server" \
  "$(cat "$out_on/pass-test-ssh.packages")" '^pass-agent=0'
for p in linux-image-amd64 openssh-server unattended-upgrades systemd-timesyncd; do
  grep -q "^$p=" "$out_on/pass-test-ssh.packages" && ok "package $p" || bad "package $p is not in the image"
done
for p in rpcbind exim4-base exim4-daemon-light postfix; do
  grep -q "^$p=" "$out_on/pass-test-ssh.packages" && bad "package $p is in the image" || ok "no $p"
done
expect_eq "OVA members in order" "$(tar -tf "$o" | tr '\n' ' ')" \
  "pass-test-ssh.ovf pass-test-ssh-disk1.vmdk pass-test-ssh.mf "
ova_dir="$work/vm-ova"
rm -rf "$ova_dir"
mkdir -p "$ova_dir"
tar -C "$ova_dir" -xf "$o"
ovf="$(cat "$ova_dir/pass-test-ssh.ovf")"
expect_match "OVF 1.0 envelope" "$ovf" '<Envelope ovf:version="1.0".*xmlns="http://schemas.dmtf.org/ovf/envelope/1"'
cpu_item="$(printf '%s\n' "$ovf" | grep -A5 'Number of virtual CPUs' | tr -d ' \n')"
expect_match "OVF: 1 vCPU" "$cpu_item" '<rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity>'
mem_item="$(printf '%s\n' "$ovf" | grep -B1 -A5 'Memory size' | tr -d ' \n')"
expect_match "OVF: 1024 MB" "$mem_item" 'byte\*2\^20.*<rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity>'
expect_match "OVF: 8 GB disk" "$ovf" '<Disk ovf:capacity="8" ovf:capacityAllocationUnits="byte \* 2\^30"'
expect_eq "OVF: NICs" "$(grep -c '<rasd:ResourceType>10</rasd:ResourceType>' <<<"$ovf")" 1
expect_match "OVF: firmware" "$ovf" 'vmw:key="firmware" vmw:value="bios"'
expect_match "OVF: File size is the VMDK's" "$ovf" \
  "ovf:href=\"pass-test-ssh-disk1.vmdk\" ovf:id=\"file1\" ovf:size=\"$(stat -c %s "$ova_dir/pass-test-ssh-disk1.vmdk")\""
if command -v xmllint >/dev/null; then
  xmllint --noout "$ova_dir/pass-test-ssh.ovf" && ok "OVF is well-formed XML" || bad "OVF is not well-formed XML"
fi
mf_ok=1
while read -r line; do
  f="$(sed -E 's/^SHA256\(([^)]*)\)= .*/\1/' <<<"$line")"
  want="${line##*= }"
  [ "$(sha256sum "$ova_dir/$f" | cut -d' ' -f1)" = "$want" ] || mf_ok=0
done <"$ova_dir/pass-test-ssh.mf"
[ "$(wc -l <"$ova_dir/pass-test-ssh.mf")" = 2 ] || mf_ok=0
[ "$mf_ok" = 1 ] && ok "OVA manifest: SHA256 of the OVF and the VMDK" || bad "OVA manifest does not match"
vmdk="$ova_dir/pass-test-ssh-disk1.vmdk"
expect_eq "VMDK format" "$(info "$vmdk" format)" vmdk
expect_eq "VMDK virtual size" "$(info "$vmdk" virtual-size)" "$gib8"
expect_match "VMDK is streamOptimized" "$(qemu-img info "$vmdk")" 'create type: streamOptimized'
rm -rf "$ova_dir"

# ---------------------------------------------------------------------------------------------
# Booting. KVM when it works; some nested hosts expose /dev/kvm but cannot run this guest (qemu
# aborts setting MSRs with -cpu host): then TCG.
vm_accel=tcg
if [ "$accel" != tcg ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then vm_accel=kvm; fi
[ "$accel" != kvm ] || [ "$vm_accel" = kvm ] || die "--accel kvm: /dev/kvm is not usable"

# boot NAME FIRMWARE DISK -> starts qemu on DISK (an overlay), the console in $vm/console.log
vm=""
boot() {
  local name="$1" firmware="$2" disk="$3" cpu=() accel_args=() fw=() fwd="" sshport=""
  vm="$work/vm-$name-$firmware"
  mkdir -p "$vm"
  rm -f "$vm/console.log" "$vm/mon.in" "$vm/mon.out"
  mkfifo "$vm/mon.in" "$vm/mon.out"
  if [ "$vm_accel" = kvm ]; then accel_args=(-accel kvm -cpu host); else accel_args=(-accel tcg); fi
  if [ "$firmware" = uefi ]; then
    [ -f "$vm/vars.fd" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vm/vars.fd"
    fw=(-drive "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
      -drive "if=pflash,format=raw,file=$vm/vars.fd")
  fi
  ssh_port=""
  if [ "$ssh_ok" = 1 ]; then
    # A free port on 127.0.0.1 for the guest's SSH (hostfwd binds 127.0.0.1 only).
    for _ in $(seq 50); do
      sshport=$((20000 + RANDOM % 40000))
      ss -Htln "sport = :$sshport" | grep -q . || break
    done
    fwd=",hostfwd=tcp:127.0.0.1:$sshport-:22"
    ssh_port="$sshport"
  fi
  qemu-system-x86_64 "${accel_args[@]}" -machine pc -m 1024 -smp 1 "${fw[@]}" \
    -drive "file=$disk,if=virtio,format=qcow2" \
    -nic "user,model=virtio-net-pci,ipv6=off$fwd" \
    -display none -serial "file:$vm/console.log" \
    -chardev "pipe,id=mon0,path=$vm/mon" -mon chardev=mon0,mode=readline \
    -no-reboot </dev/null >"$vm/qemu.log" 2>&1 &
  qemu_pid=$!
  # Nobody else reads the monitor's output; keep its pipe drained.
  cat "$vm/mon.out" >/dev/null 2>&1 &
  mon_pid=$!
  boot_started=$(date +%s%N)
}

# wait_status DEADLINE -> 0 when the console shows the status block's end marker
wait_status() {
  local deadline=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if grep -q '=== PASS appliance status: end ===' "$vm/console.log" 2>/dev/null; then
      return 0
    fi
    kill -0 "$qemu_pid" 2>/dev/null || return 2
    sleep 1
  done
  return 1
}

# The last status block of the console, without the terminal's carriage returns.
status_block() {
  tr -d '\r' <"$vm/console.log" | sed -n '/=== PASS appliance status: begin ===/,/=== PASS appliance status: end ===/p' |
    awk '/status: begin/ {buf=""} {buf = buf $0 "\n"} END {printf "%s", buf}'
}

# power_off -> ACPI power button through the monitor; waits for qemu to exit
power_off() {
  local deadline=$(($(date +%s) + 120))
  echo system_powerdown >"$vm/mon.in"
  while kill -0 "$qemu_pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.5; done
  if kill -0 "$qemu_pid" 2>/dev/null; then
    bad "the guest did not power off within 120 s of the ACPI power button"
    stop_qemu
  else
    wait "$qemu_pid" 2>/dev/null
    qemu_pid=""
    stop_qemu
    ok "the guest powered off (ACPI power button)"
  fi
}

# A value of the current input's appliance.env (written by pass-home onboard, shell-quoted).
appliance_env() { (. "$input/appliance.env" && eval "printf '%s' \"\${$1:-}\""); }
on_site_secrets() { appliance_env PASS_ON_SITE_SECRETS; }
# Whether the on-site passwords of the disk being booted were typed in (over SSH, first boot).
on_site_typed=0

# run_boot NAME FIRMWARE DISK SSH AGENT -> boots and checks; heartbeat check when FIRST=1
run_boot() {
  local name="$1" firmware="$2" disk="$3" ssh="$4" agent="$5" first="$6" deadline rc=0 block
  step "boot $name from $firmware ($vm_accel)"
  boot "$name" "$firmware" "$disk"
  if [ "$vm_accel" = kvm ]; then deadline="${PASS_APPLIANCE_BOOT_DEADLINE:-240}"; else deadline="${PASS_APPLIANCE_BOOT_DEADLINE:-900}"; fi
  wait_status "$deadline" || rc=$?
  # KVM that cannot run the guest (qemu aborts) or hangs it (no kernel output): TCG from now on.
  kvm_failed=""
  if [ "$vm_accel" = kvm ] && [ "$accel" = auto ]; then
    if [ "$rc" = 2 ]; then
      kvm_failed="KVM cannot run the guest here ($(head -c 300 "$vm/qemu.log" | tr '\n' ' '))"
    elif [ "$rc" = 1 ] && ! grep -q 'Linux version' "$vm/console.log"; then
      kvm_failed="KVM: no kernel output within $deadline s (a nested host that hangs the guest)"
    fi
  fi
  if [ -n "$kvm_failed" ]; then
    say "$kvm_failed; TCG from now on"
    stop_qemu
    vm_accel=tcg
    boot "$name" "$firmware" "$disk"
    deadline="${PASS_APPLIANCE_BOOT_DEADLINE:-900}"
    rc=0
    wait_status "$deadline" || rc=$?
  fi
  if [ "$rc" != 0 ]; then
    tr -d '\r' <"$vm/console.log" | strings | tail -30 | sed 's/^/#   /'
    sed 's/^/#   /' "$vm/qemu.log"
    bad "$name/$firmware: no status block on the console within $deadline s ($vm_accel)"
    stop_qemu
    return 1
  fi
  ok "$name/$firmware: status block on the serial console after $(elapsed "$boot_started") s ($vm_accel)"
  block="$(status_block)"
  printf '%s\n' "$block" | sed 's/^/#   /'
  expect_match "GRUB ran" "$(tr -d '\r' <"$vm/console.log")" 'GRUB'
  expect_match "hostname" "$block" "^hostname: $name\$"
  expect_match "eth0 has 10.0.2.15/24" "$block" '^interface: eth0 up 10\.0\.2\.15/24 '
  expect_match "default gateway 10.0.2.2" "$block" '^gateway: 10\.0\.2\.2$'
  expect_match "DNS 10.0.2.3" "$block" '^dns: 10\.0\.2\.3 ?$'
  expect_match "pass-agent.timer active" "$block" '^pass-agent\.timer: active$'
  expect_match "the boot's agent run succeeded" "$block" '^pass-agent last run: success, exit 0$'
  # check-config names what the arrays still lack here: the passwords typed in on site
  # (until the first boot's SSH login below types them in) and the SNM2 CLI, which the
  # engineer copies in after deployment.
  local pending=() f
  if [ "$on_site_typed" = 0 ]; then
    for f in $(on_site_secrets); do pending+=("password-file: cannot open /etc/pass/secrets/$f"); done
  fi
  [ "$(appliance_env PASS_NEEDS_SNM2)" = yes ] && pending+=("snm2-dir: /opt/snm2/auunitinfo is missing")
  if [ "${#pending[@]}" = 0 ]; then
    expect_match "check-config ok" "$block" '^check-config: ok$'
    expect_match "check-config names the agent" "$block" "agent.xml: ok \\(agent $agent, .*2 array"
  else
    expect_match "check-config: FAILED while the arrays lack something" "$block" '^check-config: FAILED \(exit 2\)$'
    for f in "${pending[@]}"; do
      expect_match "check-config names it: $f" "$block" "agent\\.xml:[0-9]+: ${f//./\\.}"
    done
  fi
  # The arrays behind the test's QEMU network are not there: the last error may name one of them
  # (docs/agent.md, status), but never a failed delivery to the home.
  expect_match "the agent's last error: none, or an array's" "$block" \
    '^  last error: +(none|(hitachi_svp|hitachi_df|hpe_3par|nimble) [^ ]+: .*)$'
  local ports
  # systemd-timesyncd's NTP client socket (UDP, ephemeral port) is not a service.
  ports="$(printf '%s\n' "$block" | sed -n 's/^listening: //p' | grep -v '^udp [^ ]* systemd-timesyn$' |
    sed 's/ [^ ]*$//' | sort | tr '\n' ' ')"
  if [ "$ssh" = on ]; then
    expect_eq "listening ports: SSH only" "$ports" "tcp 0.0.0.0:22 tcp [::]:22 "
    expect_match "ssh enabled and active" "$block" '^ssh: enabled active$'
    expect_match "SSH host key made at first boot" "$block" '^ssh host key: \(ED25519\) SHA256:'
  else
    expect_eq "listening ports: none" "$ports" ""
    expect_match "ssh masked and inactive" "$block" '^ssh: masked inactive$'
  fi
  if [ "$first" = 1 ]; then
    local seen="" until=$(($(date +%s) + 60))
    while [ "$(date +%s)" -lt "$until" ]; do
      seen="$("$pass_home" agents --state "$work/home" 2>/dev/null | grep -F "$agent" || true)"
      printf '%s\n' "$seen" | grep -qE '[0-9]{4}-[0-9]{2}-[0-9]{2}T' && break
      sleep 1
    done
    expect_match "the home has the appliance's first heartbeat (pass-home agents)" "$seen" \
      "$agent .* [0-9]{4}-[0-9]{2}-[0-9]{2}T"
  fi
  if [ "$ssh" = on ] && [ "$ssh_ok" = 1 ]; then
    local o=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
      -o ConnectTimeout=30 -o LogLevel=ERROR -p "$ssh_port")
    local who
    who="$(ssh "${o[@]}" -i "$work/ssh/id" pass-admin@127.0.0.1 'id -un; sudo -n id -un' 2>&1 || true)"
    expect_eq "SSH key login as pass-admin, sudo to root" "$(printf '%s' "$who" | tr '\n' ' ')" "pass-admin root"
    if ssh "${o[@]}" -i "$work/ssh/id" root@127.0.0.1 true >/dev/null 2>&1; then
      bad "root may log in over SSH"
    else
      ok "no root login over SSH"
    fi
    local methods
    methods="$(ssh "${o[@]}" -o PreferredAuthentications=none pass-admin@127.0.0.1 true 2>&1 || true)"
    expect_match "SSH offers public key authentication only" "$methods" '\(publickey\)'
    local extra
    extra="$(ssh "${o[@]}" -i "$work/ssh/id" pass-admin@127.0.0.1 \
      'sudo -n ss -Hltn | wc -l; findmnt -no FSTYPE /tmp; test -d /var/log/journal/$(cat /etc/machine-id) && echo persistent; systemctl is-active systemd-networkd; cat /etc/machine-id | wc -c' 2>&1 || true)"
    expect_eq "in the guest: listening sockets, /tmp, journal, networkd, machine-id" \
      "$(printf '%s\n' "$extra" | tr '\n' ' ')" "2 tmpfs persistent active 33 "
    if [ "$on_site_typed" = 0 ] && [ -n "$(on_site_secrets)" ]; then
      # docs/onboarding.md, "Passwords on site": the file made empty, then the password written.
      local typed
      for f in $(on_site_secrets); do
        ssh "${o[@]}" -i "$work/ssh/id" pass-admin@127.0.0.1 \
          "sudo -n install -o pass -g pass -m 0600 /dev/null /etc/pass/secrets/$f &&
           printf 'not-a-real-password\n' | sudo -n tee /etc/pass/secrets/$f >/dev/null" 2>&1 || true
      done
      on_site_typed=1
      typed="$(ssh "${o[@]}" -i "$work/ssh/id" pass-admin@127.0.0.1 \
        'sudo -n runuser -u pass -- pass-agent check-config' 2>&1 || true)"
      if [ "$(appliance_env PASS_NEEDS_SNM2)" = yes ]; then
        expect_match "with the on-site passwords in, check-config names only the SNM2 CLI" "$typed" \
          "problem\\(s\\) with the arrays' settings"
      else
        expect_match "with the on-site passwords in, check-config: ok" "$typed" \
          "agent.xml: ok \\(agent $agent, .*2 array"
      fi
    fi
  fi
  power_off
}

step "overlays"
disk_on="$work/vm-disk-ssh.qcow2"
rm -f "$disk_on"
qemu-img create -q -f qcow2 -b "$q" -F qcow2 "$disk_on"
ok "overlay on $(basename "$q") (the built image stays as it was)"
run_boot pass-test-ssh bios "$disk_on" on "$agent_on" 1 || true
if [ "$quick" = 0 ]; then
  # The same disk again, now from UEFI: a second boot of the same appliance.
  run_boot pass-test-ssh uefi "$disk_on" on "$agent_on" 0 || true

  step "input (SSH off)"
  make_input pass-test-nossh off
  on_site_typed=0
  step "build.sh (SSH off; qcow2 only)"
  out_off="$work/out-nossh"
  build_started=$(date +%s%N)
  "$here/build.sh" --input "$input" --debs "$debs" --out "$out_off" --work "$work/images" \
    --formats qcow2 || die "build.sh (SSH off) failed"
  ok "build.sh (SSH off, qcow2 only) in $(elapsed "$build_started") s"
  disk_off="$work/vm-disk-nossh.qcow2"
  rm -f "$disk_off"
  qemu-img create -q -f qcow2 -b "$out_off/pass-test-nossh.qcow2" -F qcow2 "$disk_off"
  run_boot pass-test-nossh uefi "$disk_off" off "$agent_id" 1 || true
fi
step "done"
