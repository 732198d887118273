#!/usr/bin/env bash
# Builds the PASS appliance VM image from an onboarding directory (`pass-home onboard` writes
# OUT/appliance/) and the pass-agent .deb:
#
#   installer/appliance/build.sh --input OUT/appliance --debs DIR --out OUTDIR
#       [--work DIR] [--formats qcow2,ova,vhd]
#
# writes OUTDIR/<hostname>.qcow2, <hostname>.ova (OVF 1.0 + streamOptimized VMDK + SHA256
# manifest), <hostname>.vhd (dynamic), <hostname>.packages (name=version) and SHA256SUMS.
# A minimal Debian 12 from Debian's archive only (debootstrap --variant=minbase, cached under
# ${XDG_CACHE_HOME:-~/.cache}/pass like installer/debian/test.sh), packages installed in a
# chroot, then one GPT disk assembled in a file without loop devices: a BIOS boot partition
# (GRUB core.img), an EFI system partition (mkfs.fat + mtools) and the ext4 root
# (mke2fs -d). GRUB boots it from BIOS and from UEFI. docs/appliance-image.md describes it.
# Runs as root (or through sudo). Environment: PASS_DEB_MIRROR (http://deb.debian.org/debian),
# PASS_DEB_SECURITY_MIRROR (http://deb.debian.org/debian-security; empty: none) for the build,
# SOURCE_DATE_EPOCH (default: the last commit's time), PASS_APPLIANCE_KEEP=1 keeps the tree.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
files="$here/files"
mirror="${PASS_DEB_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${PASS_DEB_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
suite=bookworm

usage() {
  echo "usage: $0 --input OUT/appliance --debs DIR --out OUTDIR [--work DIR] [--formats qcow2,ova,vhd]" >&2
  exit 2
}
input="" debs="" out="" work="" formats="qcow2,ova,vhd"
while [ $# -gt 0 ]; do
  case "$1" in
    --input) input="${2:-}"; shift 2 || usage ;;
    --debs) debs="${2:-}"; shift 2 || usage ;;
    --out) out="${2:-}"; shift 2 || usage ;;
    --work) work="${2:-}"; shift 2 || usage ;;
    --formats) formats="${2:-}"; shift 2 || usage ;;
    -h | --help) usage ;;
    *) echo "build.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$input" ] && [ -n "$debs" ] && [ -n "$out" ] || usage

PASS_LOG=appliance/build.sh
. "$repo/scripts/lib.sh"
R() { as_root "$@"; }

# ---------------------------------------------------------------------------------------------
step "checking the input $input"
[ -d "$input" ] || die "--input $input: no such directory (pass-home onboard writes OUT/appliance/)"
input="$(cd "$input" && pwd)"
[ -d "$debs" ] || die "--debs $debs: no such directory"
debs="$(cd "$debs" && pwd)"
env_file="$input/appliance.env"
[ -f "$env_file" ] || die "$env_file is missing"

