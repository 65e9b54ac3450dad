#!/usr/bin/env bash
# Run the Autobahn|Testsuite against wskit in both roles and compare the results with
# autobahn/expected-results.json.
#
#   autobahn/run.sh                 every case, server then client; then the server through axum
#                                   and both roles on the blocking API, those three without
#                                   9.x, 12.2-12.5 and 13.2-13.7 unless AUTOBAHN_AXUM_FULL=1 /
#                                   AUTOBAHN_SYNC_FULL=1
#   autobahn/run.sh --fast          without the slow 9.x, 12.x and 13.x (12.1 and 13.1 kept for
#                                   the last three); no comparison
#   autobahn/run.sh --write         record the results as the new expectation
#
# The harness is ../shared/autobahn (or $AUTOBAHN_HARNESS); its Python venv goes to
# $AUTOBAHN_VENV (default: target/autobahn-venv), so nothing is written beside the harness.
# The testees listen on 127.0.0.1:9001 (server role), 9003 (through axum) and 9004 (blocking
# server), and the suite on 127.0.0.1:9002 (client roles), as fuzzingclient.json and
# fuzzingserver.json say for the first two.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
HARNESS="$(cd "${AUTOBAHN_HARNESS:-$ROOT/../shared/autobahn}" && pwd)"
export AUTOBAHN_VENV="${AUTOBAHN_VENV:-$ROOT/target/autobahn-venv}"
MODE=check
case "${1:-}" in
  --fast) MODE=fast ;;
  --write) MODE=write ;;
  "") ;;
  *) echo "usage: autobahn/run.sh [--fast|--write]" >&2; exit 2 ;;
esac

bash "$HARNESS/setup.sh"
PY="$AUTOBAHN_VENV/bin/python"
WSTEST="$AUTOBAHN_VENV/bin/wstest"
cargo build --release --locked --example autobahn_server --example autobahn_client
cargo build --release --locked --features axum --example axum_echo
cargo build --release --locked --features sync --example sync_autobahn_server --example sync_autobahn_client

WORK="$ROOT/autobahn/reports"
rm -rf "$WORK"
mkdir -p "$WORK/servers" "$WORK/clients" "$WORK/axum" "$WORK/sync-servers" "$WORK/sync-clients"
# The committed specs, with --fast's exclusions added when asked.
"$PY" - "$MODE" "$ROOT/autobahn" "$WORK" <<'PYEOF'
import json, sys
mode, src, work = sys.argv[1:]
for name in ("fuzzingclient.json", "fuzzingserver.json"):
    with open(f"{src}/{name}") as f:
        spec = json.load(f)
    if mode == "fast":
        spec["exclude-cases"] = ["9.*", "12.*", "13.*"]
    with open(f"{work}/{name}", "w") as f:
        json.dump(spec, f, indent=2)
# The server role again, through the axum integration (examples/axum_echo). Without the slow
# section 9 and most of 12 and 13 unless AUTOBAHN_AXUM_FULL=1: they test the connection, which
# is the same; what the integration changes is the handshake (12.1 and 13.1, kept, negotiate
# permessage-deflate) and the stream.
import os
with open(f"{src}/fuzzingclient.json") as f:
    spec = json.load(f)
spec["outdir"] = "./reports/axum"
spec["servers"] = [{"agent": "wskit-axum", "url": "ws://127.0.0.1:9003"}]
if os.environ.get("AUTOBAHN_AXUM_FULL") != "1" or mode == "fast":
    spec["exclude-cases"] = ["9.*"] + [f"12.{n}.*" for n in range(2, 6)] + [
        f"13.{n}.*" for n in range(2, 8)
    ]
with open(f"{work}/fuzzingclient-axum.json", "w") as f:
    json.dump(spec, f, indent=2)
# Both roles again on the blocking API (examples/sync_autobahn_*): the same protocol and
# session, driven by threads. The same cases as the axum run unless AUTOBAHN_SYNC_FULL=1.
slow = ["9.*"] + [f"12.{n}.*" for n in range(2, 6)] + [f"13.{n}.*" for n in range(2, 8)]
full = os.environ.get("AUTOBAHN_SYNC_FULL") == "1" and mode != "fast"
with open(f"{src}/fuzzingclient.json") as f:
    spec = json.load(f)
spec["outdir"] = "./reports/sync-servers"
spec["servers"] = [{"agent": "wskit-sync", "url": "ws://127.0.0.1:9004"}]
if not full:
    spec["exclude-cases"] = slow
with open(f"{work}/fuzzingclient-sync.json", "w") as f:
    json.dump(spec, f, indent=2)
