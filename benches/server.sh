# Sourced by the bench scripts: starts `ledgerd serve` and waits for it.
# Needs $ledgerd (the binary) and $target (ADDR:PORT) set by the caller.

start_server() { # start_server DATA_DIR LOG: sets $server
    "$ledgerd" serve --data-dir "$1" --listen "$target" 2>"$2" &
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
