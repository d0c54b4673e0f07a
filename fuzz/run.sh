#!/usr/bin/env bash
# Runs mailhop's fuzz targets one after another, SECONDS each (default 60),
# and prints each target's exec count and whether it crashed.
#
#   fuzz/run.sh               every target, 60 s each
#   fuzz/run.sh 600           every target, 10 minutes each
#   fuzz/run.sh 120 smtp/data access/imap    only these
#
# Each crate's targets are a cargo-fuzz package beside it (crates/C/fuzz,
# outside the workspace); they build with nightly Rust into fuzz/target,
# shared by all of them. A target starts from its seed corpus
# (crates/C/fuzz/corpus/T, committed; with the protocol's words in
# crates/C/fuzz/T.dict where there is one) and keeps what it finds in
# fuzz/target/corpus/C/T, so a later run goes on from there. A crash is
# written to crates/C/fuzz/artifacts/T/ and named in the summary; replay it
# with `cargo +nightly fuzz run T ARTIFACT` in crates/C. Logs are in
# fuzz/target/logs/. Exit status 1 if any target crashed.
#
# Needs: rustup's nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). FUZZ_NICE (default 15) is the
# nice level; FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS=-jobs=2).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-60}
shift || true
all=(smtp/session smtp/data transfer/replies transfer/items directory/load directory/relay
  directory/time directory/patterns access/imap access/pop3)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
nice_level=${FUZZ_NICE:-15}

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: needs nightly Rust and cargo-fuzz:" >&2
  echo "  rustup toolchain install nightly && cargo install cargo-fuzz --locked" >&2
  exit 2
fi

mkdir -p fuzz/target/logs
crashed=0
results=()
for t in "${targets[@]}"; do
  crate=${t%%/*}
  target=${t#*/}
  if [ ! -d "crates/$crate/fuzz/fuzz_targets" ] || [ ! -f "crates/$crate/fuzz/fuzz_targets/$target.rs" ]; then
    echo "fuzz/run.sh: no target $t" >&2
    exit 2
  fi
  work="$root/fuzz/target/corpus/$crate/$target"
  log="$root/fuzz/target/logs/$crate-$target.log"
  mkdir -p "$work" "crates/$crate/fuzz/artifacts/$target"
  dict=()
  [ -f "crates/$crate/fuzz/$target.dict" ] && dict=("-dict=fuzz/$target.dict")
  echo "== $t: building, then fuzzing for ${seconds}s (log: fuzz/target/logs/$crate-$target.log)"
  start=$(date +%s)
  # -s none: the code under test is safe Rust; what the targets look for
  # (panics, failed checks, hangs, memory blow-ups) needs no sanitizer, and
  # runs about twice as fast without one. -a keeps debug assertions
  # (overflow checks) on.
  (cd "crates/$crate" && nice -n "$nice_level" cargo +nightly fuzz run -s none -a \
      --target-dir "$root/fuzz/target" "$target" "$work" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      "${dict[@]}" ${FUZZ_ARGS:-}) >"$log" 2>&1
  status=$?
  took=$(( $(date +%s) - start ))
  # The targets' scratch folders (stores, directory files) of runs that ended.
  for d in /dev/shm/mailhop-fuzz-* "${TMPDIR:-/tmp}"/mailhop-fuzz-*; do
    [ -d "$d" ] || continue
    pid=$(basename "$d" | cut -d- -f4)
    kill -0 "$pid" 2>/dev/null || rm -rf "$d"
  done
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  if [ "$status" -eq 0 ]; then
    verdict="ok"
  else
    crashed=1
    artifact=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
    if [ -n "$artifact" ]; then
      verdict="CRASHED: $artifact"
    elif grep -q "error: could not compile\|error\[E" "$log"; then
      verdict="BUILD FAILED (see the log)"
    else
      verdict="FAILED with status $status (see the log)"
    fi
  fi
  line=$(printf '%-20s %12s execs  %6s/s  %5ss  %s' "$t" "${execs:-?}" "${speed:-?}" "$took" "$verdict")
  echo "$line"
  results+=("$line")
done

echo
echo "== summary (${seconds}s of fuzzing per target)"
printf '%s\n' "${results[@]}"
exit "$crashed"
