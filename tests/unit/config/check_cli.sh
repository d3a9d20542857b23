#!/bin/sh
# Runs the built iotgw on config files and checks what a user sees: exit codes and messages.
# usage: check_cli.sh IOTGW SOURCE_DIR   (SOURCE_DIR = the repository root)
set -u
IOTGW=$1
SRC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# 1. a bad file: exit 2, the message names the key, nothing on stdout
"$IOTGW" -c "$SRC/tests/unit/config/bad_framing.json" --check-config >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] || fail "bad config: exit $rc, expected 2"
expected='config: adapters[2].framing.length_field_size: must be 1, 2 or 4 (got 3)'
[ "$(cat "$TMP/err")" = "$expected" ] || fail "bad config: stderr '$(cat "$TMP/err")'"
[ ! -s "$TMP/out" ] || fail "bad config: unexpected stdout"

# 2. the same without --check-config: still exit 2 before anything starts
"$IOTGW" -c "$SRC/tests/unit/config/bad_framing.json" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] || fail "bad config (run): exit $rc, expected 2"
grep -qF "$expected" "$TMP/err" || fail "bad config (run): stderr '$(cat "$TMP/err")'"

# 3. a missing file: exit 2 with the path
"$IOTGW" -c "$TMP/none.json" --check-config >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] || fail "missing file: exit $rc"
grep -qF "cannot open $TMP/none.json" "$TMP/err" || fail "missing file: '$(cat "$TMP/err")'"

# 4. the shipped config: exit 0, effective config on stdout with --data-dir applied
"$IOTGW" -c "$SRC/config/iotgw.json" --data-dir "$TMP/data" --check-config >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 0 ] || fail "shipped config: exit $rc: $(cat "$TMP/err")"
grep -qF "\"data_dir\":	\"$TMP/data\"" "$TMP/out" || fail "shipped config: data_dir not overridden"
grep -qF '"base_url":	"http://127.0.0.1:8080"' "$TMP/out" || fail "shipped config: base_url"

# (Without --check-config the gateway starts; tests/conformance covers that.)

# 6. --help-config documents options; --help shows usage; a bad option exits 2
"$IOTGW" --help-config >"$TMP/out" || fail "--help-config: exit $?"
grep -q '^adapters\[type=tcp\]\.framing\.length_field_size$' "$TMP/out" || fail "--help-config: option missing"
"$IOTGW" --help >"$TMP/out" || fail "--help: exit $?"
grep -q -- '--check-config' "$TMP/out" || fail "--help: no usage"
"$IOTGW" --bogus >/dev/null 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "--bogus: exit $rc, expected 2"

[ "$failures" -eq 0 ] && echo "check_cli: all passed"
[ "$failures" -eq 0 ]
