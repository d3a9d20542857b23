#!/bin/sh
# Prints the one table of `make bench` from the BENCH lines (DESIGN §8) in the files given
# (or stdin). Where the goal applies: to the ratio for the figures measured against a raw
# substrate (mqtt_upstream, http_download, engine_progress, task_create_*), to the value for
# the absolute goals of issue 7 (sessions_rss_mb in MB, push_latency_p99_ms in ms); "info"
# figures have none (rollout_100k_s: the record check is its pass/fail, printed above it).
cat "$@" | grep '^BENCH ' | awk '
function field(k,   i, a) {
  for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) return substr($i, length(k) + 2) }
  return ""
}
function met(goal, x,   op, n) {
  if (goal == "info" || goal == "") return "-"
  op = substr(goal, 1, 2); n = substr(goal, 3) + 0
  if (op == ">=") return (x + 0 >= n) ? "yes" : "NO"
  if (op == "<=") return (x + 0 <= n) ? "yes" : "NO"
  return "?"
}
BEGIN {
  printf "%-28s %12s %-10s %12s %8s %8s %-9s %s\n", "figure", "value", "unit", "baseline", "ratio", "goal", "on", "met"
}
{
  name = field("name"); goal = field("goal")
  on = (name == "sessions_rss_mb" || name == "push_latency_p99_ms") ? "value" : (goal == "info" ? "" : "ratio")
  x = (on == "value") ? field("value") : field("ratio")
  printf "%-28s %12s %-10s %12s %8s %8s %-9s %s\n", name, field("value"), field("unit"), field("baseline"), field("ratio"), goal, on, met(goal, x)
}'
