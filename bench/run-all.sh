#!/bin/sh
# Runs every benchmark against the build in $1 (default build) and prints their tables and
# BENCH lines. Work files go under ${BENCH_DIR:-/tmp/iotgw-bench} and are removed after.
set -eu
build=${1:-build}
work=${BENCH_DIR:-/tmp/iotgw-bench}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
echo "== engine and store (issue 3) =="
"$build/bench/bench_engine" "$work"
echo
echo "== crash consistency, full count =="
GW_CRASH_KILLS=${GW_CRASH_KILLS:-200} "$build/tests/crash/test_crash" "$build/tests/crash/crash_tool" "$work/crash"
