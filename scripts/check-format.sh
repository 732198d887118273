#!/usr/bin/env bash
# Fails when a C++ file differs from clang-format's output (.clang-format: Google, 100 columns).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run --Werror
echo "format: clean"
