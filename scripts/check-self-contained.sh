#!/usr/bin/env bash
# Fails when a tracked file refers to a place outside the repository: a clone has nothing
# beside it, so whatever the build, a test, a script or a page names must be inside.
#   scripts/check-self-contained.sh [REPO]     (default: this repository)
# Looks for the folder "shared" beside the project (as a relative path), a step out of the
# repository's root in CMake (${CMAKE_SOURCE_DIR}/.., ${sourceDir}/.., ${PROJECT_SOURCE_DIR}/..)
# or a script ($repo/..), and the absolute path of the folder that holds the repository. Prints
# file:line:text for each and exits 1; exits 0 when there is none.
set -euo pipefail
repo="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
parent="$(dirname "$repo")"
[ "$parent" != / ] || parent=""

patterns=(-e '\.\./shared\b'
  -e '\$\{(CMAKE_SOURCE_DIR|sourceDir|PROJECT_SOURCE_DIR)\}/\.\.([/"]|$)'
  -e '\$\{?repo\}?/\.\.([/"]|$)')
[ -z "$parent" ] || patterns+=(-e "$(printf '%s/' "$parent" | sed 's/[.[\*^$()+?{|]/\\&/g')")

if hits="$(git -C "$repo" grep -n -I -E "${patterns[@]}" -- .)"; then
  printf '%s\n' "$hits" >&2
  echo "check-self-contained: $(printf '%s\n' "$hits" | wc -l) line(s) above refer to a place outside $repo; a clone has nothing beside it: copy what is needed into the repository" >&2
  exit 1
fi
echo "check-self-contained: no tracked file of $repo refers to a place outside it" >&2
