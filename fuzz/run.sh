#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer binaries (nightly, cargo-fuzz) and runs every target
# for FUZZ_RUNS executions or FUZZ_SECONDS, whichever comes first, starting from the
# checked-in seed corpus. New inputs go to target/fuzz/corpus/<target>/ (never into the
# checked-in corpus); a crash is saved under target/fuzz/artifacts/<target>/ and fails
# the run — copy it to fuzz/regressions/<target>/ with the fix, and `make test` replays
# it from then on. Prints executions per target and writes target/fuzz/results.json.
#
# Sanitizer: none. Every meshray crate forbids `unsafe`, so AddressSanitizer would
# look for bugs Rust already rules out, at half the speed; the targets look for
# panics, broken invariants, hangs (-timeout) and memory blow-ups (-rss_limit_mb).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${FUZZ_RUNS:-1000000}"
seconds="${FUZZ_SECONDS:-240}"
only="${FUZZ_TARGETS:-}"
out=target/fuzz
mkdir -p "$out"
targets=()
for file in fuzz/libfuzzer/fuzz_targets/*.rs; do
  name="$(basename "$file" .rs)"
  if [[ -z "$only" || " $only " == *" $name "* ]]; then targets+=("$name"); fi
done

# The fuzzed crates build with the versions the workspace locked (a new lock would
# resolve them again and could test other versions than the ones shipped).
[[ -f fuzz/libfuzzer/Cargo.lock ]] || cp Cargo.lock fuzz/libfuzzer/Cargo.lock
echo "fuzz: building ${#targets[@]} targets (nightly, cargo-fuzz, release)"
cargo +nightly fuzz build --fuzz-dir fuzz/libfuzzer --sanitizer none --release \
  --target-dir "$out/build" >"$out/build.log" 2>&1 || {
  cat "$out/build.log" >&2
  exit 1
}
bin_dir="$out/build/$(rustc -vV | sed -n 's/^host: //p')/release"

results="{"
failed=0
for name in "${targets[@]}"; do
  bin="$bin_dir/$name"
  [[ -x "$bin" ]] || { echo "fuzz: $bin was not built" >&2; exit 1; }
  mkdir -p "$out/corpus/$name" "$out/artifacts/$name"
  log="$out/$name.log"
  set +e
  "$bin" "$out/corpus/$name" "fuzz/corpus/$name" \
    -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$out/artifacts/$name/" -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  elapsed="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)"
  corpus="$(find "$out/corpus/$name" -type f | wc -l)"
  if [[ $status -ne 0 ]]; then
    failed=1
    echo "fuzz: $name FAILED after ${executions:-?} executions; see $log and $out/artifacts/$name/" >&2
    grep -m5 -E 'panicked|ERROR|SUMMARY' "$log" >&2 || true
  fi
  printf 'fuzz: %-16s %10s executions in %4ss, %5s corpus inputs, %s\n' \
    "$name" "${executions:-?}" "${elapsed:-?}" "$corpus" "$([[ $status -eq 0 ]] && echo ok || echo CRASH)"
  results+="\"$name\":{\"executions\":${executions:-0},\"seconds\":${elapsed:-0},\"corpus\":$corpus,\"crashed\":$([[ $status -eq 0 ]] && echo false || echo true)},"
done
echo "${results%,}}" >"$out/results.json"
echo "fuzz: results in $out/results.json"
exit "$failed"
