#!/usr/bin/env bash
# bench/imap_vs_dovecot.sh — IMAP on a 10,000-message INBOX, mailhop vs Dovecot,
# in the same run (run as root: Dovecot's private instance needs it).
#
# Both servers get the same N generated messages (2–20 KB, varied senders and
# subjects, ~30% multipart with an attachment) for one user through IMAP
# APPEND. mailhop runs from a temporary directory (one server, IMAP on a free
# loopback port, a person with an argon2 Internet password from
# `mailhop passwd`); Dovecot runs as a private instance (`dovecot -c` with its
# own config, base_dir and Maildir in the temporary folder, 127.0.0.1 only,
# passwd-file with the SAME argon2id hash). The system Dovecot, if any, is not
# touched. bench/imap_client.py then times, per server, a warm-up session and
# ROUNDS sessions (connect+LOGIN+SELECT, UID FETCH 1:* (FLAGS ENVELOPE),
# UID SEARCH SUBJECT, one full body) and each session's peak RSS, prints the
# medians with the mailhop/Dovecot ratio, and keeps the rounds as JSON lines in
# bench/results/imap-<time>.jsonl.
#
# Needs: dovecot-imapd (`apt-get install -y dovecot-imapd`), python3, cargo.
# env: N (10000), ROUNDS (5), CONNS (4 parallel APPEND connections), KEEP=1
# keeps the temporary folder.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TOP="$(cd "$HERE/.." && pwd)"
N=${N:-10000}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-4}
RESULTS=${RESULTS:-$HERE/results/imap-$(date +%Y%m%d-%H%M%S).jsonl}
CLIENT="$HERE/imap_client.py"
mkdir -p "$(dirname "$RESULTS")"

[ "$(id -u)" = 0 ] || { echo "run as root (the private Dovecot instance needs it)" >&2; exit 1; }
DOVECOT=$(command -v dovecot || true)
if [ -z "$DOVECOT" ] || [ ! -x /usr/lib/dovecot/imap ]; then
    echo "Dovecot's IMAP server is missing: apt-get install -y dovecot-imapd" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }

# shellcheck source=lib.sh
. "$HERE/lib.sh"
build_mailhop "$TOP"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

WORK=$(mktemp -d /var/tmp/mailhop-imap-bench.XXXXXX)
MH_PID=""
cleanup() {
    [ -n "$MH_PID" ] && kill "$MH_PID" 2>/dev/null && wait "$MH_PID" 2>/dev/null
    [ -f "$WORK/dovecot/dovecot.conf" ] && "$DOVECOT" -c "$WORK/dovecot/dovecot.conf" stop 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

USER_NAME=bench@local.test
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')
HASH=$(printf '%s' "$PASSWORD" | "$BIN" passwd)

# ---- mailhop ----
SMTP_PORT=$(free_port); MH_IMAP=$(free_port)
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
smtp = "127.0.0.1:$SMTP_PORT"
imap = "127.0.0.1:$MH_IMAP"

[server.debug]
Log_MailRouting = 10

[[configuration]]
server = "*"
smtp_outside_local_domain = false

[[person]]
full_name = "CN=Bench User/O=Bench"
short_name = "bench"
internet_address = "$USER_NAME"
mail_server = "Mail/Bench"
mail_file = "mail/bench"
internet_password = "$HASH"
TOML
start_mailhop "$WORK/directory.toml"
wait_port "$MH_IMAP"
echo "mailhop: filling INBOX with $N messages" >&2
python3 "$CLIENT" fill "127.0.0.1:$MH_IMAP" "$USER_NAME" "$PASSWORD" "$N" "$CONNS"

# ---- Dovecot (private instance) ----
DV="$WORK/dovecot"
DV_PORT=$(free_port)
mkdir -p "$DV/run" "$DV/state" "$DV/mail" "$DV/home"
chmod 755 "$WORK" "$DV"
chown nobody:nogroup "$DV/mail" "$DV/home"
printf '%s:{ARGON2ID}%s\n' "$USER_NAME" "$HASH" > "$DV/passwd"
chmod 644 "$DV/passwd"
cat > "$DV/dovecot.conf" <<CONF
# A private instance: nothing of /etc/dovecot is read.
base_dir = $DV/run
state_dir = $DV/state
instance_name = mailhop-bench-$$
log_path = $DV/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:$DV/mail/%u
passdb {
  driver = passwd-file
  args = $DV/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DV/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DV_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  inet_listener http {
    port = 0
  }
}
CONF
"$DOVECOT" -c "$DV/dovecot.conf"
wait_port "$DV_PORT"
echo "dovecot: filling INBOX with $N messages" >&2
python3 "$CLIENT" fill "127.0.0.1:$DV_PORT" "$USER_NAME" "$PASSWORD" "$N" "$CONNS"

# ---- measure: a warm-up session each, then the rounds alternate between the
# servers, so a busy moment of the machine hits both alike ----
MH=(mailhop "127.0.0.1:$MH_IMAP" "$USER_NAME" "$PASSWORD" --rss "mailhop:$MH_PID" --out "$RESULTS")
DC=(dovecot "127.0.0.1:$DV_PORT" "$USER_NAME" "$PASSWORD" --rss dovecot --out "$RESULTS")
python3 "$CLIENT" bench "${MH[@]}" --rounds 0 >&2
python3 "$CLIENT" bench "${DC[@]}" --rounds 0 >&2
for r in $(seq "$ROUNDS"); do
    python3 "$CLIENT" bench "${MH[@]}" --rounds 1 --no-warmup --first-round "$r" >&2
    python3 "$CLIENT" bench "${DC[@]}" --rounds 1 --no-warmup --first-round "$r" >&2
done

echo "results: $RESULTS" >&2
python3 "$CLIENT" table "$RESULTS"
