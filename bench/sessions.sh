#!/bin/bash
# Benchmark 3 (issue 7): sessions. SESS_N concurrent devices on each of MQTT (through the
# broker), TCP, CoAP and WebSocket (iotgw-sim, one process per protocol), added one protocol
# after the other to one gateway; the gateway's RSS (VmRSS) is read when idle and after each step,
# giving the bytes per session of each protocol. Baseline: the idle gateway's RSS.
# Limits of this machine: a process may hold at most `ulimit -Hn` descriptors (20000 here),
# so the gateway cannot hold 10000 TCP plus 10000 WebSocket sockets at once: the WebSocket
# step gets what is left, and the "all protocols at SESS_N" figure adds the missing WebSocket
# sessions at the measured per-session cost (printed as such). CoAP sessions cost the
# gateway no descriptor (one UDP socket for all).
# Usage: sessions.sh BUILD_DIR   (SESS_N per protocol, default 10000)
set -eu
BUILD=$(cd "${1:-build}" && pwd)
N=${SESS_N:-10000}
. "$(dirname "$0")/lib.sh"
bench_init sessions
SIM="$BUILD/iotgw-sim"
HARD=$(ulimit -Hn)
MQ=$(free_port); TP=$(free_port); WP=$(free_port); CP=$(free_port)
gw_config "$WORK/iotgw.json" "[
  {\"type\":\"mqtt\",\"name\":\"mqtt\",\"broker\":\"spawn\",\"listen\":\"127.0.0.1:$MQ\"},
  {\"type\":\"tcp\",\"name\":\"tcp\",\"listen\":\"127.0.0.1:$TP\",\"max_connections\":$HARD,\"idle_timeout_s\":0},
  {\"type\":\"websocket\",\"name\":\"websocket\",\"listen\":\"127.0.0.1:$WP\",\"idle_timeout_s\":0},
  {\"type\":\"coap\",\"name\":\"coap\",\"listen\":\"127.0.0.1:$CP\"}]"
gw_start "$WORK/iotgw.json"
wait_port "$MQ"; wait_port "$TP"; wait_port "$WP"
sleep 1
IDLE=$(rss_kb "$GW_PID")
common=(--admin "http://127.0.0.1:$ADMIN_PORT" --token "$GW_TOKEN" --quiet)
WS_N=$N
# descriptors the gateway keeps for itself (store, listeners, broker link, lws, pipes)
if [ $((N + N + 200)) -gt "$HARD" ]; then WS_N=$((HARD - N - 200)); fi

step() { # step PROTO COUNT
  timeout 600 "$SIM" "${common[@]}" --"$1" "$2" --no-connect --save-creds "$WORK/$1.json" \
    --product "bench-$1" --admin-parallel 16 --json "$WORK/prov-$1.json" >/dev/null 2>&1
  bench_bg "$WORK/sim-$1.out" timeout 1200 "$SIM" "${common[@]}" --creds "$WORK/$1.json" \
    --mqtt-url "tcp://127.0.0.1:$MQ" --tcp-url "tcp://127.0.0.1:$TP" --ws-url "ws://127.0.0.1:$WP/ws" \
    --coap-url "coap://127.0.0.1:$CP" \
    --connect-parallel 512 --duration 1000 --timeout 1100 --ready-file "$WORK/ready-$1" \
    --json "$WORK/sim-$1.json"
  _end=$(( $(date +%s) + 300 ))
  until [ -f "$WORK/ready-$1" ]; do
    if [ "$(date +%s)" -ge "$_end" ] || ! kill -0 "$BG_PID" 2>/dev/null; then
      echo "sessions: $1 devices did not all come online" >&2; tail -3 "$WORK/sim-$1.out" >&2; return 1
    fi
    sleep 0.2
  done
  sleep 2 # let the gateway settle (buffers, session table)
}

step mqtt "$N"; RSS_MQTT=$(rss_kb "$GW_PID")
step tcp "$N"; RSS_TCP=$(rss_kb "$GW_PID")
step coap "$N"; RSS_COAP=$(rss_kb "$GW_PID")
step ws "$WS_N"; RSS_WS=$(rss_kb "$GW_PID")
SPLIT=$(rss_split "$GW_PID")
BROKER_RSS=$(rss_kb "$(cat "$WORK/data/broker/mosquitto.pid")")
gw_stop

per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f\n", (b - a) * 1024 / n }'; }
B_MQTT=$(per "$IDLE" "$RSS_MQTT" "$N")
B_TCP=$(per "$RSS_MQTT" "$RSS_TCP" "$N")
B_COAP=$(per "$RSS_TCP" "$RSS_COAP" "$N")
B_WS=$(per "$RSS_COAP" "$RSS_WS" "$WS_N")
# all four at N: the measured RSS plus the WebSocket sessions the fd limit left out
ALL_MB=$(awk -v r="$RSS_WS" -v m=$((N - WS_N)) -v b="$B_WS" 'BEGIN { printf "%.1f\n", (r * 1024 + m * b) / 1048576 }')
IDLE_MB=$(awk -v r="$IDLE" 'BEGIN { printf "%.1f\n", r / 1024 }')
echo "Sessions: gateway RSS idle ${IDLE_MB} MB; +$N MQTT $((RSS_MQTT / 1024)) MB ($B_MQTT B/session);" \
  "+$N TCP $((RSS_TCP / 1024)) MB ($B_TCP B/session); +$N CoAP $((RSS_COAP / 1024)) MB ($B_COAP B/session);" \
  "+$WS_N WebSocket $((RSS_WS / 1024)) MB ($B_WS B/session)"
echo "  gateway RSS with all sessions: $SPLIT; broker (separate process) RSS with $N MQTT" \
  "sessions: $((BROKER_RSS / 1024)) MB"
[ "$WS_N" -lt "$N" ] && echo "  ($N WebSocket sessions need $((N - WS_N)) more descriptors than the hard limit $HARD leaves: value adds them at $B_WS B each)"
R=$(ratio "$ALL_MB" "$IDLE_MB")
bench_row_header
bench_row "sessions_rss_mb (MB, 4x$N)" "$ALL_MB" "$IDLE_MB" "$R" "<=100"
bench_line sessions_rss_mb "$ALL_MB" MB "$IDLE_MB" "$R" "<=100"
