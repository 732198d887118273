#!/usr/bin/env bash
# Builds the Debian packages pass-agent and pass-home from this source tree:
#   installer/debian/build.sh OUTDIR
# writes OUTDIR/pass-agent_<version>_<arch>.deb and OUTDIR/pass-home_<version>_<arch>.deb.
# The binaries come from a build with Debian's hardening flags (PASS_HARDENING,
# cmake/debian-hardening.cmake): by default a Release build of its own in build/debian (no
# tests); with PASS_DEB_FROM=DIR, the build already configured in DIR (the dev preset's
# build/dev in the test command: the packages then cost no second compile). Then staged trees,
# Depends computed by dpkg-shlibdeps, binaries stripped, then dpkg-deb. Offline apart from
# apt-get for missing build tools (through sudo when not root).
# Environment: PASS_DEB_FROM (see above), PASS_JOBS (ninja -j, default 2), PASS_DEB_BUILD_DIR
# (default build/debian), PASS_DEB_MAINTAINER (the Maintainer field).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
PASS_LOG=debian/build.sh
. "$repo/scripts/lib.sh"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
jobs="${PASS_JOBS:-2}"
maintainer="${PASS_DEB_MAINTAINER:-PASS developers <pass-dev@example.com>}"
umask 022

step "build tools"
"$repo/scripts/install-deps.sh"
need_commands dpkg-deb=dpkg dpkg-shlibdeps=dpkg-dev strip=binutils gzip=gzip

if [ -n "${PASS_DEB_FROM:-}" ]; then
  build="$(cd "$PASS_DEB_FROM" && pwd)" || die "PASS_DEB_FROM=$PASS_DEB_FROM: no such build directory"
  grep -qx 'PASS_HARDENING:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null ||
    die "$build is not a build with PASS_HARDENING=ON (the dev preset's is; packages need Debian's hardening flags)"
else
  build="${PASS_DEB_BUILD_DIR:-$repo/build/debian}"
  step "configuring $build"
  mkdir -p "$build"
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPASS_BUILD_TESTS=OFF \
    -DPASS_BUILD_HOME=ON -DPASS_HARDENING=ON >"$build.configure.log" 2>&1 || {
    cat "$build.configure.log" >&2
    die "cmake could not configure $build (log above)"
  }
fi

step "building pass-agent and pass-home in $build (ninja -j$jobs)"
ninja -C "$build" -j"$jobs" pass-agent pass-home >&2 || die "the build failed (compiler output above)"

version="$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")"
[ -n "$version" ] || die "no CMAKE_PROJECT_VERSION in $build/CMakeCache.txt"
arch="$(dpkg --print-architecture)"
# Reproducible timestamps: the last commit's time when this is a git checkout.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH="$epoch"

step "staging and packaging $version ($arch)"
pkgroot="$build/pkg"
rm -rf "$pkgroot"
mkdir -p "$pkgroot/debian"
# dpkg-shlibdeps wants a debian/control to read, and the binaries under debian/<package>/.
printf 'Source: pass\n\nPackage: pass-agent\nArchitecture: any\n\nPackage: pass-home\nArchitecture: any\n' \
  >"$pkgroot/debian/control"

subst() {
  sed -e "s|@VERSION@|$version|g" -e "s|@ARCH@|$arch|g" -e "s|@MAINTAINER@|$maintainer|g" \
    -e "s|@PACKAGE@|$2|g" -e "s|@DATE@|$(LC_ALL=C date -R -u -d "@$epoch")|g" "$1"
}

stage() {
  local pkg="$1" binary="$2"
  local root="$pkgroot/debian/$pkg"
  local doc="$root/usr/share/doc/$pkg"
  install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$doc" \
    "$root/usr/share/man/man1"
  # As dh_strip: no debug info, no comment or note sections.
  install -m 0755 "$binary" "$root/usr/bin/$pkg"
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/bin/$pkg"
  install -m 0644 "$here/copyright" "$doc/copyright"
  subst "$here/changelog.in" "$pkg" | gzip -9n >"$doc/changelog.gz"
  install -m 0644 "$repo/docs/install-appliance.md" "$doc/install-appliance.md"
  subst "$here/$pkg/$pkg.1" "$pkg" | gzip -9n >"$root/usr/share/man/man1/$pkg.1.gz"
  chmod 0644 "$doc/changelog.gz" "$root/usr/share/man/man1/$pkg.1.gz"
  for script in postinst prerm postrm; do
    install -m 0755 "$here/$pkg/$script" "$root/DEBIAN/$script"
  done
}

stage pass-agent "$build/linux-appliance/pass-agent"
stage pass-home "$build/home/pass-home"
agent="$pkgroot/debian/pass-agent"
install -m 0644 "$here/pass-agent/pass-agent.service" "$here/pass-agent/pass-agent.timer" \
  "$agent/lib/systemd/system/"
install -D -m 0644 "$here/pass-agent/pass-agent.cron" "$agent/usr/share/pass-agent/pass-agent.cron"
install -D -m 0644 "$here/pass-agent/agent.xml" "$agent/usr/share/doc/pass-agent/examples/agent.xml"
install -m 0644 "$here/pass-home/pass-home.service" "$pkgroot/debian/pass-home/lib/systemd/system/"

for pkg in pass-agent pass-home; do
  root="$pkgroot/debian/$pkg"
  # Its warning that binaries "should already be installed in their package's directory"
  # comes although they are (debian/<package>/ with DEBIAN/): filtered, other lines kept.
  shlibs="$(cd "$pkgroot" && dpkg-shlibdeps -O -e "debian/$pkg/usr/bin/$pkg" 2>"$pkgroot/err")" || {
    cat "$pkgroot/err" >&2
    die "dpkg-shlibdeps could not compute the Depends of $pkg"
  }
  grep -v "installed in their package's directory" "$pkgroot/err" >&2 || true
  shlibs="${shlibs#shlibs:Depends=}"
  [ -n "$shlibs" ] || die "dpkg-shlibdeps found no libraries for $pkg"
  size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
  subst "$here/$pkg/control.in" "$pkg" |
    sed -e "s|@SHLIBS@|$shlibs|" -e "s|@INSTALLED_SIZE@|$size|" >"$root/DEBIAN/control"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
    xargs -d '\n' md5sum >DEBIAN/md5sums)
  chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
  find "$root" -exec touch -h -d "@$epoch" {} +
  deb="$out/${pkg}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null ||
    die "dpkg-deb could not build $deb"
  echo "$deb"
done
say "packaged in $(elapsed "$step_started") s"
