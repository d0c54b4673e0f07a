#!/usr/bin/env bash
# bench/backlog.sh — a large backlog for the Internet survives a restart and
# drains with flat memory.
#
#  1. mailhop relays remote.test to 127.0.0.1:SINKPORT, where nothing listens:
#     N messages (default 100,000) of SIZE bytes (default 20 KiB) are accepted
#     and wait in the Retry queue (initial_retry = 1h: nothing is retried).
#  2. mailhop is stopped and started again: the queue is rebuilt from the mail
#     box rows, page by page.
#  3. smtp-sink starts on SINKPORT, `route *` releases the queue, and the run
#     ends when the sink has counted N messages.
# Prints the accept rate, the time to rebuild and drain, and the peak RSS
# (VmHWM) of the restarted process over the restart and the whole drain.
#
# Needs: postfix (smtp-source, smtp-sink), python3. env: N, SESSIONS, SIZE
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TOP="$(cd "$HERE/.." && pwd)"
N=${N:-100000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-20480}
PORT=${MAILHOP_PORT:-2610}
SINKPORT=${SINKPORT:-2636}

command -v smtp-source >/dev/null || {
    echo "smtp-source missing: apt-get install postfix (\"No configuration\")" >&2; exit 1; }

# shellcheck source=lib.sh
. "$HERE/lib.sh"
build_mailhop "$TOP"

WORK=$(mktemp -d /var/tmp/mailhop-backlog.XXXXXX)
SINK_PID=""
trap 'kill "$MH_PID" "$SINK_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
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
initial_retry = "1h"
expire_after = "5d"

[configuration.inbound]
relay_exempt_hosts = ["127.0.0.0/8"]
TOML

console() { "$BIN" console --directory "$WORK/directory.toml" "$@"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

start_mailhop "$WORK/directory.toml"
echo "accepting $N messages of $SIZE bytes (nothing listens on $SINKPORT) ..." >&2
accept=$(SMTP_SOURCE_OPTS=-d "$HERE/harness/smtp_load.sh" "127.0.0.1:$PORT" "$N" "$SESSIONS" "$SIZE" remote.test)
echo "accept: $accept" >&2
first_hwm=$(hwm_kb "$MH_PID")
console tell router show queues >&2 || true
kill "$MH_PID"; wait "$MH_PID" 2>/dev/null || true

t0=$(date +%s.%N)
start_mailhop "$WORK/directory.toml"
COUNT="$WORK/sink.count"
SINK_PID=$("$HERE/harness/sink.sh" "$SINKPORT" "$COUNT")
# Retry times were recorded before the restart: route * releases the queue
# (repeated while the rows are still being read back).
got=0
while [ "$got" -lt "$N" ]; do
    console route '*' >/dev/null 2>&1 || true
    sleep 1
    got=$(python3 "$HERE/harness/benchlib.py" count sink "$COUNT")
done
t1=$(date +%s.%N)
drain_hwm=$(hwm_kb "$MH_PID")
drain_s=$(python3 -c "print(round($t1 - $t0, 1))")
echo
echo "backlog N=$N size=$SIZE"
echo "  $accept"
echo "  peak RSS while accepting:          $((first_hwm / 1024)) MiB"
echo "  restart + drain to the sink:       ${drain_s} s ($(python3 -c "print(round($N / ($t1 - $t0)))") msg/s)"
echo "  peak RSS over restart and drain:   $((drain_hwm / 1024)) MiB"
