#!/usr/bin/env bash
# bench/relay.sh — end-to-end relay throughput, mailhop vs Postfix, in the
# same run (run as root: the Postfix instance needs it).
#
# Load: N messages (default 20,000) of 2 KiB and of 20 KiB over SESSIONS
# (default 20) smtp-source sessions, one connection per message, to
# user@remote.test; each server relays remote.test to smtp-sink on
# 127.0.0.1:2626 and the run ends when the sink has counted N. mailhop
# acknowledges only durable messages (SQLite WAL, synchronous=FULL, group
# commit) and relays through its relay host; the load generator is trusted by
# `relay_exempt_hosts`, as an application server would be.
#
# Needs: postfix (smtp-source, smtp-sink), python3. env: N, SESSIONS, REPEAT,
# SIZES (default "2048 20480"), SKIP_POSTFIX=1
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TOP="$(cd "$HERE/.." && pwd)"
N=${N:-20000}
SESSIONS=${SESSIONS:-20}
SIZES=${SIZES:-2048 20480}
PORT=${MAILHOP_PORT:-2600}
SINKPORT=2626
export RESULTS=${RESULTS:-$HERE/results/relay-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$HERE/results"

command -v smtp-source >/dev/null || {
    echo "smtp-source missing: apt-get install postfix (\"No configuration\")" >&2; exit 1; }

# shellcheck source=lib.sh
. "$HERE/lib.sh"
build_mailhop "$TOP"

WORK=$(mktemp -d /var/tmp/mailhop-bench.XXXXXX)
trap 'kill "$MH_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/directory.toml" <<TOML
[domain]
name = "Bench"

[global_domain]
primary_internet_domain = "local.test"

[[server]]
name = "Relay/Bench"
hostname = "relay.local.test"
smtp_auth = "off"
data = "data"

[server.listen]
smtp = "127.0.0.1:$PORT"

[server.debug]
Log_MailRouting = 10

[[configuration]]
server = "*"
smtp_outside_local_domain = true
relay_host = "[127.0.0.1]:$SINKPORT"
transfer_threads = 20
max_concurrent_transfers = 20

[configuration.inbound]
relay_exempt_hosts = ["127.0.0.0/8"]
TOML

start_mailhop "$WORK/directory.toml"

for _ in $(seq "${REPEAT:-1}"); do
    for size in $SIZES; do
        LABEL=mailhop-relay-$size "$HERE/harness/relay_e2e.sh" "127.0.0.1:$PORT" "$SINKPORT" "$N" "$SESSIONS" "$size" "$MH_PID"
    done
done
kill "$MH_PID"; wait "$MH_PID" 2>/dev/null || true

if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
    cases=""
    for size in $SIZES; do
        case $size in 2048) cases="$cases relay2k" ;; 20480) cases="$cases relay20k" ;; esac
    done
    CASES="$cases" N=$N SESSIONS=$SESSIONS REPEAT=${REPEAT:-1} "$HERE/harness/postfix_baseline.sh" >&2
fi

python3 - "$RESULTS" "$SIZES" <<'PY'
import json, sys, statistics
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fmt = lambda v: "n/a" if v is None else f"{v:.1f}"
def med(label, key):
    v = [r.get(key) for r in runs if r.get("label") == label and r.get(key) is not None]
    return statistics.median(v) if v else None
for size in sys.argv[2].split():
    pf_label = {"2048": "postfix_relay_2k", "20480": "postfix_relay_20k"}.get(size, "")
    for name, label in (("mailhop", f"mailhop-relay-{size}"), ("postfix", pf_label)):
        print(f"{size} B {name}: accept {fmt(med(label,'accept_msgs_per_s'))} msg/s, end-to-end {fmt(med(label,'e2e_msgs_per_s'))} msg/s, "
              f"peak RSS {fmt(med(label,'server_peak_rss_mib'))} MiB, server CPU {fmt(med(label,'server_cpu_s'))} s")
    mh, pf = med(f"mailhop-relay-{size}", "e2e_msgs_per_s"), med(pf_label, "e2e_msgs_per_s")
    if mh and pf:
        print(f"{size} B ratio mailhop/postfix end-to-end: {mh/pf:.2f}x")
PY
