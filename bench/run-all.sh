#!/bin/sh
# Runs every benchmark against the build in $1 (default build) and prints their tables and
# BENCH lines. Work files go under ${BENCH_DIR:-/tmp/iotgw-bench} and are removed after.
set -eu
build=${1:-build}
work=${BENCH_DIR:-/tmp/iotgw-bench}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
echo "== engine and store (issue 3) =="
"$build/bench/bench_engine" "$work" | tee "$work/engine.out"
echo
echo "== crash consistency, full count =="
GW_CRASH_KILLS=${GW_CRASH_KILLS:-200} "$build/tests/crash/test_crash" "$build/tests/crash/crash_tool" "$work/crash"

# Issue 7: the gateway benchmarks (1 MQTT upstream, 3 sessions, 4 download, 5 push latency,
# 6 rollout), each with its raw baseline in the same run, then one table of every figure.
# Sizes can be reduced through their variables (see bench/README.md).
here=$(dirname "$0")
for b in mqtt_upstream sessions http_download push_latency rollout; do
  echo
  echo "== $b (issue 7) =="
  # a failing benchmark prints why and leaves no BENCH line; the others still run
  { BENCH_DIR="$work" bash "$here/$b.sh" "$build" 2>&1 || echo "$b: did not finish"; } |
    tee "$work/$b.out"
done
echo
echo "== all figures =="
"$here/table.sh" "$work"/*.out
