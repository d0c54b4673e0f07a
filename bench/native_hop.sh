#!/usr/bin/env bash
# bench/native_hop.sh — one native hop between two mailhop servers of one
# domain, against a pair of Postfix instances, in the same run (run as root:
# the Postfix instances need it).
#
# mailhop: one `mailhop serve` process runs A/Bench and B/Bench of the domain
# Bench (one directory file, below a fresh /var/tmp/mailhop-nativehop.*).
# A takes SMTP on 127.0.0.1:2600; user@local.test has B/Bench as mail server,
# so A transfers every message over the native protocol (A 127.0.0.1:2652,
# B 127.0.0.1:2653) and B delivers it into the user's mail file (durable:
# SQLite WAL, synchronous=FULL, group commit).  Delivered messages are
# counted on B with `mailhop console --server B/Bench show stat
# Mail.Delivered`; server CPU and peak RSS are those of the one process.
# Label mailhop-nativehop2k.
# Postfix: harness/postfix_pair.sh — instance A (127.0.0.1:2525) relays over
# SMTP to instance B (127.0.0.1:2535), which delivers into Maildirs (its
# queues fsync); CPU and RSS summed over both instances.  Label
# postfix_pair_2k.
# Load for both: N messages (default 20,000) of SIZE bytes (default 2048)
# over SESSIONS (default 20) parallel smtp-source sessions, one connection
# per message, to user@local.test.  Prints each side's figures, the ratio
# mailhop/postfix-pair end-to-end and, when the same $RESULTS holds a
# single-server figure (mailhop-local2k, see RUN_SINGLE), the ratio of the
# native-hop rate to the single-server rate.  Nothing leaves 127.0.0.0/8.
#
# If B never gets the mail (e.g. a mailhop without native transfer keeps it
# Pending on A), the harness gives up after E2E_STALL_S (default 120) s
# without a delivery, or E2E_TIMEOUT (default 900) s in all, says so, shows
# A's queues, and the script goes on with Postfix and exits 1.
#
# Needs: postfix (smtp-source; `apt-get install postfix` with "No
# configuration"), python3, ss, cargo (offline build).  env: N, SESSIONS,
# SIZE, REPEAT, RESULTS (default results/nativehop-<timestamp>.jsonl),
# SKIP_POSTFIX=1, SKIP_MAILHOP=1 (only the Postfix pair, no build),
# RUN_SINGLE=1 (first run bench/local_delivery.sh with SKIP_POSTFIX=1 into
# the same $RESULTS: the single-server mailhop figure; the native hop then
# runs the build it made instead of building again), E2E_TIMEOUT,
# E2E_STALL_S, QUIET_MAX_S, SMTP_SOURCE_OPTS, MAILHOP_BIN (run this mailhop
# binary instead of building one); the Postfix pair's own env
# (PFPAIR_A_DIR, PFPAIR_B_DIR, PF_EXTRA_MAIN...) is passed through.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TOP="$(cd "$HERE/.." && pwd)"
N=${N:-20000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-2048}
REPEAT=${REPEAT:-1}
SMTP_PORT=2600
A_NATIVE=2652
B_NATIVE=2653
export RESULTS=${RESULTS:-$HERE/results/nativehop-$(date +%Y%m%d-%H%M%S).jsonl}
export CARGO_NET_OFFLINE=true   # build_mailhop: never fetch anything
mkdir -p "$HERE/results" "$(dirname "$RESULTS")"

command -v smtp-source >/dev/null || {
    echo "smtp-source missing: apt-get install postfix (\"No configuration\")" >&2; exit 1; }

rc=0
if [ "${RUN_SINGLE:-0}" = 1 ] && [ "${SKIP_MAILHOP:-0}" != 1 ]; then
    echo "### mailhop single server (bench/local_delivery.sh)" >&2
    N=$N SESSIONS=$SESSIONS SIZE=$SIZE REPEAT=$REPEAT SKIP_POSTFIX=1 \
        "$HERE/local_delivery.sh" >&2 || rc=1
