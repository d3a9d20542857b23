# Shared helpers of the benchmark scripts (sourced by bash). Each script sets BUILD (the
# build directory) and WORK (a scratch directory it owns), then:
#   - every process it starts goes through `bench_bg` (recorded; killed by the EXIT trap, so
#     nothing is left behind even when a step fails or the time bound hits);
#   - the gateway is started with `gw_start CONFIG` (waits for the admin API by polling);
#   - figures are printed with `bench_row` (human table) and `bench_line` (DESIGN §8).
# Needs: node (free ports, JSON), curl.

bench_pids=""
bench_bg() { # bench_bg LOGFILE cmd args...   → $! recorded in bench_pids, echoed in BG_PID
  _log=$1; shift
  "$@" >"$_log" 2>&1 &
  BG_PID=$!
  bench_pids="$BG_PID $bench_pids"
}

bench_cleanup() {
  # a gateway that has to be killed leaves its broker (own process group): remember it now
  for _f in "$WORK"/data*/broker/mosquitto.pid; do
    _b=$(cat "$_f" 2>/dev/null || true)
    if [ -n "$_b" ] && grep -q mosquitto "/proc/$_b/cmdline" 2>/dev/null; then
      bench_pids="$bench_pids $_b"
    fi
  done
  for _p in $bench_pids; do kill -TERM "$_p" 2>/dev/null || true; done
  _i=0
  while [ $_i -lt 100 ]; do
    _alive=""
    for _p in $bench_pids; do if kill -0 "$_p" 2>/dev/null; then _alive="$_alive $_p"; fi; done
    [ -z "$_alive" ] && break
    sleep 0.1; _i=$((_i + 1))
  done
  for _p in $bench_pids; do kill -KILL "$_p" 2>/dev/null || true; done
  bench_pids=""
}

bench_init() { # bench_init NAME: WORK dir, fd limit, traps
  WORK=${BENCH_DIR:-/tmp/iotgw-bench}/$1.$$
  mkdir -p "$WORK"
  # devices and connections need descriptors: take what the hard limit allows
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  # (set -e is off inside the handler: cleanup must run to the end whatever fails)
  trap 'set +e; bench_cleanup; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"' EXIT
  trap 'exit 130' INT TERM
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() { # wait_port PORT [SECONDS]
  _end=$(( $(date +%s) + ${2:-20} ))
  while ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do
    [ "$(date +%s)" -ge "$_end" ] && return 1
    sleep 0.05
  done
}

# jget FILE EXPR: a value out of a JSON file (EXPR is JavaScript on `j`).
jget() { node -e "const j=JSON.parse(require('fs').readFileSync('$1','utf8')); const v=($2); console.log(typeof v==='object'?JSON.stringify(v):v)"; }

GW_TOKEN=bench-admin-token-0123456789
admin() { # admin METHOD PATH [BODY]
  if [ -n "${3:-}" ]; then
    curl -s -X "$1" -H "Authorization: Bearer $GW_TOKEN" -H 'content-type: application/json' \
      --data "$3" "http://127.0.0.1:$ADMIN_PORT/admin-api/iot/$2"
  else
    curl -s -X "$1" -H "Authorization: Bearer $GW_TOKEN" "http://127.0.0.1:$ADMIN_PORT/admin-api/iot/$2"
  fi
}

# gw_config FILE ADAPTERS_JSON [OTA_JSON]: a gateway config on free ports (ADMIN_PORT set).
gw_config() {
  ADMIN_PORT=$(free_port)
  _ota=${3:-'{}'}
  cat >"$1" <<EOF
{ "data_dir": "$WORK/data", "log_level": "warn",
  "admin": { "listen": "127.0.0.1:$ADMIN_PORT", "token": "$GW_TOKEN" },
  "storage": { "map_size_mb": 8192 },
  "ota": $_ota,
  "adapters": $2 }
EOF
}

# plain_broker: mosquitto without the gateway's plugin but with its broker's queue settings
# (mqtt_broker.c), on a free port → BPORT, BROKER (pid); the raw substrate of the baselines.
plain_broker() {
  BPORT=$(free_port)
  cat >"$WORK/plain.conf" <<CONF
listener $BPORT 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 100000000
max_queued_bytes 268435456
log_dest stderr
CONF
  bench_bg "$WORK/plain.log" mosquitto -c "$WORK/plain.conf"
  BROKER=$BG_PID
  wait_port "$BPORT"
}

# nginx_serve SIZE: a random image of SIZE bytes at /fw.bin, served by one nginx worker
# (sendfile, no logs) on a free port → NPORT, NGINX (pid); the download baselines.
nginx_serve() {
  mkdir -p "$WORK/www" "$WORK/nginx"
  head -c "$1" /dev/urandom >"$WORK/www/fw.bin"
  chmod -R a+rX "$WORK"
  NPORT=$(free_port)
  cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$NPORT; root $WORK/www; }
}
CONF
  bench_bg "$WORK/nginx.out" nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
  NGINX=$BG_PID
  wait_port "$NPORT"
}

gw_start() { # gw_start CONFIG → GW_PID; waits for the admin API
  bench_bg "$WORK/gateway.log" "$BUILD/iotgw" -c "$1"
  GW_PID=$BG_PID
  _end=$(( $(date +%s) + 30 ))
  until admin GET 'product/page?pageNo=1&pageSize=1' 2>/dev/null | grep -q '"code":0'; do
    if ! kill -0 "$GW_PID" 2>/dev/null || [ "$(date +%s)" -ge "$_end" ]; then
      echo "gateway did not start:" >&2; tail -20 "$WORK/gateway.log" >&2; return 1
    fi
    sleep 0.05
  done
}

gw_stop() { # SIGTERM and a bounded wait for the clean exit
  kill -TERM "$GW_PID" 2>/dev/null
  _i=0
  while kill -0 "$GW_PID" 2>/dev/null && [ $_i -lt 300 ]; do sleep 0.1; _i=$((_i + 1)); done
  kill -KILL "$GW_PID" 2>/dev/null || true
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# "anon A MB, file F MB": heap and stacks vs mapped files (the LMDB map counts as RSS too)
rss_split() { awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {printf "anon %d MB, file %d MB\n", a/1024, f/1024}' "/proc/$1/status" 2>/dev/null; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ratio A B with 3 decimals (0 when B is 0)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print 0; else printf "%.3f\n", a / b }'; }

bench_row_header() {
  printf '%-34s %14s %14s %8s %10s\n' figure value baseline ratio goal
}
bench_row() { # bench_row FIGURE VALUE BASELINE RATIO GOAL
  printf '%-34s %14s %14s %8s %10s\n' "$1" "$2" "$3" "$4" "$5"
}
bench_line() { # bench_line NAME VALUE UNIT BASELINE RATIO GOAL
  printf 'BENCH name=%s value=%s unit=%s baseline=%s ratio=%s goal=%s\n' "$1" "$2" "$3" "$4" "$5" "$6"
}
