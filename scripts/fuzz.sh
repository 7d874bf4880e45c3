#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (libFuzzer + AddressSanitizer), each for a time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    each target SECONDS (default 600), all by default
#   scripts/fuzz.sh --smoke                  every target for 10 s: what .ci/run does
#   JOBS=2 scripts/fuzz.sh 600               two targets at a time (one per core)
#
# Seeds live in fuzz/corpus/TARGET (committed); what a run learns goes to
# fuzz/target/corpus/TARGET, kept between runs. A crash, leak, timeout or out-of-memory leaves its
# input in fuzz/artifacts/TARGET/ and makes the script fail; replay one with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…   (or RUSTC_BOOTSTRAP=1 cargo fuzz …)
# Installs cargo-fuzz when missing; idempotent.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=600
if [ "${1:-}" = "--smoke" ]; then
  seconds=10
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
jobs=${JOBS:-1}

# libFuzzer's instrumentation needs unstable rustc flags: nightly where it is installed, else
# the stable toolchain with RUSTC_BOOTSTRAP=1 (a machine may have only one toolchain and no way
# to fetch another; stable ships the AddressSanitizer runtime too).
toolchain=(+nightly)
if ! RUSTUP_AUTO_INSTALL=0 cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain; using $(rustc --version) with RUSTC_BOOTSTRAP=1"
  toolchain=()
  export RUSTC_BOOTSTRAP=1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

echo "fuzz: building ${#targets[@]} targets (release, debug assertions, AddressSanitizer)"
cargo "${toolchain[@]}" fuzz build

# plugin_api: a Lua state cached per thread holds 32 bytes that LeakSanitizer reports once at
# exit, the same 32 bytes after 1 run or 1,000 runs of one input: not a leak per request, but
# it would stop every run at its first input, so leak detection is off for that target only.
extra_args() {
  case "$1" in
    plugin_api) echo "-detect_leaks=0" ;;
  esac
}

run_one() {
  local target=$1 work="target/corpus/$1" log="target/fuzz-$1.log"
  mkdir -p "$work" "corpus/$target" "artifacts/$target"
  local -a args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1)
  [ -f "dicts/$target.dict" ] && args+=(-dict="dicts/$target.dict")
  # shellcheck disable=SC2207
  args+=($(extra_args "$target"))
  if cargo "${toolchain[@]}" fuzz run "$target" "$work" "corpus/$target" -- "${args[@]}" >"$log" 2>&1; then
    local runs corpus
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus=$(find "$work" -type f | wc -l)
    echo "fuzz: $target ran ${seconds}s clean: ${runs:-?} inputs, corpus $corpus"
  else
    echo "fuzz: $target FAILED after $(grep -c . "$log") log lines; its input:" >&2
    grep -E "^(thread '|SUMMARY|==[0-9]+== ERROR|artifact_prefix|Test unit written)" "$log" | head -8 >&2
    return 1
  fi
}

failed=0
pids=()
for target in "${targets[@]}"; do
  run_one "$target" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit $failed
