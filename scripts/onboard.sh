#!/usr/bin/env bash
# Onboards a customer site in one command, on a machine that holds both the home's state and
# this repository (docs/onboarding.md describes the steps and the two-machine case):
#
#   scripts/onboard.sh --state HOME --form FORM --out DIR [--endpoint URL]... [--debs DEBDIR]
#
# 1. builds pass-home (preset dev) and, without --debs, the pass-agent .deb (DIR/debs);
# 2. pass-home onboard --state HOME --form FORM --out DIR/onboard: enrolls the site's agents
#    (kept on re-runs), the appliance's inputs, one bundle per Hitachi SVP, home-customer.xml;
# 3. when the form has an appliance: installer/appliance/build.sh writes DIR/image/<host>.ova,
#    .vhd and .qcow2 with SHA256SUMS (scratch space: DIR/work, about 2 GB while it builds).
# HOME must be a state directory made by `pass-home init`. Installs what is missing (apt-get;
# sudo when not root); the image build runs as root (through sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 --state HOME --form FORM --out DIR [--endpoint URL]... [--debs DEBDIR]" >&2
  exit 2
}
state="" form="" out="" debs="" endpoints=()
while [ $# -gt 0 ]; do
  case "$1" in
    --state) state="${2:-}"; shift 2 || usage ;;
    --form) form="${2:-}"; shift 2 || usage ;;
    --out) out="${2:-}"; shift 2 || usage ;;
    --debs) debs="${2:-}"; shift 2 || usage ;;
    --endpoint) endpoints+=(--endpoint "${2:-}"); shift 2 || usage ;;
    *) echo "onboard.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$state" ] && [ -n "$form" ] && [ -n "$out" ] || usage
[ -f "$form" ] || { echo "onboard.sh: --form $form: no such file" >&2; exit 2; }
[ -f "$state/home.db" ] || {
  echo "onboard.sh: --state $state: no home.db; make the home with 'pass-home init --state $state'" >&2
  exit 2
}
sudo_=()
[ "$(id -u)" -eq 0 ] || sudo_=(sudo)

./scripts/install-deps.sh
cmake --preset dev >/dev/null
cmake --build --preset dev --target pass-home

mkdir -p "$out"
echo "== pass-home onboard"
build/dev/home/pass-home onboard --state "$state" --form "$form" --out "$out/onboard" \
  "${endpoints[@]}"

if [ ! -d "$out/onboard/appliance" ]; then
  echo "== the form has no appliance: nothing to build (SVP bundles: $out/onboard/svp/)"
  exit 0
fi
if [ -z "$debs" ]; then
  echo "== the pass-agent package"
  installer/debian/build.sh "$out/debs"
  debs="$out/debs"
fi
echo "== the appliance image"
"${sudo_[@]}" installer/appliance/build.sh --input "$out/onboard/appliance" --debs "$debs" \
  --out "$out/image" --work "$out/work"
echo "== done"
echo "images:      $out/image/ (see docs/onboarding.md for which file goes to which hypervisor)"
if [ -d "$out/onboard/svp" ]; then
  echo "SVP bundles: $out/onboard/svp/<svp-host>/ (the MSI's BUNDLE, docs/install-windows.md)"
fi
echo "contacts:    merge $out/onboard/home-customer.xml into $state/home.xml"
