#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 30), one after another in a single
# process each, starting from the committed seeds in fuzz/corpus/<target>/. New inputs go to
# fuzz/target/corpus/<target>/, so the committed seeds stay as they are. Exits non-zero when any
# target finds a crash or a failed property; libFuzzer saves that input in fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS]
# FUZZ_SANITIZER=address selects AddressSanitizer. Without it the targets build with no sanitizer,
# for the reason given below.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
sanitizer=${FUZZ_SANITIZER:-none}
targets=(mapping reference manifest range pagination config)

if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "SECONDS must be a positive whole number of seconds, not '$seconds'" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes -Zsanitizer=<name>, a nightly-only rustc flag, for every sanitizer but none,
# and only a stable toolchain is installed here. RUSTC_BOOTSTRAP=1 makes the stable rustc accept
# nightly flags. With the default sanitizer, none, cargo-fuzz 0.13 passes no such flag.
export RUSTC_BOOTSTRAP=1

# The targets run safe Rust (the crate denies unsafe code outside fastpath, and of fastpath they
# call only blob_path, which joins paths), so AddressSanitizer finds nothing there that the
# panics and overflow checks miss, and it slows each run. -a keeps overflow checks on.
build_flags=(--sanitizer "$sanitizer" --debug-assertions)

cargo fuzz build "${build_flags[@]}"

failed=()
# libFuzzer prints a line per new input; each target's output goes to a log, and only the final
# statistics, or the end of the log on a finding, are shown.
mkdir -p fuzz/target/logs
for target in "${targets[@]}"; do
  work_corpus="fuzz/target/corpus/$target"
  log="fuzz/target/logs/$target.log"
  mkdir -p "$work_corpus"
  echo "fuzzing $target for ${seconds}s (log: $log)"
  if cargo fuzz run "${build_flags[@]}" "$target" "$work_corpus" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done ' "$log" || true
  else
    failed+=("$target")
    tail -n 40 "$log" >&2
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found a failure in: ${failed[*]} (inputs are in fuzz/artifacts/)" >&2
  exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${seconds}s each without a finding"
