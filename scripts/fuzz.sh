#!/usr/bin/env bash
# Builds every libFuzzer harness in tests/fuzz/ with clang and runs each briefly.
#   scripts/fuzz.sh [SECONDS_PER_HARNESS [HARNESS...]]   (default 30; 0: build only)
# HARNESS: a name such as fuzz_envelope; default: every tests/fuzz/fuzz_*.cpp.
# clang 16 is the oldest Debian clang that compiles our std::expected code with libstdc++ 12
# (see the note in tests/fuzz/fuzz_hitachi_svp.cpp); the script installs it when missing.
# PASS_FUZZ_DIR (default build/fuzz) holds the build and the corpora; PASS_FUZZ_JOBS (default:
# the number of cores) compilers run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
out="${PASS_FUZZ_DIR:-build/fuzz}"
jobs="${PASS_FUZZ_JOBS:-$(nproc)}"

PASS_LOG=fuzz
. scripts/lib.sh

need_packages clang-16 libclang-rt-16-dev libfmt-dev nlohmann-json3-dev libical-dev \
  libhowardhinnant-date-dev libpugixml-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev \
  libssh-dev libboost-filesystem1.81-dev libboost-program-options1.81-dev cmake ninja-build \
  libpq-dev

# Each harness names the sources it needs on its "// sources:" lines (globs allowed) and, on
# "// flags:" lines, the include directories, defines and libraries they need.
listed() { # KIND HARNESS: the words of its KIND lines, globs expanded
  local words
  words="$(sed -n "s|^// $1: ||p" "$2" | tr '\n' ' ')"
  # shellcheck disable=SC2086 # split and expand on purpose
  printf '%s\n' $words
}
all=(tests/fuzz/fuzz_*.cpp)
harnesses=("${all[@]}")
if [ $# -gt 1 ]; then
  harnesses=()
  for name in "${@:2}"; do
    [ -f "tests/fuzz/$name.cpp" ] || die "no harness tests/fuzz/$name.cpp"
    harnesses+=("tests/fuzz/$name.cpp")
  done
fi
mkdir -p "$out"

# Every harness's sources are compiled once, whichever harnesses are chosen, into one archive:
# each harness takes from it only the objects it needs (and what those need, which its own list
# may not name). Compile flags are the union of all harnesses' (the same whichever are built,
# so that ccache finds what another run compiled).
mapfile -t sources < <(for h in "${all[@]}"; do listed sources "$h"; done | sort -u)
# Sources CMake generates (the built-in vendor code tables, the SVP's default line profiles)
# are taken from the dev build's folder, configured when they are not there.
for src in "${sources[@]}"; do
  [[ $src == build/dev/* && ! -f $src ]] || continue
  cmake --preset dev >"$out/configure.log" 2>&1 || {
    tail -20 "$out/configure.log" >&2
    exit 1
  }
  break
done
mapfile -t defines < <(for h in "${all[@]}"; do listed flags "$h"; done | grep -E '^-[ID]' |
  sort -u)
cxx=(clang++-16 -std=c++2b -U__cpp_concepts -D__cpp_concepts=202002L
  -Wno-builtin-macro-redefined -g -O1 -fno-sanitize-recover=undefined)
use_ccache
if [ ${#ccache_cmake[@]} -gt 0 ]; then cxx=(ccache "${cxx[@]}"); fi
cflags=(-Ilibpass/include -Ilibpass/src -DPASS_VERSION='"fuzz"' "${defines[@]}"
  -fsanitize=fuzzer-no-link,address,undefined)
obj="$out/obj"
rm -rf "$obj"
for src in "${sources[@]}" "${harnesses[@]}"; do mkdir -p "$obj/$(dirname "$src")"; done
started=$SECONDS
printf '%s\n' "${sources[@]}" "${harnesses[@]}" |
  xargs -P "$jobs" -I{} "${cxx[@]}" "${cflags[@]}" -c {} -o "$obj/{}.o"
archive="$out/libpass-fuzz.a"
rm -f "$archive"
objects=()
for src in "${sources[@]}"; do objects+=("$obj/$src.o"); done
# q, not r: r would keep one of the objects that share a name (the collectors' parse.cpp.o).
ar qcs "$archive" "${objects[@]}"
# Every harness links with every harness's libraries (only those it uses are kept): an object
# it takes from the archive may need one that its own sources do not.
mapfile -t libs < <(for h in "${all[@]}"; do listed flags "$h"; done | grep -E '^-l' | sort -u)
for harness in "${harnesses[@]}"; do
  clang++-16 -fsanitize=fuzzer,address,undefined "$obj/$harness.o" "$archive" \
    -Wl,--as-needed "${libs[@]}" -lfmt -o "$out/$(basename "$harness" .cpp)"
done
say "built ${#harnesses[@]} harnesses from ${#sources[@]} sources in $((SECONDS - started)) s"
[ "$seconds" -gt 0 ] || exit 0

for harness in "${harnesses[@]}"; do
  name="$(basename "$harness" .cpp)"
  corpus="$out/$name.corpus"
  mkdir -p "$corpus"
  say "$name for ${seconds}s"
  # Seeds (tests/fuzz/seeds/<harness>/): real-shaped inputs, so that the fuzzer reaches the
  # paths behind a recognised line ("Serial Number :", "Id :") within a short CI run.
  seeds=()
  [ -d "tests/fuzz/seeds/$name" ] && seeds=("tests/fuzz/seeds/$name")
  "$out/$name" -max_total_time="$seconds" -print_final_stats=1 "$corpus" "${seeds[@]}" \
    2>"$out/$name.log" || {
    tail -50 "$out/$name.log" >&2
    exit 1
  }
  grep -E '^stat::number_of_executed_units' "$out/$name.log" >&2 || true
done
