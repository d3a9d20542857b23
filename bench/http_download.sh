#!/bin/bash
# Benchmark 4 (issue 7): firmware download. PARALLEL clients fetch a 10 MB image by HTTP from
# the gateway's firmware server (admin listener, one lws thread) against nginx (Debian
# nginx-light, one worker: the same share of the machine as the gateway's server thread)
# serving the same file on loopback, in the same run, with the same client (bench_download).
# Usage: http_download.sh BUILD_DIR  (DL_SIZE bytes, default 10485760; DL_PARALLEL, default
# 16; DL_TOTAL downloads per server, default 64)
set -eu
BUILD=$(cd "${1:-build}" && pwd)
SIZE=${DL_SIZE:-10485760}
PAR=${DL_PARALLEL:-16}
TOTAL=${DL_TOTAL:-64}
. "$(dirname "$0")/lib.sh"
bench_init http_download
BD="$BUILD/bench/bench_download"
TO=$((TOTAL * SIZE / 5000000 + 60))

# ---- baseline: nginx ----
nginx_serve "$SIZE"
timeout "$TO" "$BD" "http://127.0.0.1:$NPORT/fw.bin" "$SIZE" "$PAR" "$TOTAL" >"$WORK/base.out"
BASE=$(sed -n 's/.*mb_per_s=\([0-9.]*\).*/\1/p' "$WORK/base.out")

# ---- the gateway's firmware server ----
gw_config "$WORK/iotgw.json" "[]"
gw_start "$WORK/iotgw.json"
admin POST product/create '{"name":"bench-dl"}' >"$WORK/prod.json"
PID_=$(jget "$WORK/prod.json" 'j.data.id')
curl -s -X POST -H "Authorization: Bearer $GW_TOKEN" -H 'content-type: application/octet-stream' \
  --data-binary "@$WORK/www/fw.bin" \
  "http://127.0.0.1:$ADMIN_PORT/admin-api/iot/ota/firmware/upload?productId=$PID_&name=fw&version=1.0.0&description=bench" \
  >"$WORK/fw.json"
FID=$(jget "$WORK/fw.json" 'j.data.id')
timeout "$TO" "$BD" "http://127.0.0.1:$ADMIN_PORT/ota/firmware/$FID" "$SIZE" "$PAR" "$TOTAL" \
  "Bearer $GW_TOKEN" >"$WORK/gw.out"
VALUE=$(sed -n 's/.*mb_per_s=\([0-9.]*\).*/\1/p' "$WORK/gw.out")
GW_CPU=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
gw_stop

R=$(ratio "$VALUE" "$BASE")
echo "HTTP download: $TOTAL x $SIZE bytes, $PAR in parallel; gateway $(cat "$WORK/gw.out")"
echo "  nginx $(cat "$WORK/base.out")"
bench_row_header
bench_row "http_download (MB/s)" "$VALUE" "$BASE" "$R" ">=0.8"
bench_line http_download "$VALUE" MB/s "$BASE" "$R" ">=0.8"
