#!/bin/sh
# Runs the Acme domain of seed 002 (Mail/Acme and SMTP/Acme) in one process,
# from examples/acme/directory.toml; builds mailhop first if needed.
# Data (stores, server IDs) and the domain's certifier are created beside the
# directory file on the first start: examples/acme/data/, certifier.{pem,key}.
# Stop with Ctrl-C.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
directory="$here/directory.toml"

# MAILHOP=/path/to/mailhop uses that binary; otherwise cargo builds (or
# finds up to date) target/release/mailhop.
bin="${MAILHOP:-}"
if [ -z "$bin" ]; then
    bin="$root/target/release/mailhop"
    if command -v cargo >/dev/null 2>&1; then
        (cd "$root" && cargo build --release -q -p mailhop ${CARGO_FLAGS:-})
    elif [ ! -x "$bin" ]; then
        echo "run.sh: no cargo and no $bin: install Rust, or set MAILHOP" >&2
        exit 1
    fi
fi

"$bin" check --directory "$directory" >/dev/null

# The ports, read from the directory file.
awk '
    /^\[\[server\]\]/        { server = ""; in_listen = 0 }
    /^name = /               { if (server == "") { server = $3; gsub(/"/, "", server) } }
    /^\[server\.listen\]/    { in_listen = 1; next }
    /^\[/                    { in_listen = 0 }
    in_listen && /=/         { v = $3; gsub(/"/, "", v); printf "  %-10s %-11s %s\n", server, $1, v }
    /^relay_host = /         { v = $3; gsub(/"/, "", v); printf "  %-10s %-11s %s\n", "relay host", "(sink)", v }
' "$directory"
echo "  (mailhop serve prints each listener below as it starts)"
echo

exec "$bin" serve --directory "$directory"