with open(f"{src}/fuzzingserver.json") as f:
    spec = json.load(f)
spec["outdir"] = "./reports/sync-clients"
if not full:
    spec["exclude-cases"] = slow
with open(f"{work}/fuzzingserver-sync.json", "w") as f:
    json.dump(spec, f, indent=2)
PYEOF

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== server role: wstest -m fuzzingclient against examples/autobahn_server"
./target/release/examples/autobahn_server 127.0.0.1:9001 > "$WORK/servers/testee.log" 2>&1 &
PIDS+=($!)
"$PY" - <<'PYEOF'
import socket, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", 9001), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the server testee did not start")
PYEOF
START=$(date +%s)
(cd "$ROOT/autobahn" && "$WSTEST" -m fuzzingclient -s reports/fuzzingclient.json > reports/servers/wstest.log 2>&1)
echo "   done in $(( $(date +%s) - START )) s"
"$PY" "$HARNESS/summarize.py" "$WORK/servers" || true

echo "== client role: wstest -m fuzzingserver with examples/autobahn_client"
(cd "$ROOT/autobahn" && exec "$WSTEST" -m fuzzingserver -s reports/fuzzingserver.json -u 0 > reports/clients/wstest.log 2>&1) &
PIDS+=($!)
CTL=("$PY" "$HARNESS/fuzzingserver_ctl.py")
"${CTL[@]}" wait 9002 --timeout 60
START=$(date +%s)
./target/release/examples/autobahn_client ws://127.0.0.1:9002 > "$WORK/clients/testee.log" 2>&1
"${CTL[@]}" update-reports 9002 --agent wskit
"${CTL[@]}" stop 9002 --timeout 5 || true
echo "   done in $(( $(date +%s) - START )) s"
"$PY" "$HARNESS/summarize.py" "$WORK/clients" || true

echo "== server role through axum: wstest -m fuzzingclient against examples/axum_echo"
./target/release/examples/axum_echo 127.0.0.1:9003 > "$WORK/axum/testee.log" 2>&1 &
PIDS+=($!)
"$PY" - <<'PYEOF'
import socket, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", 9003), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the axum testee did not start")
PYEOF
START=$(date +%s)
(cd "$ROOT/autobahn" && "$WSTEST" -m fuzzingclient -s reports/fuzzingclient-axum.json > reports/axum/wstest.log 2>&1)
echo "   done in $(( $(date +%s) - START )) s"
"$PY" "$HARNESS/summarize.py" "$WORK/axum" || true

echo "== server role on the blocking API: wstest -m fuzzingclient against examples/sync_autobahn_server"
./target/release/examples/sync_autobahn_server 127.0.0.1:9004 > "$WORK/sync-servers/testee.log" 2>&1 &
PIDS+=($!)
"$PY" - <<'PYEOF'
import socket, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", 9004), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the blocking server testee did not start")
PYEOF
START=$(date +%s)
(cd "$ROOT/autobahn" && "$WSTEST" -m fuzzingclient -s reports/fuzzingclient-sync.json > reports/sync-servers/wstest.log 2>&1)
echo "   done in $(( $(date +%s) - START )) s"
"$PY" "$HARNESS/summarize.py" "$WORK/sync-servers" || true

echo "== client role on the blocking API: wstest -m fuzzingserver with examples/sync_autobahn_client"
(cd "$ROOT/autobahn" && exec "$WSTEST" -m fuzzingserver -s reports/fuzzingserver-sync.json -u 0 > reports/sync-clients/wstest.log 2>&1) &
PIDS+=($!)
"${CTL[@]}" wait 9002 --timeout 60
START=$(date +%s)
./target/release/examples/sync_autobahn_client ws://127.0.0.1:9002 > "$WORK/sync-clients/testee.log" 2>&1
"${CTL[@]}" update-reports 9002 --agent wskit-sync
"${CTL[@]}" stop 9002 --timeout 5 || true
echo "   done in $(( $(date +%s) - START )) s"
"$PY" "$HARNESS/summarize.py" "$WORK/sync-clients" || true

REPORTS=(server="$WORK/servers/index.json" client="$WORK/clients/index.json" axum="$WORK/axum/index.json"
  sync-server="$WORK/sync-servers/index.json" sync-client="$WORK/sync-clients/index.json")
case "$MODE" in
  fast) echo "(--fast: not compared with the expected results)" ;;
  write) "$PY" autobahn/compare.py --write autobahn/expected-results.json "${REPORTS[@]}" ;;
  check) "$PY" autobahn/compare.py autobahn/expected-results.json "${REPORTS[@]}" ;;
esac
