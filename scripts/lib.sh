# shellcheck shell=bash
# Sourced, never run, by the project's shell scripts: what each of them needs and once had its
# own copy of.
#
#   . "$repo/scripts/lib.sh"
#
# Installing what is missing, from Debian's archive only:
#   as_root CMD...          runs CMD as root: directly when root, else through sudo ($sudo:
#                           "sudo" or empty, for a command that must be a child of the script)
#   need_packages PKG...    apt-get installs those PKG that dpkg does not list as installed
#                           (one `apt-get update` first); nothing when all are there
#   need_commands CMD=PKG…  need_packages of each PKG whose CMD is not on the PATH
# A Debian system in a folder, for the package and appliance tests and the image build:
#   fresh_root SUITE MIRROR ROOT WORK
#                           ROOT afresh from a minbase debootstrap of SUITE for this host's
#                           architecture; the debootstrap is kept as a tarball in $pass_cache
#                           (made in WORK, again when 7 days old). Sets $root_key, the cache key
#                           for ROOT's companions (its .deb archives)
#   package_debs DIR WORK   sets $agent_deb and $home_deb to the .debs in DIR or, DIR empty, to
#                           those installer/debian/build.sh builds into WORK/debs ($debs: the folder)
# Compiling:
#   use_ccache              when ccache is installed: exports its settings for a cache in
#                           $pass_cache/ccache keyed by paths relative to the clone (so a fresh
#                           clone elsewhere hits what the last one compiled) and sets the array
#                           $ccache_cmake to CMake's launcher options; else leaves it empty
# Progress and results, all on stderr, each line led by "$PASS_LOG: " when PASS_LOG is set:
#   step WHAT               "== WHAT", after the time the previous step took
#   ok WHAT / bad WHAT      a check passed / failed (counted in $passed / $failed)
#   die WHAT                bad WHAT, then exit 1
#   expect_eq WHAT GOT WANT, expect_match WHAT TEXT REGEX, expect_exit WHAT CODE CMD...
#                           (expect_exit keeps CMD's output in $out; a failed expect_match
#                           shows the text's last lines, or those matching $PASS_FOCUS)
#   elapsed START           seconds since START (a `date +%s%N`), one decimal
#   summary                 "total N s" and "N passed, N failed"; fails when any check failed

pass_cache="${XDG_CACHE_HOME:-$HOME/.cache}/pass"
started=$(date +%s%N)
step_started=$started
passed=0
failed=0

ccache_cmake=()
use_ccache() {
  command -v ccache >/dev/null || return 0
  export CCACHE_DIR="$pass_cache/ccache" CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
  export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-10G}"
  ccache_cmake=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
}

say() { echo "${PASS_LOG:+$PASS_LOG: }$*" >&2; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
as_root() { $sudo "$@"; }

need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >&2 || die "apt-get could not install ${missing[*]}"
}

need_commands() {
  local packages=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || packages+=("${pair#*=}")
  done
  [ ${#packages[@]} -eq 0 ] || need_packages "${packages[@]}"
}

fresh_root() {
  local suite="$1" mirror="$2" root="$3" work="$4" tarball pristine
  root_key="debootstrap-$suite-minbase-$(dpkg --print-architecture)-$(printf '%s' "$mirror" | tr -c 'A-Za-z0-9.' '_')"
  mkdir -p "$pass_cache" "$work"
  tarball="$(find "$pass_cache" -maxdepth 1 -name "$root_key-*.tar.gz" -mtime -7 2>/dev/null | sort | tail -1)"
  if [ -n "$tarball" ]; then
    say "cached: $tarball"
  else
    tarball="$pass_cache/$root_key-$(date -u +%Y%m%d).tar.gz"
    pristine="$work/pristine"
    as_root rm -rf --one-file-system "$pristine"
    say "debootstrap --variant=minbase $suite (about 2 minutes)"
    as_root debootstrap --variant=minbase "$suite" "$pristine" "$mirror" >"$work/debootstrap.log" 2>&1 || {
      tail -20 "$work/debootstrap.log" >&2
      die "debootstrap $suite from $mirror failed (log: $work/debootstrap.log)"
    }
    as_root tar -C "$pristine" --numeric-owner -czf "$tarball.tmp" .
    as_root chown "$(id -u):$(id -g)" "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    as_root rm -rf --one-file-system "$pristine"
    find "$pass_cache" -maxdepth 1 -name "$root_key-*.tar.gz" ! -path "$tarball" -delete
    say "made: $tarball"
  fi
  if findmnt -rn -o TARGET | grep -qF "$root/"; then
    die "something is still mounted under $root from an earlier run; unmount it first"
  fi
  as_root rm -rf --one-file-system "$root"
  as_root mkdir -p "$root"
  as_root tar -C "$root" --numeric-owner -xzpf "$tarball"
}

package_debs() {
  debs="$1"
  if [ -z "$debs" ]; then
    step "installer/debian/build.sh"
    debs="$2/debs"
    rm -rf "$debs"
    "$(dirname "${BASH_SOURCE[0]}")/../installer/debian/build.sh" "$debs" || die "installer/debian/build.sh failed"
  fi
  agent_deb="$(find "$debs" -maxdepth 1 -name 'pass-agent_*.deb' | sort -V | tail -1)"
  home_deb="$(find "$debs" -maxdepth 1 -name 'pass-home_*.deb' | sort -V | tail -1)"
  [ -n "$agent_deb" ] && [ -n "$home_deb" ] || die "no pass-agent_*.deb and pass-home_*.deb in $debs"
  ok "$(basename "$agent_deb"), $(basename "$home_deb")"
}

elapsed() {
  local ms=$((($(date +%s%N) - $1) / 1000000))
  printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100))
}

step() {
  [ "$step_started" = "$started" ] || say "   ($(elapsed "$step_started") s)"
  step_started=$(date +%s%N)
  say "== $*"
}

ok() {
  passed=$((passed + 1))
  say "   ok: $*"
}

bad() {
  failed=$((failed + 1))
  say "FAIL: $*"
}

die() {
  bad "$*"
  exit 1
}

expect_eq() {
  if [ "$2" = "$3" ]; then ok "$1 ($2)"; else bad "$1: got '$2', want '$3'"; fi
}

expect_match() {
  if printf '%s\n' "$2" | grep -qE -- "$3"; then
    ok "$1"
  else
    bad "$1: no line matches /$3/ in:"
    # In a long text (an MSI log) the lines matching $PASS_FOCUS are what matters, when set.
    if [ -n "${PASS_FOCUS:-}" ] && printf '%s\n' "$2" | grep -q -- "$PASS_FOCUS"; then
      printf '%s\n' "$2" | grep -- "$PASS_FOCUS" | tail -20 | sed 's/^/      /' >&2
    else
      printf '%s\n' "$2" | tail -20 | sed 's/^/      /' >&2
    fi
    return 1
  fi
}

expect_exit() {
  local what="$1" want="$2" rc=0
  shift 2
  out="$("$@" 2>&1)" || rc=$?
  if [ "$rc" -eq "$want" ]; then
    ok "$what"
    return 0
  fi
  bad "$what: exit $rc, want $want; output:"
  printf '%s\n' "$out" | tail -20 | sed 's/^/      /' >&2
  return 1
}

summary() {
  say "total $(elapsed "$started") s"
  say "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
