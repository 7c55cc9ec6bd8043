# Sourced by the bench scripts: builds the release binaries and starts
# `ledgerd serve` on a fresh data directory.

bench_setup() { # bench_setup NAME PORT [OUT_DIR]: sets $out, $data, $target, $ledgerd
    out=${3:-$(mktemp -d "/tmp/ledger-$1-XXXXXX")}
    mkdir -p "$out"
    data=$(mktemp -d "/tmp/ledger-$1-data-XXXXXX")
    target="127.0.0.1:$2"
    cargo build --release --locked --workspace --all-targets
    ledgerd=target/release/ledgerd
}

start_server() { # start_server DATA_DIR LOG [SERVE_ARGS...]: sets $server (after bench_setup)
    "$ledgerd" serve --data-dir "$1" --listen "$target" "${@:3}" 2>"$2" &
    server=$!
    trap 'kill "$server" 2>/dev/null || true' EXIT
    # Ready once it answers health checks (the views have caught up).
    for _ in $(seq 1 300); do
        if "$ledgerd" load --target "$target" --scenario noop --duration 1 --concurrency 1 >/dev/null 2>&1; then
            return
        fi
        sleep 0.1
    done
}

cpu_ticks() { # cpu_ticks STAT_FILE: utime + stime of a process or thread
    local stat fields
    stat=$(cat "$1" 2>/dev/null) || return 1
    # Fields after the parenthesised name: utime and stime are the 12th
    # and 13th of them.
    read -r -a fields <<<"${stat##*) }"
    echo $(( fields[11] + fields[12] ))
}

ticks() { # ticks PID: "name ticks" per thread (benches/thread_cpu.py reads two)
    local task name cpu
    for task in /proc/"$1"/task/*; do
        name=$(cat "$task/comm" 2>/dev/null) || continue
        cpu=$(cpu_ticks "$task/stat") || continue
        echo "$name $cpu"
    done
}
