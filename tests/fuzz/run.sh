#!/bin/sh
# Runs every libFuzzer target of BUILD on a scratch copy of its seed corpus (the repo's corpus
# is not modified): for SECONDS seconds each, or, when FUZZ_RUNS is set, for exactly that many
# executions each. Prints one summary line per target; a finding is copied to
# tests/fuzz/crashes/ and makes the script fail.
# usage: run.sh BUILD [SECONDS]   (env FUZZ_RUNS, FUZZ_TARGETS="json binary ...", FUZZ_FLAGS
# for more libFuzzer flags, e.g. "-max_len=512")
set -eu
build=${1:-build-fuzz}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in "$build"/fuzz/fuzz_*; do
  name=$(basename "$bin" | sed 's/^fuzz_//')
  if [ -n "${FUZZ_TARGETS:-}" ]; then
    case " $FUZZ_TARGETS " in *" $name "*) ;; *) continue ;; esac
  fi
  mkdir -p "$work/$name"
  cp -r "$here/corpus/$name/." "$work/$name/" 2>/dev/null || true
  if [ -n "${FUZZ_RUNS:-}" ]; then limit="-runs=$FUZZ_RUNS"; else limit="-max_total_time=$seconds"; fi
  start=$(date +%s)
  # shellcheck disable=SC2086
  if "$bin" "$limit" ${FUZZ_FLAGS:-} -print_final_stats=1 -artifact_prefix="$work/$name-" \
       "$work/$name" > "$work/$name.log" 2>&1; then
    execs=$(grep -m1 'stat::number_of_executed_units' "$work/$name.log" | awk '{print $2}')
    secs=$(( $(date +%s) - start ))
    echo "fuzz $name: ${execs:-?} executions in ${secs}s, no finding"
  else
    echo "fuzz $name: FINDING"; tail -40 "$work/$name.log"; status=1
    mkdir -p "$here/crashes" && cp "$work/$name"-* "$here/crashes/" 2>/dev/null || true
  fi
done
exit $status