fi

# ---------------------------------------------------------------- mailhop
if [ "${SKIP_MAILHOP:-0}" != 1 ]; then
    # shellcheck source=lib.sh
    . "$HERE/lib.sh"
    if [ -n "${MAILHOP_BIN:-}" ]; then
        BIN=$MAILHOP_BIN; echo "using $BIN (MAILHOP_BIN), not building" >&2
    elif [ "${RUN_SINGLE:-0}" = 1 ]; then
        # the build local_delivery.sh has just made and measured: both
        # figures come from one build even if the sources changed since
        BIN=$TOP/target/release/mailhop
        echo "using the build bench/local_delivery.sh just made" >&2
    else
        build_mailhop "$TOP"
    fi
    for port in "$SMTP_PORT" "$A_NATIVE" "$B_NATIVE"; do
        if ss -Hltn "sport = :$port" | grep -q .; then
            echo "port $port already in use; stop the other server first" >&2; exit 1
        fi
    done

    MH_PID=""
    WORK=$(mktemp -d /var/tmp/mailhop-nativehop.XXXXXX)
    stop_mailhop() {
        if [ -n "$MH_PID" ]; then
            kill -TERM "$MH_PID" 2>/dev/null || true
            kill -CONT "$MH_PID" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$MH_PID" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$MH_PID" 2>/dev/null; then
                echo "mailhop (pid $MH_PID) did not stop within 10 s of SIGTERM; killing it" >&2
                kill -KILL "$MH_PID" 2>/dev/null || true
            fi
            wait "$MH_PID" 2>/dev/null || true
            MH_PID=""
        fi
    }
    trap 'stop_mailhop; rm -rf "$WORK"' EXIT
    # run a copy: a concurrent cargo build may replace target/release/mailhop
    cp "$BIN" "$WORK/mailhop"
    BIN=$WORK/mailhop
    echo "mailhop binary sha256 $(sha256sum "$BIN" | cut -c1-16)" >&2
    DIR_FILE=$WORK/directory.toml
    cat > "$DIR_FILE" <<TOML
[domain]
name = "Bench"

[global_domain]
primary_internet_domain = "local.test"

[[server]]
name = "A/Bench"
hostname = "a.local.test"
smtp_auth = "off"
networks = ["LAN"]
data = "data-a"

[server.listen]
smtp = "127.0.0.1:$SMTP_PORT"
native = "127.0.0.1:$A_NATIVE"

[[server]]
name = "B/Bench"
hostname = "b.local.test"
smtp_auth = "off"
networks = ["LAN"]
data = "data-b"

[server.listen]
native = "127.0.0.1:$B_NATIVE"

[[configuration]]
server = "*"

