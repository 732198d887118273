#!/usr/bin/env bash
# The whole test suite: installs what is missing, configures, builds and runs every test.
# PASS_PRESET=asan runs it under AddressSanitizer + UndefinedBehaviorSanitizer instead.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${PASS_PRESET:-dev}"

./scripts/install-deps.sh
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset"
