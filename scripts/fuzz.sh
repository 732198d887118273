#!/usr/bin/env bash
# Builds every libFuzzer harness in tests/fuzz/ with clang and runs each briefly.
#   scripts/fuzz.sh [SECONDS_PER_HARNESS]   (default 30)
# clang 16 is the oldest Debian clang that compiles our std::expected code with libstdc++ 12
# (see the note in tests/fuzz/fuzz_hitachi_svp.cpp); the script installs it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
out="${PASS_FUZZ_DIR:-build/fuzz}"

PASS_LOG=fuzz
. scripts/lib.sh

need_packages clang-16 libclang-rt-16-dev libfmt-dev nlohmann-json3-dev libical-dev \
  libhowardhinnant-date-dev

mkdir -p "$out"
# Each harness names the sources it needs on its "// sources:" lines.
for harness in tests/fuzz/fuzz_*.cpp; do
  name="$(basename "$harness" .cpp)"
  read -r -a sources <<<"$(sed -n 's|^// sources: ||p' "$harness" | tr '\n' ' ')"
  # and, on an optional "// flags:" line, more include directories, defines and libraries.
  read -r -a flags <<<"$(sed -n 's|^// flags: ||p' "$harness")"
  clang++-16 -std=c++2b -U__cpp_concepts -D__cpp_concepts=202002L -Wno-builtin-macro-redefined \
    -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Ilibpass/include -Ilibpass/src "$harness" "${sources[@]}" ${flags[@]+"${flags[@]}"} -lfmt \
    -o "$out/$name"
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
