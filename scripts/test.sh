#!/usr/bin/env bash
# The whole test suite: installs what is missing, configures, builds and runs every test.
# PASS_PRESET=asan runs it under AddressSanitizer + UndefinedBehaviorSanitizer instead.
# With the dev preset it then tests the Windows agent under Wine (scripts/test-windows.sh: the
# first run builds the Windows dependencies, about 13 minutes) and the Debian packages in a
# fresh chroot (installer/debian/test.sh); PASS_TEST_PLATFORMS=0 leaves those two out.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${PASS_PRESET:-dev}"

./scripts/install-deps.sh
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset"
if [ "$preset" = dev ] && [ "${PASS_TEST_PLATFORMS:-1}" != 0 ]; then
  ./scripts/test-windows.sh
  ./installer/debian/test.sh
fi