# appliance.env is read, not sourced: KEY='value' lines, comments and blank lines only.
declare -A conf=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  case "$line" in '' | '#'*) continue ;; esac
  if [[ "$line" =~ ^(PASS_[A-Z0-9_]+)=\'([^\']*)\'[[:space:]]*(#.*)?$ ]]; then
    conf[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
  elif [[ "$line" =~ ^(PASS_[A-Z0-9_]+)=([A-Za-z0-9._/:-]*)[[:space:]]*(#.*)?$ ]]; then
    conf[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
  else
    die "$env_file:$lineno: not a KEY='value' line: $line"
  fi
done <"$env_file"
get() { # KEY DEFAULT -> value; a missing key without a default is an error
  if [ -n "${conf[$1]+x}" ]; then
    printf '%s' "${conf[$1]}"
  elif [ $# -ge 2 ]; then
    printf '%s' "$2"
  else
    die "$env_file: $1 is missing"
  fi
}
check() { # KEY VALUE REGEX WHAT
  [[ "$2" =~ $3 ]] || die "$env_file: $1='$2': $4"
}
hostname="$(get PASS_HOSTNAME)" || exit 1
customer="$(get PASS_CUSTOMER '')"
site="$(get PASS_SITE '')"
hypervisor="$(get PASS_HYPERVISOR kvm)"
cpus="$(get PASS_CPUS 1)"
memory_mb="$(get PASS_MEMORY_MB 1024)"
disk_gb="$(get PASS_DISK_GB 8)"
nics="$(get PASS_NICS 1)"
ssh="$(get PASS_SSH on)"
needs_snm2="$(get PASS_NEEDS_SNM2 no)"
time_zone="$(get PASS_TIME_ZONE Etc/UTC)"
on_site_secrets="$(get PASS_ON_SITE_SECRETS '')"
check PASS_HOSTNAME "$hostname" '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' \
  "a host name of lower-case letters, digits and '-' (at most 63), not starting or ending with '-'"
check PASS_HYPERVISOR "$hypervisor" '^(vmware|hyper-v|virtualbox|proxmox|xen|kvm)$' \
  "one of vmware, hyper-v, virtualbox, proxmox, xen, kvm"
check PASS_CPUS "$cpus" '^([1-9]|1[0-6])$' "a number of virtual CPUs from 1 to 16"
check PASS_MEMORY_MB "$memory_mb" '^[0-9]+$' "a number of MB"
[ "$memory_mb" -ge 512 ] && [ "$memory_mb" -le 65536 ] ||
  die "$env_file: PASS_MEMORY_MB='$memory_mb': from 512 to 65536"
check PASS_DISK_GB "$disk_gb" '^[0-9]+$' "a number of GB"
[ "$disk_gb" -ge 4 ] && [ "$disk_gb" -le 1024 ] || die "$env_file: PASS_DISK_GB='$disk_gb': from 4 to 1024"
check PASS_NICS "$nics" '^[12]$' "1 or 2 network interfaces"
check PASS_SSH "$ssh" '^(on|off)$' "on or off"
check PASS_NEEDS_SNM2 "$needs_snm2" '^(yes|no)$' "yes or no"
check PASS_TIME_ZONE "$time_zone" '^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$' "a tz database name such as Europe/Berlin"
case "$customer$site" in *[\<\>\&\"]*) die "$env_file: PASS_CUSTOMER/PASS_SITE may not contain < > & \"" ;; esac

bundle_files=(agent.xml agent-sign.key agent-tls.key agent-tls.crt home-ca.crt home-hpke.pub)
for f in "${bundle_files[@]}"; do
  [ -s "$input/bundle/$f" ] || die "$input/bundle/$f is missing or empty (the agent bundle)"
done
rootfs="$input/rootfs"
need_root=(etc/hostname etc/hosts etc/resolv.conf etc/systemd/network/10-eth0.network)
[ "$nics" = 1 ] || need_root+=(etc/systemd/network/11-eth1.network)
[ "$ssh" = off ] || need_root+=(etc/ssh/authorized_keys/pass-admin)
for f in "${need_root[@]}"; do
  [ -s "$rootfs/$f" ] || die "$rootfs/$f is missing or empty (PASS_NICS=$nics, PASS_SSH=$ssh)"
done
[ "$(tr -d '[:space:]' <"$rootfs/etc/hostname")" = "$hostname" ] ||
  die "$rootfs/etc/hostname says '$(head -c 100 "$rootfs/etc/hostname")', appliance.env PASS_HOSTNAME='$hostname'"
if [ "$ssh" = off ] && [ -e "$rootfs/etc/ssh/authorized_keys/pass-admin" ]; then
  die "$rootfs/etc/ssh/authorized_keys/pass-admin exists but PASS_SSH='off'"
fi
if [ "$ssh" = on ] && ! grep -qE '^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp[0-9]+|sk-[a-z0-9@.-]+) ' \
  "$rootfs/etc/ssh/authorized_keys/pass-admin"; then
  die "$rootfs/etc/ssh/authorized_keys/pass-admin holds no public key line (ssh-ed25519 ...)"
fi
# Every secrets/<file> agent.xml names must be there, except the passwords the form says are
# typed in on the appliance (PASS_ON_SITE_SECRETS: docs/onboarding.md, "Passwords on site").
check PASS_ON_SITE_SECRETS "$on_site_secrets" '^[A-Za-z0-9._ -]*$' "secret file names separated by spaces"
while read -r ref; do
  if [[ " $on_site_secrets " == *" ${ref#secrets/} "* ]]; then
    say "$ref is typed in on the appliance after it boots (on-site); the image has none"
    continue
  fi
  [ -s "$input/$ref" ] || die "$input/bundle/agent.xml names $ref, but $input/$ref is missing or empty"
done < <(grep -oE '(password|key)-file="secrets/[^"]+"' "$input/bundle/agent.xml" |
  sed -E 's/.*="(secrets\/[^"]+)"/\1/' | sort -u)
if [ -d "$input/secrets" ]; then
  bad_name="$(find "$input/secrets" -mindepth 1 ! -type f -o -mindepth 1 -name '.*' | head -1)"
  [ -z "$bad_name" ] || die "$bad_name: secrets/ holds only plain files"
fi
agent_deb="$(ls "$debs"/pass-agent_*_amd64.deb 2>/dev/null | sort -V | tail -1)"
[ -n "$agent_deb" ] || die "no pass-agent_*_amd64.deb in $debs (installer/debian/build.sh DIR makes it)"
IFS=, read -r -a format_list <<<"$formats"
for f in "${format_list[@]}"; do
  case "$f" in qcow2 | ova | vhd) ;; *) die "--formats: '$f' is not one of qcow2, ova, vhd" ;; esac
done
say "$hostname ($customer, $site): $hypervisor, $cpus CPU, $memory_mb MB, $disk_gb GB, $nics NIC(s), ssh $ssh; $(basename "$agent_deb")"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="${work:-$repo/build/appliance/$hostname}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
root="$work/root"
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH="$epoch"
umask 022

# Fixed identifiers derived from the host name: the same form gives the same UUIDs.
uuid_for() {
  local h
  h="$(printf 'pass-appliance/%s/%s' "$hostname" "$1" | sha256sum | cut -c1-32)"
  printf '%s-%s-4%s-%x%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" $((0x${h:16:1} & 3 | 8)) \
    "${h:17:3}" "${h:20:12}"
}
root_uuid="$(uuid_for root-fs)"
hash_seed="$(uuid_for root-fs-hash-seed)"
esp_id="$(printf 'pass-appliance/%s/esp' "$hostname" | sha256sum | cut -c1-8)"

cleanup() {
  local rc=$?
  set +e
  if [ -d "$root" ]; then
    findmnt -rn -o TARGET | grep -F "$root/" | sort -r | while read -r m; do
      R umount "$m" 2>/dev/null || R umount -l "$m"
    done
    if [ "${PASS_APPLIANCE_KEEP:-0}" != 1 ] && ! findmnt -rn -o TARGET | grep -qF "$root/"; then
      R rm -rf --one-file-system "$root"
    fi
  fi
  rm -f "$work/disk.raw"
  [ "$rc" -eq 0 ] || say "failed after $(elapsed "$started") s (work directory $work)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
step "checking host tools"
need_packages debootstrap e2fsprogs dosfstools mtools fdisk qemu-utils grub-common grub-pc-bin \
  grub-efi-amd64-bin
# mke2fs -d copies owners only when it may create files of any owner.
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...): mke2fs -d must keep the files' owners"

# ---------------------------------------------------------------------------------------------
step "base system ($suite minbase, $mirror)"
[ "$(dpkg --print-architecture)" = amd64 ] || die "the appliance is amd64; this host is $(dpkg --print-architecture)"
fresh_root "$suite" "$mirror" "$root" "$work"

ch() {
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$epoch" "$@"
}

# ---------------------------------------------------------------------------------------------
step "installing packages (kernel, systemd, openssh-server, unattended-upgrades, pass-agent)"
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Nothing may start in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  [ -z "$security_mirror" ] || echo "deb $security_mirror $suite-security main"
} >"$root/etc/apt/sources.list"
echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99pass-build"
archives="$pass_cache/$root_key-archives"
mkdir -p "$archives"
find "$archives" -maxdepth 1 -name '*.deb' -exec cp -t "$root/var/cache/apt/archives/" {} +
ch apt-get update -qq >"$work/apt.log" 2>&1 || {
  tail -20 "$work/apt.log" >&2
  die "apt-get update failed (log: $work/apt.log)"
}
# The kernel's initramfs: every storage and network driver (MODULES=most, Debian's default), so
# that the same image boots on each hypervisor's virtual hardware.
mkdir -p "$root/root/debs"
cp "$agent_deb" "$root/root/debs/"
packages=(linux-image-amd64 systemd-sysv systemd-timesyncd dbus unattended-upgrades
  openssh-server sudo iproute2 procps less nano ca-certificates "./debs/$(basename "$agent_deb")")
ch sh -c "cd /root && apt-get install -y --no-install-recommends ${packages[*]}" >>"$work/apt.log" 2>&1 || {
  tail -30 "$work/apt.log" >&2
  die "apt-get install failed (log: $work/apt.log)"
}
ch apt-get -y dist-upgrade >>"$work/apt.log" 2>&1 || die "apt-get dist-upgrade failed (log: $work/apt.log)"
find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n -t "$archives/" {} +
rm -rf "$root/root/debs"
for p in rpcbind exim4-base postfix nfs-common avahi-daemon; do
  if ch dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok'; then
    die "package $p was installed; the appliance must listen on no port but SSH"
  fi
done

# ---------------------------------------------------------------------------------------------
step "configuring the system"
# Files of the onboarding directory, verbatim, owned by root (directories keep the image's).
install_tree() { # SRC DEST-PREFIX
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z) | while IFS= read -r -d '' f; do
    f="${f#./}"
    mode="$(stat -c %a "$1/$f")"
    case "$f" in etc/ssh/authorized_keys/*) mode=0644 ;; esac
    install -D -o root -g root -m "$mode" "$1/$f" "$2/$f"
  done
}
install_tree "$rootfs" "$root"
chmod 0755 "$root/etc/systemd/network"
[ ! -d "$root/etc/ssh/authorized_keys" ] || chmod 0755 "$root/etc/ssh/authorized_keys"

# The site's time zone: unattended-upgrades' 04:00 reboot and the journal's times are local.
[ -f "$root/usr/share/zoneinfo/$time_zone" ] ||
  die "$env_file: PASS_TIME_ZONE='$time_zone' is not in the image's tzdata"
ln -sfn "/usr/share/zoneinfo/$time_zone" "$root/etc/localtime"
echo "$time_zone" >"$root/etc/timezone"
cat >"$root/etc/fstab" <<EOF
# PASS appliance: the root file system; everything that changes is under /var.
UUID=$root_uuid / ext4 defaults,errors=remount-ro 0 1
EOF
# The final sources: Debian's archive and its security archive, over HTTPS (one outbound port,
# 443, in the site's firewall; apt checks the signatures either way).
cat >"$root/etc/apt/sources.list" <<EOF
deb https://deb.debian.org/debian $suite main
deb https://deb.debian.org/debian $suite-updates main
deb https://security.debian.org/debian-security $suite-security main
EOF
rm -f "$root/etc/apt/apt.conf.d/99pass-build" "$root/usr/sbin/policy-rc.d"
install -m 0644 "$files/conf/20auto-upgrades" "$files/conf/52pass-unattended-upgrades" \
  "$root/etc/apt/apt.conf.d/"
# Only Debian-Security may be upgraded unattended (52pass-... clears Debian's default patterns).
origins="$(ch apt-config dump Unattended-Upgrade::Origins-Pattern | grep -c '^Unattended-Upgrade::Origins-Pattern:: ' || true)"
security="$(ch apt-config dump Unattended-Upgrade::Origins-Pattern | grep -c 'label=Debian-Security";$' || true)"
[ "$origins" = 1 ] && [ "$security" = 1 ] ||
  die "unattended-upgrades would use $origins origin pattern(s), want only Debian-Security"
install -D -m 0644 "$files/conf/journald.conf" "$root/etc/systemd/journald.conf.d/pass.conf"
install -d -m 2755 "$root/var/log/journal"
chroot "$root" chgrp systemd-journal /var/log/journal
install -D -m 0644 "$files/conf/wait-online.conf" \
  "$root/etc/systemd/system/systemd-networkd-wait-online.service.d/pass.conf"
install -m 0644 "$root/usr/share/systemd/tmp.mount" "$root/etc/systemd/system/tmp.mount"
install -m 0755 "$files/pass-appliance-status" "$root/usr/local/sbin/pass-appliance-status"
install -m 0644 "$files/units/pass-appliance-status.service" "$files/units/pass-appliance-ssh-keys.service" \
  "$root/etc/systemd/system/"
ch systemctl enable systemd-networkd.service systemd-timesyncd.service tmp.mount \
  pass-appliance-status.service pass-agent.timer >>"$work/apt.log" 2>&1 ||
  die "systemctl enable failed (log: $work/apt.log)"
ch systemctl enable apt-daily.timer apt-daily-upgrade.timer >>"$work/apt.log" 2>&1 || true

# Users: root has no password (no console login with a password anywhere); pass-admin logs in
# with the form's SSH key only and may use sudo.
ch usermod -p '!' root
ch useradd --create-home --shell /bin/bash --groups sudo --comment "PASS appliance administrator" pass-admin
ch usermod -p '*' pass-admin
echo 'pass-admin ALL=(ALL:ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/pass-admin"
chmod 0440 "$root/etc/sudoers.d/pass-admin"
install -m 0644 "$files/conf/sshd.conf" "$root/etc/ssh/sshd_config.d/pass.conf"
install -D -m 0644 "$files/conf/ssh-keys.conf" "$root/etc/systemd/system/ssh.service.d/pass-keys.conf"
rm -f "$root"/etc/ssh/ssh_host_*
if [ "$ssh" = on ]; then
  ch systemctl enable ssh.service >>"$work/apt.log" 2>&1 || die "systemctl enable ssh failed"
else
  # Installed (it keeps getting security updates) but masked: nothing can start it until an
  # administrator runs `systemctl unmask ssh.service && systemctl enable --now ssh.service`.
  ch systemctl disable ssh.service >>"$work/apt.log" 2>&1 || true
  ch systemctl mask ssh.service ssh.socket >>"$work/apt.log" 2>&1 || die "systemctl mask ssh failed"
fi

# The bundle and the array secrets (docs/install-appliance.md, "Where files live").
pass_uid="$(chroot "$root" id -u pass)" || die "the pass-agent package did not create the user pass"
pass_gid="$(chroot "$root" id -g pass)"
for f in agent.xml agent-tls.crt home-ca.crt home-hpke.pub; do
  install -o 0 -g "$pass_gid" -m 0640 "$input/bundle/$f" "$root/etc/pass/$f"
done
for f in agent-sign.key agent-tls.key; do
  install -o "$pass_uid" -g "$pass_gid" -m 0600 "$input/bundle/$f" "$root/etc/pass/$f"
done
install -d -o 0 -g "$pass_gid" -m 0750 "$root/etc/pass/secrets"
if [ -d "$input/secrets" ]; then
  (cd "$input/secrets" && find . -maxdepth 1 -type f -printf '%P\n' | LC_ALL=C sort) | while read -r f; do
    install -o "$pass_uid" -g "$pass_gid" -m 0600 "$input/secrets/$f" "$root/etc/pass/secrets/$f"
  done
fi
if [ "$needs_snm2" = yes ]; then
  # Hitachi's SNM2 CLI is not redistributable: the engineer copies it here after deployment.
  install -d -o 0 -g "$pass_gid" -m 0750 "$root/opt/snm2"
fi
# --config-only: this is not the appliance yet; on-site passwords and the SNM2 CLI come later,
# and the status block at each boot shows what is still missing.
ch runuser -u pass -- pass-agent check-config --config-only >"$work/check-config.log" 2>&1 || {
  cat "$work/check-config.log" >&2
  die "pass-agent check-config fails on the bundle in the image (output above)"
}

{
  echo "PASS appliance $hostname ($customer, $site) - Debian GNU/Linux 12 \\l"
  echo "eth0: \\4{eth0}"
  [ "$nics" = 1 ] || echo "eth1: \\4{eth1}"
  echo "Status: see the block printed at boot, or run pass-appliance-status."
  echo
} >"$root/etc/issue"
cat >"$root/etc/motd" <<EOF

PASS appliance $hostname. The agent's files: /etc/pass (bundle), /var/lib/pass (state).
  pass-appliance-status                      this appliance's network, agent and ports
  runuser -u pass -- pass-agent status       the agent's spool and last delivery
Security updates are installed every day (unattended-upgrades) and reboot at 04:00 if needed.

EOF

# The boot menu, read by GRUB from the root file system for BIOS and UEFI alike. /vmlinuz and
# /initrd.img are the links the kernel package keeps pointing at the newest kernel, so a kernel
# security update needs no boot loader change; .old is the previous one.
[ -e "$root/vmlinuz" ] && [ -e "$root/initrd.img" ] ||
  die "the kernel package made no /vmlinuz and /initrd.img links (/etc/kernel-img.conf do_symlinks)"
cmdline="root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"
mkdir -p "$root/boot/grub"
cat >"$root/boot/grub/grub.cfg" <<EOF
# PASS appliance boot menu (installer/appliance/build.sh); GRUB is not installed as a package.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=2
set default=0
menuentry 'Debian GNU/Linux 12 (PASS appliance)' {
  search --no-floppy --fs-uuid --set=root $root_uuid
  linux /vmlinuz $cmdline
  initrd /initrd.img
}
menuentry 'Debian GNU/Linux 12 (PASS appliance, previous kernel)' {
  search --no-floppy --fs-uuid --set=root $root_uuid
  linux /vmlinuz.old $cmdline
  initrd /initrd.img.old
}
EOF

# ---------------------------------------------------------------------------------------------
step "cleaning the tree (identity, caches, logs)"
ch dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort >"$work/packages"
umount "$root/proc"
ch apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
  "$root"/var/lib/dpkg/*-old "$root"/var/log/*.log "$root"/var/log/apt/* \
  "$root"/var/cache/ldconfig/aux-cache "$root"/root/.bash_history "$root"/tmp/* "$root"/var/tmp/*
# Each VM makes its own machine-id at first boot (an empty file, not a missing one: the root
# may then be read-only).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/var/lib/systemd/random-seed"
find "$root" -xdev -newermt "@$epoch" -print0 | xargs -0r touch -h -d "@$epoch"

# ---------------------------------------------------------------------------------------------
step "assembling the disk (GPT: BIOS boot, EFI system, root ext4)"
disk="$work/disk.raw"
rm -f "$disk"
sector=512
total=$((disk_gb * 1024 * 1024 * 1024 / sector))
bios_start=2048 bios_size=2048
esp_start=4096 esp_size=$((131072 - 4096)) # 62 MiB, ends at 64 MiB
root_start=131072
root_size=$((total - 34 - root_start))
root_size=$((root_size / 8 * 8))
truncate -s $((total * sector)) "$disk"
sfdisk --quiet --no-reread --no-tell-kernel "$disk" <<EOF || die "sfdisk could not write the partition table"
label: gpt
label-id: $(uuid_for disk)
unit: sectors
first-lba: 2048
start=$bios_start, size=$bios_size, type=21686148-6449-6E6F-744E-656564454649, uuid=$(uuid_for part-bios), name="bios"
start=$esp_start, size=$esp_size, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$(uuid_for part-esp), name="esp"
start=$root_start, size=$root_size, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$(uuid_for part-root), name="root"
EOF

# GRUB, with its modules built in (nothing is read from a GRUB directory at boot); both images
# find the root by its UUID and read /boot/grub/grub.cfg there.
early="$work/grub-early.cfg"
printf 'search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\nconfigfile ($root)/boot/grub/grub.cfg\n' \
  "$root_uuid" >"$early"
grub_modules=(part_gpt part_msdos ext2 search search_fs_uuid normal linux configfile echo test
  serial terminal terminfo sleep minicmd gzio)
grub-mkimage -O i386-pc -o "$work/core.img" -c "$early" -p /boot/grub \
  biosdisk "${grub_modules[@]}" || die "grub-mkimage i386-pc failed"
grub-mkimage -O x86_64-efi -o "$work/BOOTX64.EFI" -c "$early" -p /boot/grub \
  "${grub_modules[@]}" fat efi_gop efi_uga all_video || die "grub-mkimage x86_64-efi failed"

# BIOS: GRUB's boot.img in the protective MBR (code area only; the partition table stays),
# pointing at core.img in the BIOS boot partition, whose first sector (diskboot) lists the rest
# of core.img; what grub-bios-setup does for an embedded core.
core_sectors=$((($(stat -c %s "$work/core.img") + sector - 1) / sector))
[ "$core_sectors" -le "$bios_size" ] || die "core.img ($core_sectors sectors) does not fit the BIOS boot partition"
le() { # VALUE BYTES -> little-endian bytes on stdout
  local v=$1 n=$2 i
  for ((i = 0; i < n; i++)); do
    printf "\\x$(printf %02x $((v & 255)))"
    v=$((v >> 8))
  done
}
mbr="$work/mbr.img"
cp /usr/lib/grub/i386-pc/boot.img "$mbr"
le "$bios_start" 8 | dd of="$mbr" bs=1 seek=$((0x5c)) conv=notrunc status=none   # kernel sector
printf '\x90\x90' | dd of="$mbr" bs=1 seek=$((0x66)) conv=notrunc status=none      # drive check off
dd if="$mbr" of="$disk" bs=440 count=1 conv=notrunc status=none
core="$work/core.padded"
cp "$work/core.img" "$core"
truncate -s $((core_sectors * sector)) "$core"
le $((bios_start + 1)) 8 | dd of="$core" bs=1 seek=$((0x1f4)) conv=notrunc status=none
le $((core_sectors - 1)) 2 | dd of="$core" bs=1 seek=$((0x1fc)) conv=notrunc status=none
dd if="$core" of="$disk" bs=$sector seek="$bios_start" conv=notrunc status=none

# UEFI: the removable-media path, which every firmware boots without NVRAM entries.
# (Its "block count mismatch" warning is about the whole file; the size given is the partition's.)
mkfs.fat -F 32 -s 1 -n ESP -i "$esp_id" --invariant --offset="$esp_start" "$disk" $((esp_size / 2)) \
  >"$work/mkfs.fat.log" 2>&1 || {
  cat "$work/mkfs.fat.log" >&2
  die "mkfs.fat failed"
}
export MTOOLS_SKIP_CHECK=1
img="$disk@@$((esp_start * sector))"
mmd -i "$img" ::/EFI ::/EFI/BOOT || die "mmd failed on the EFI system partition"
mcopy -i "$img" -m "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI || die "mcopy BOOTX64.EFI failed"

# The root: ext4 made from the tree, in place at its partition's offset. Features GRUB 2.06
# reads; fixed UUID, hash seed and times.
E2FSPROGS_FAKE_TIME="$epoch" mke2fs -q -F -t ext4 -L root -U "$root_uuid" -b 4096 \
  -O ^metadata_csum_seed,^orphan_file \
  -E "offset=$((root_start * sector)),hash_seed=$hash_seed,root_owner=0:0,lazy_itable_init=0,nodiscard" \
  -d "$root" "$disk" $((root_size * sector / 4096)) >"$work/mke2fs.log" 2>&1 || {
  cat "$work/mke2fs.log" >&2
  die "mke2fs -d could not make the root file system"
}

# ---------------------------------------------------------------------------------------------
mkdir -p "$out"
rm -f "$out/$hostname".{qcow2,ova,vhd,packages} "$out/SHA256SUMS"
has() { [[ ",$formats," == *",$1,"* ]]; }
if has qcow2; then
  step "qcow2"
  qemu-img convert -O qcow2 "$disk" "$out/$hostname.qcow2" || die "qemu-img convert to qcow2 failed"
fi
if has vhd; then
  step "VHD (dynamic)"
  # force_size: the virtual size is exactly the disk's, not rounded to a CHS geometry.
  qemu-img convert -O vpc -o subformat=dynamic,force_size=on "$disk" "$out/$hostname.vhd" ||
    die "qemu-img convert to vpc failed"
fi
if has ova; then
  step "OVA (OVF 1.0, streamOptimized VMDK, SHA256 manifest)"
  ova="$work/ova"
  rm -rf "$ova"
  mkdir -p "$ova"
  vmdk="$hostname-disk1.vmdk"
  qemu-img convert -O vmdk -o subformat=streamOptimized,adapter_type=lsilogic,hwversion=6 \
    "$disk" "$ova/$vmdk" || die "qemu-img convert to streamOptimized vmdk failed"
  vmdk_size="$(stat -c %s "$ova/$vmdk")"
  used_bytes="$(du -B1 "$disk" | cut -f1)"
  "$here/ovf.sh" --name "$hostname" --customer "$customer" --site "$site" --cpus "$cpus" \
    --memory-mb "$memory_mb" --disk-gb "$disk_gb" --nics "$nics" --vmdk "$vmdk" \
    --vmdk-size "$vmdk_size" --populated-size "$used_bytes" >"$ova/$hostname.ovf" ||
    die "ovf.sh could not write the OVF descriptor"
  (cd "$ova" && for f in "$hostname.ovf" "$vmdk"; do
    printf 'SHA256(%s)= %s\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)"
  done) >"$ova/$hostname.mf"
  touch -d "@$epoch" "$ova"/*
  # The OVF must come first in an OVA, the manifest after the disk (OVF 1.0, section 5.3).
  tar -C "$ova" --format=ustar --owner=0 --group=0 --numeric-owner --mode=0644 --mtime="@$epoch" \
    -cf "$out/$hostname.ova" "$hostname.ovf" "$vmdk" "$hostname.mf" || die "tar could not write the OVA"
  rm -rf "$ova"
fi

step "package list and checksums"
cp "$work/packages" "$out/$hostname.packages"
(cd "$out" && sha256sum "$hostname".* >SHA256SUMS)

say "checksums done in $(elapsed "$step_started") s"
ls -l "$out" >&2
say "built $hostname in $(elapsed "$started") s"
