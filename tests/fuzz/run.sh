#!/bin/sh
# Runs every libFuzzer target of BUILD for SECONDS seconds each, on a scratch copy of its seed
# corpus (the repo's corpus is not modified). Prints one summary line per target.
set -eu
build=${1:-build-fuzz}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in "$build"/fuzz/fuzz_*; do
  name=$(basename "$bin" | sed 's/^fuzz_//')
  mkdir -p "$work/$name"
  cp -r "$here/corpus/$name/." "$work/$name/" 2>/dev/null || true
  if "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/$name-" \
       "$work/$name" > "$work/$name.log" 2>&1; then
    execs=$(grep -m1 'stat::number_of_executed_units' "$work/$name.log" | awk '{print $2}')
    echo "fuzz $name: ${execs:-?} executions in ${seconds}s, no finding"
  else
    echo "fuzz $name: FINDING"; tail -40 "$work/$name.log"; status=1
    mkdir -p "$here/../fuzz/crashes" && cp "$work/$name"-* "$here/crashes/" 2>/dev/null || true
  fi
done
exit $status
