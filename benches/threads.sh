#!/usr/bin/env bash
# Where a server's CPU goes, by thread, per call or per durable event.
#
#   bash benches/threads.sh [OUT_DIR]
#
# It builds the release binaries, starts `ledgerd serve` on a fresh data
# directory on 127.0.0.1, and runs `ledgerd load` against it from the same
# machine: noop 10 s (64 workers), checkout 20 s (64), batch 20 s (4). Around
# each run it reads every server thread's CPU time from
# /proc/PID/task/*/stat, and prints the difference by thread name (numbered
# threads such as tokio's workers are summed) divided by the calls (noop,
# checkout) or durable events (batch) the run reported, with the load
# generator's own CPU per unit (from /proc/PID/stat of its process). The
# data directory is removed at the end; the reports stay in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=benches/server.sh
. benches/server.sh
bench_setup threads "${THREADS_PORT:-50072}" "${1:-}"
start_server "$data" "$out/server.log"

one() { # one NAME SCENARIO SECONDS WORKERS UNIT_FIELD
    local name=$1 scenario=$2 seconds=$3 workers=$4 field=$5
    ticks "$server" >"$out/$name.before"
    "$ledgerd" load --target "$target" --scenario "$scenario" --duration "$seconds" \
        --concurrency "$workers" --json >"$out/$name.json" &
    local client=$!
    # The load generator's CPU is gone once it is reaped, so its stat is
    # read every 0.2 s while it runs (the last 0.2 s at most is missed).
    local client_ticks=0 now
    while kill -0 "$client" 2>/dev/null; do
        if now=$(cpu_ticks /proc/"$client"/stat); then
            client_ticks=$now
        fi
        sleep 0.2
    done
    wait "$client"
    ticks "$server" >"$out/$name.after"
    python3 benches/thread_cpu.py "$out/$name.json" "$field" "$out/$name.before" "$out/$name.after" \
        "$client_ticks"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; fresh data directory $data"
one noop noop 10 64 requests_per_s
one checkout checkout 20 64 requests_per_s
one batch batch 20 4 events_per_s
kill -TERM "$server"
wait "$server" || true
trap - EXIT
# The data directory only served these runs (the reports are in $out).
rm -rf "$data"
echo "reports in $out"
