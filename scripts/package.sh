#!/usr/bin/env bash
# Produces every installable artefact into dist/ (or DIR):
#   scripts/package.sh [DIR]
#   DIR/pass-svp-<version>-x64.msi        the SVP agent (docs/install-windows.md)
#   DIR/pass-agent_<version>_amd64.deb    the appliance agent (docs/install-appliance.md)
#   DIR/pass-home_<version>_amd64.deb     the home
# Installs what is missing (apt-get; sudo when not root). The first run builds the Windows
# dependencies from Debian's sources (about 13 minutes on 2 cores; cached afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
mkdir -p "$out"

./scripts/install-deps.sh
PASS_WINDOWS_DEPS="$(scripts/windows-deps.sh)"
export PASS_WINDOWS_DEPS
cmake --preset windows >/dev/null
cmake --build --preset windows -j2 --target pass-svp
installer/windows/build.sh build/windows/win-svp/pass-svp.exe "$out"
installer/debian/build.sh "$out"
ls -l "$out"
