#!/usr/bin/env bash
# bench/local_delivery.sh — accept-and-deliver throughput, mailhop vs Postfix,
# in the same run (run as root: the Postfix instance needs it).
#
# Load: N messages (default 20,000) of SIZE bytes (default 2048) over SESSIONS
# (default 20) parallel smtp-source sessions, one connection per message, to
# user@local.test. mailhop delivers into its mail files (durable: SQLite WAL,
# synchronous=FULL, group commit); Postfix into Maildirs (its queue fsyncs).
# Prints each server's figures and the ratio of end-to-end rates.
#
# Needs: postfix (smtp-source, smtp-sink; `apt-get install postfix` with
# "No configuration"), python3. env: N, SESSIONS, SIZE, REPEAT, SKIP_POSTFIX=1
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TOP="$(cd "$HERE/.." && pwd)"
N=${N:-20000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-2048}
PORT=${MAILHOP_PORT:-2600}
export RESULTS=${RESULTS:-$HERE/results/local-$(date +%Y%m%d-%H%M%S).jsonl}
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
name = "Mail/Bench"
hostname = "mail.local.test"
smtp_auth = "off"
data = "data"

[server.listen]
smtp = "127.0.0.1:$PORT"

[server.debug]
Log_MailRouting = 10

[[configuration]]
server = "*"

[[person]]
full_name = "CN=User/O=Bench"
short_name = "user"
internet_address = "user@local.test"
mail_server = "Mail/Bench"
mail_file = "mail/user"
TOML

start_mailhop "$WORK/directory.toml"
COUNT="'$BIN' console --directory '$WORK/directory.toml' show stat Mail.Delivered | awk '/Mail.Delivered =/ {print \$3}'"

for _ in $(seq "${REPEAT:-1}"); do
    LABEL=mailhop-local2k "$HERE/harness/command_e2e.sh" "127.0.0.1:$PORT" "$COUNT" "$N" "$SESSIONS" "$SIZE" "$MH_PID"
done
kill "$MH_PID"; wait "$MH_PID" 2>/dev/null || true

if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
    CASES=local2k N=$N SESSIONS=$SESSIONS REPEAT=${REPEAT:-1} "$HERE/harness/postfix_baseline.sh" >&2
fi

python3 - "$RESULTS" <<'PY'
import json, sys, statistics
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fmt = lambda v: "n/a" if v is None else f"{v:.1f}"
def med(label, key):
    v = [r.get(key) for r in runs if r.get("label", "").startswith(label) and r.get(key) is not None]
    return statistics.median(v) if v else None
mh, pf = med("mailhop", "e2e_msgs_per_s"), med("postfix_maildir", "e2e_msgs_per_s")
for name, label in (("mailhop", "mailhop"), ("postfix", "postfix_maildir")):
    print(f"{name}: accept {fmt(med(label,'accept_msgs_per_s'))} msg/s, end-to-end {fmt(med(label,'e2e_msgs_per_s'))} msg/s, "
          f"peak RSS {fmt(med(label,'server_peak_rss_mib'))} MiB, server CPU {fmt(med(label,'server_cpu_s'))} s")
if mh and pf:
    print(f"ratio mailhop/postfix end-to-end: {mh/pf:.2f}x")
PY
