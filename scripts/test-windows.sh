#!/usr/bin/env bash
# The Windows agent's tests, on Debian: builds the Windows dependencies once (cached outside the
# tree, scripts/windows-deps.sh), cross-builds pass-svp.exe and libpass's tests (the windows
# preset), runs the tests under Wine, then the end-to-end test (pass-svp.exe under Wine against
# the Linux pass-home of build/$PASS_PRESET, default dev, which scripts/test.sh builds) and,
# when installer/windows/test.sh exists, the MSI's install test.
#   scripts/test-windows.sh
# Installs wine and wixl when missing (apt-get; sudo when not root). The Wine prefix is kept in
# ${XDG_CACHE_HOME:-~/.cache}/pass/wine (WINEPREFIX overrides). docs/building-windows.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
PASS_LOG=test-windows
. scripts/lib.sh

need_packages wine wine64 wixl msitools

step "Windows dependencies"
PASS_WINDOWS_DEPS="$(scripts/windows-deps.sh)"
export PASS_WINDOWS_DEPS
step "cross-building (preset windows)"
cmake --preset windows >/dev/null
cmake --build --preset windows -j2

export WINEPREFIX="${WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/pass/wine}" WINEDEBUG=-all
mkdir -p "$(dirname "$WINEPREFIX")"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  step "creating the Wine prefix $WINEPREFIX"
  /usr/lib/wine/wine64 wineboot --init >/dev/null 2>&1
  wineserver -w
fi
# One wineserver for all the tests: each would otherwise start (and wait for) its own.
wineserver -p 2>/dev/null || true  # already running for this prefix: fine
trap 'wineserver -k >/dev/null 2>&1 || true' EXIT
# Wine's own services (services.exe, plugplay, ...) start with the first program and inherit its
# stdout: started by a test, they would hold ctest's pipe open and the test would never end.
/usr/lib/wine/wine64 cmd /c exit </dev/null >/dev/null 2>&1

step "unit tests under Wine"
ctest --preset windows

step "end to end: pass-svp.exe under Wine, pass-home on Linux"
home_bin="$repo/build/${PASS_PRESET:-dev}/home/pass-home"
[ -x "$home_bin" ] || die "$home_bin is missing; run scripts/test.sh first"
PASS_SVP_EXE="$repo/build/windows/win-svp/pass-svp.exe" PASS_HOME_BIN="$home_bin" \
  python3 -m unittest -v tests/windows/test_svp_wine.py

if [ -x installer/windows/test.sh ]; then
  step "the MSI under Wine"
  PASS_HOME_BIN="$home_bin" installer/windows/test.sh "$repo/build/windows/win-svp/pass-svp.exe"
fi
step "done"
say "total $(elapsed "$started") s"
