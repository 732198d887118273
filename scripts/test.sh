#!/usr/bin/env bash
# The whole test suite: installs what is missing, configures, builds and runs every test.
# PASS_PRESET=asan runs it under AddressSanitizer + UndefinedBehaviorSanitizer instead.
# With the dev preset it then tests the Windows agent under Wine (scripts/test-windows.sh: the
# first run builds the Windows dependencies, about 13 minutes), the Debian packages in a fresh
# chroot (installer/debian/test.sh) and the appliance image built from `pass-home onboard`,
# booted under QEMU (installer/appliance/test.sh --quick: about 6 minutes without KVM; the
# full boot test, BIOS and UEFI and SSH off, runs before each release: docs/appliance-image.md).
# PASS_TEST_PLATFORMS=0 leaves those three out. Each part's time is printed as the next begins.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${PASS_PRESET:-dev}"
PASS_LOG="test ($preset)"
. scripts/lib.sh

step "install what is missing"
./scripts/install-deps.sh
step "configure and build"
# The compiler cache lives in ~/.cache/pass like the Windows dependencies: a run in a fresh
# clone compiles only what changed since the last run on the machine (docs/performance.md).
use_ccache
cmake --preset "$preset" "${ccache_cmake[@]}"
cmake --build --preset "$preset"
step "ctest"
ctest --preset "$preset"
if [ "$preset" = dev ] && [ "${PASS_TEST_PLATFORMS:-1}" != 0 ]; then
  step "Windows"
  ./scripts/test-windows.sh
  step "Debian packages"
  # The packages are made from this build's binaries (the dev preset has Debian's hardening
  # flags): no second compile.
  PASS_DEB_FROM="build/$preset" ./installer/debian/test.sh
  step "appliance image"
  ./installer/appliance/test.sh --quick --debs build/debian-test/debs
fi
step "done"
say "total $(elapsed "$started") s"
