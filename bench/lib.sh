# shellcheck shell=bash
# Shared by the bench scripts (sourced): build mailhop, run it on a directory.

# build_mailhop TOP: a release build; sets BIN.
build_mailhop() {
    cargo build --release -p mailhop --manifest-path "$1/Cargo.toml" >&2
    BIN="$1/target/release/mailhop"
}

# start_mailhop DIRECTORY_FILE: validates the directory, starts the server
# (logs next to the directory file), sets MH_PID and waits until its console
# answers.
start_mailhop() {
    local dir_file=$1 logs
    logs=$(dirname "$dir_file")
    "$BIN" check --directory "$dir_file" >&2
    MAILHOP_LOG=warn "$BIN" serve --directory "$dir_file" > "$logs/mailhop.out" 2> "$logs/mailhop.err" &
    MH_PID=$!
    for _ in $(seq 100); do
        "$BIN" console --directory "$dir_file" show server >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "mailhop did not start; see $logs/mailhop.err" >&2
    return 1
}
