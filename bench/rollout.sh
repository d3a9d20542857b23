#!/bin/bash
# Benchmark 6 (issue 7): rollout. ROLLOUT_N simulated TCP devices (TCP needs no broker in
# between; MQTT is limited by the same descriptor ceiling) through a full upgrade with 2 %
# failures and 1 % silent devices: the task exists first, devices come online in waves of at
# most ROLLOUT_ONLINE (this machine caps a process at `ulimit -Hn` descriptors), each gets
# the push when it logs in, downloads ROLLOUT_FW bytes over HTTP (MD5 + SHA-256 checked),
# reports progress and its result, and leaves. Silent devices end in failure by the push
# timeout (10 s, no retry). Figures: the time from task creation to the task's end, the
# gateway's peak RSS (VmHWM), and the record check (iotgw-sim: every record in success or
# failure exactly as the mix says, none left active, none missing).
# Baseline in the same run: the same number of downloads of the same image from nginx with
# the same parallelism (bench_download): the bytes a rollout has to move, with no gateway.
# Usage: rollout.sh BUILD_DIR  (ROLLOUT_N default 100000, ROLLOUT_ONLINE 10000,
# ROLLOUT_FW 65536, ROLLOUT_DL parallel downloads 256)
set -eu
BUILD=$(cd "${1:-build}" && pwd)
N=${ROLLOUT_N:-100000}
ONLINE=${ROLLOUT_ONLINE:-10000}
FW=${ROLLOUT_FW:-65536}
DLP=${ROLLOUT_DL:-256}
. "$(dirname "$0")/lib.sh"
bench_init rollout
SIM="$BUILD/iotgw-sim"

# ---- baseline: N downloads of the image from nginx ----
nginx_serve "$FW"
timeout 1800 "$BUILD/bench/bench_download" "http://127.0.0.1:$NPORT/fw.bin" "$FW" "$DLP" "$N" >"$WORK/base.out"
BASE=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$WORK/base.out")
kill -TERM "$NGINX"; wait "$NGINX" 2>/dev/null || true

# ---- the rollout ----
TP=$(free_port)
gw_config "$WORK/iotgw.json" "[{\"type\":\"tcp\",\"name\":\"tcp\",\"listen\":\"127.0.0.1:$TP\",\"max_connections\":$(ulimit -Hn)}]" \
  '{"push_timeout_s":10,"max_retries":0}'
gw_start "$WORK/iotgw.json"
wait_port "$TP"
T0=$(date +%s)
timeout 3000 "$SIM" --admin "http://127.0.0.1:$ADMIN_PORT" --token "$GW_TOKEN" --quiet \
  --tcp "$N" --tcp-url "tcp://127.0.0.1:$TP" --no-connect --save-creds "$WORK/creds.json" \
  --json "$WORK/prov.json" >/dev/null 2>&1
PROV_S=$(( $(date +%s) - T0 ))
SIM_RC=0
cpu_s() { awk '{printf "%.1f\n", ($14 + $15) / 100}' "/proc/$1/stat"; }
GW_CPU0=$(cpu_s "$GW_PID")
/usr/bin/time -f "%U %S" -o "$WORK/sim.time" timeout 3000 "$SIM" --admin "http://127.0.0.1:$ADMIN_PORT" --token "$GW_TOKEN" --quiet \
  --creds "$WORK/creds.json" --tcp-url "tcp://127.0.0.1:$TP" --task --firmware-size "$FW" \
  --fail 0.02 --silent 0.01 --max-online "$ONLINE" --connect-parallel 512 --max-downloads "$DLP" \
  --push-timeout 10 --max-retries 0 --timeout 2800 --json "$WORK/sim.json" >"$WORK/sim.out" 2>&1 \
  || SIM_RC=$?
GW_CPU=$(awk -v a="$GW_CPU0" -v b="$(cpu_s "$GW_PID")" 'BEGIN { printf "%.0f\n", b - a }')
SIM_CPU=$(awk '{ printf "%.0f\n", $1 + $2 }' "$WORK/sim.time" 2>/dev/null || echo "?")
PEAK=$(hwm_kb "$GW_PID")
SPLIT=$(rss_split "$GW_PID")
gw_stop
VALUE=$(jget "$WORK/sim.json" 'j.times_s.task_create_to_end')
COUNTS=$(jget "$WORK/sim.json" 'j.task && j.task.final ? j.task.final.statusCounts : {}')
PROBLEMS=$(jget "$WORK/sim.json" 'j.problems.length')
R=$(ratio "$VALUE" "$BASE")
echo "Rollout: $N TCP devices (waves of $ONLINE online), image $FW bytes, 2 % fail, 1 % silent;" \
  "provisioning took ${PROV_S} s (not counted)"
echo "  records by status: $COUNTS; simulator checks: $([ "$SIM_RC" = 0 ] && echo 'all passed (no record lost)' || echo "FAILED ($PROBLEMS problems, see below)")"
echo "  CPU during the rollout: gateway ${GW_CPU} s, simulator ${SIM_CPU} s (of $(awk -v v="$VALUE" 'BEGIN { printf "%.0f", v * 2 }') core-seconds)"
echo "  gateway peak RSS $((PEAK / 1024)) MB (at the end: $SPLIT); nginx moved the same $N images in $BASE s"
[ "$SIM_RC" = 0 ] || jget "$WORK/sim.json" 'j.problems.slice(0, 5).join("\n")'
bench_row_header
bench_row "rollout_100k_s (s)" "$VALUE" "$BASE" "$R" "info"
bench_line rollout_100k_s "$VALUE" s "$BASE" "$R" info