[[person]]
full_name = "CN=User/O=Bench"
short_name = "user"
internet_address = "user@local.test"
mail_server = "B/Bench"
mail_file = "mail/user"
TOML

    # start_mailhop_servers DIRECTORY_FILE NAME...: lib.sh's start_mailhop for
    # a directory with several servers in one process: waits until the
    # console of every named server answers.
    start_mailhop_servers() {
        local dir_file=$1 logs name ok
        shift
        logs=$(dirname "$dir_file")
        "$BIN" check --directory "$dir_file" >&2
        MAILHOP_LOG=warn "$BIN" serve --directory "$dir_file" > "$logs/mailhop.out" 2> "$logs/mailhop.err" &
        MH_PID=$!
        for _ in $(seq 150); do
            ok=1
            for name in "$@"; do
                "$BIN" console --directory "$dir_file" --server "$name" show server >/dev/null 2>&1 || { ok=0; break; }
            done
            [ "$ok" = 1 ] && return 0
            kill -0 "$MH_PID" 2>/dev/null || break
            sleep 0.1
        done
        echo "mailhop did not start both servers ($*); see $logs/mailhop.err:" >&2
        tail -5 "$logs/mailhop.err" >&2 || true
        return 1
    }

    start_mailhop_servers "$DIR_FILE" A/Bench B/Bench
    echo "mailhop pid=$MH_PID runs A/Bench (smtp 127.0.0.1:$SMTP_PORT, native :$A_NATIVE)" \
        "and B/Bench (native :$B_NATIVE); work folder $WORK" >&2
    COUNT="'$BIN' console --directory '$DIR_FILE' --server B/Bench show stat Mail.Delivered | awk '/Mail.Delivered =/ {print \$3}'"

    for rep in $(seq "$REPEAT"); do
        echo "### mailhop native hop run $rep" >&2
        if ! LABEL=mailhop-nativehop2k "$HERE/harness/command_e2e.sh" "127.0.0.1:$SMTP_PORT" "$COUNT" \
            "$N" "$SESSIONS" "$SIZE" "$MH_PID"; then
            rc=1
            echo "mailhop-nativehop2k: B/Bench did not deliver the $N messages (gave up after" \
                "E2E_STALL_S=${E2E_STALL_S:-120} s without progress or E2E_TIMEOUT=${E2E_TIMEOUT:-900} s);" \
                "no end-to-end figure for mailhop." >&2
            for name in A/Bench B/Bench; do
                echo "$name: $(timeout 10 "$BIN" console --directory "$DIR_FILE" --server "$name" show stat Mail 2>&1 |
                    grep -E 'Mail\.(TotalPending|Transferred|TransferFailures|Delivered|Dead|Hold) =' | tr -s ' \n' ' ')" >&2
            done
            echo "A/Bench tell router show queues:" >&2
            timeout 10 "$BIN" console --directory "$DIR_FILE" --server A/Bench tell router show queues >&2 2>&1 || true
            grep -m3 -iE "not enabled|error" "$WORK/mailhop.err" >&2 || true
            break   # the next run would only wait the same way
        fi
    done
    stop_mailhop
    rm -rf "$WORK"
    trap - EXIT
fi

# ---------------------------------------------------------------- Postfix
if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
    N=$N SESSIONS=$SESSIONS SIZE=$SIZE REPEAT=$REPEAT "$HERE/harness/postfix_pair.sh" >&2 || rc=1
fi

# ---------------------------------------------------------------- summary
[ -s "$RESULTS" ] || { echo "no results in $RESULTS" >&2; exit 1; }
python3 - "$RESULTS" <<'PY'
import json, sys, statistics
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fmt = lambda v: "n/a" if v is None else f"{v:.1f}"
def med(label, key):
    v = [r.get(key) for r in runs if r.get("label") == label and r.get(key) is not None]
    return statistics.median(v) if v else None
def ran(label):
    return any(r.get("label") == label for r in runs)
hop, pair, single = "mailhop-nativehop2k", "postfix_pair_2k", "mailhop-local2k"
for name, label in (("mailhop native hop", hop), ("postfix pair", pair), ("mailhop single server", single)):
    if not ran(label):
        continue
    print(f"{name}: accept {fmt(med(label,'accept_msgs_per_s'))} msg/s, end-to-end {fmt(med(label,'e2e_msgs_per_s'))} msg/s, "
          f"peak RSS {fmt(med(label,'server_peak_rss_mib'))} MiB, server CPU {fmt(med(label,'server_cpu_s'))} s")
h, p, s = med(hop, "e2e_msgs_per_s"), med(pair, "e2e_msgs_per_s"), med(single, "e2e_msgs_per_s")
if ran(hop) and h is None:
    print("mailhop native hop: not every message was delivered on B/Bench; no end-to-end figure")
if h and p:
    print(f"ratio mailhop/postfix-pair end-to-end: {h/p:.2f}x")
if h and s:
    print(f"ratio native hop/single server (mailhop) end-to-end: {h/s:.2f}x")
elif h:
    print("(no single-server figure in this run; RUN_SINGLE=1 adds one)")
print(f"results: {sys.argv[1]}")
PY
exit "$rc"
