#!/bin/sh
# Installs the Debian packages iotgw needs that are not installed yet.
# Non-interactive, idempotent: it calls apt-get only when something is missing,
# and runs 'apt-get update' once, before the first install.
# Usage: scripts/deps.sh [build|test|fuzz|bench]   (default: build)
set -eu
want="build-essential cmake pkg-config libssl-dev libcjson-dev liblmdb-dev lmdb-utils \
libmbedtls-dev libpaho-mqtt-dev libcoap3-dev libwebsockets-dev libmodbus-dev libuv1-dev \
mosquitto mosquitto-dev libmosquitto-dev mosquitto-clients"
case "${1:-build}" in
  test)  want="$want libcmocka-dev curl openssl nodejs npm" ;;
  fuzz)  want="$want libcmocka-dev clang libclang-rt-14-dev" ;;
  bench) want="$want libcmocka-dev curl nodejs npm nginx-light" ;;
esac
missing=""
for p in $want; do
  # A tool that is already on PATH (node, npm from another source) counts as present.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages and not root; install them:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
# Debian starts a system-wide mosquitto on 127.0.0.1:1883 when the package is installed on a
# machine with systemd. iotgw runs its own private broker there, so a mosquitto that this
# script just installed is stopped and disabled (one installed earlier is left alone).
case " $missing " in
  *" mosquitto "*)
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
      systemctl disable --now mosquitto >/dev/null 2>&1 || true
    fi ;;
esac
