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
# generator's own CPU per unit (from /proc/self/stat of its process).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=benches/server.sh
. benches/server.sh
bench_setup threads "${THREADS_PORT:-50072}" "${1:-}"
start_server "$data" "$out/server.log"

cpu_ticks() { # cpu_ticks STAT_FILE: utime + stime of a process or thread
    local stat fields
    stat=$(cat "$1" 2>/dev/null) || return 1
    # Fields after the parenthesised name: utime and stime are the 12th
    # and 13th of them.
    read -r -a fields <<<"${stat##*) }"
    echo $(( fields[11] + fields[12] ))
}

ticks() { # ticks PID: "name ticks" per thread
    local task name cpu
    for task in /proc/"$1"/task/*; do
        name=$(cat "$task/comm" 2>/dev/null) || continue
        cpu=$(cpu_ticks "$task/stat") || continue
        echo "$name $cpu"
    done
}

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
    python3 - "$out" "$name" "$field" "$client_ticks" "$(getconf CLK_TCK)" <<'EOF'
import collections, json, re, sys
out, name, field, client_ticks, hz = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
report = json.load(open(f"{out}/{name}.json"))
units = report[field] * report["elapsed_s"]
def read(path):
    totals = collections.Counter()
    for line in open(path):
        parts = line.split()
        if len(parts) < 2:
            continue
        group = re.sub(r"-\d+$", "", " ".join(parts[:-1]))
        totals[group] += int(parts[-1])
    return totals
before, after = read(f"{out}/{name}.before"), read(f"{out}/{name}.after")
unit = "call" if field == "requests_per_s" else "event"
print(f"{name}: {report[field]:,.0f} {unit}s/s, p99 {report['latency']['p99_us'] / 1000:.1f} ms, "
      f"errors {sum(report['errors'].values())}; server CPU per {unit}, by thread:")
total = 0.0
for group in sorted(after):
    us = (after[group] - before.get(group, 0)) * 1e6 / hz / units
    total += us
    if us >= 0.05:
        print(f"  {group:<24} {us:8.1f} us")
print(f"  {'all threads':<24} {total:8.1f} us")
print(f"  {'load generator':<24} {client_ticks * 1e6 / hz / units:8.1f} us")
EOF
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; fresh data directory $data"
one noop noop 10 64 requests_per_s
one checkout checkout 20 64 requests_per_s
one batch batch 20 4 events_per_s
kill -TERM "$server"
wait "$server" || true
trap - EXIT
echo "reports in $out"
