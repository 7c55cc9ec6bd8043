#!/usr/bin/env bash
# The figures of BENCHMARKS.md's summary table, from one run on this machine.
#
#   bash benches/proof.sh [OUT_DIR]          every figure (about 5 minutes on 2 cores, once built)
#   bash benches/proof.sh soak RATE [OUT]    checkout at RATE requests/s for 10 minutes,
#                                            sampled every 10 s (p99, server RSS, and
#                                            its memory by kind from --metrics), and the
#                                            server's CPU per call by thread over it
#
# It builds the release binaries (the profile the tests use, so RocksDB is
# compiled once), starts `ledgerd serve` on a fresh data directory on
# 127.0.0.1, and runs `ledgerd load` against it from the same machine:
#   noop 20 s, checkout 30 s, batch 30 s (64, 64 and 4 workers), then
#   populate 1,000,000 members, and reads the server's resident memory.
# It stops the server with SIGTERM, then populates 1,000,000 members into a
# second server on a fresh data directory alone and reads its resident
# memory too (the first server's also holds the hot members of the Zipf
# runs). It measures the first data directory's bytes per event, runs
# `ledgerd verify` and `ledgerd rebuild` on it, then
# `cargo bench --bench writer` (the writer against raw RocksDB), and prints
# the table. Every load run's JSON report is kept in OUT_DIR (default: a
# new directory under /tmp). The data directory (about 1 GB after a whole
# run) is removed at the end; PROOF_KEEP_DATA=1 keeps it for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all
if [ "${1:-}" = soak ]; then
    mode=soak
    rate=${2:?usage: benches/proof.sh soak RATE [OUT_DIR]}
    shift 2
fi
# shellcheck source=benches/server.sh
. benches/server.sh
port=${PROOF_PORT:-50071}
bench_setup proof "$port" "${1:-}"
if [ "$mode" = soak ]; then
    # The soak samples the server's memory by kind from its metrics too.
    metrics_addr="127.0.0.1:$((port + 1))"
    start_server "$data" "$out/server.log" --metrics "$metrics_addr"
else
    start_server "$data" "$out/server.log"
fi

run() {
    local name=$1
    shift
    echo "proof: ledgerd load $*" >&2
    "$ledgerd" load --target "$target" --json "$@" >"$out/$name.json"
}

stop_server() {
    kill -TERM "$server"
    wait "$server"
    trap - EXIT
}
remove_data() { # the data directory, unless PROOF_KEEP_DATA=1
    if [ "${PROOF_KEEP_DATA:-}" = 1 ]; then
        echo "data directory kept: $data"
    else
        rm -rf "$data"
    fi
}

field() { # field FILE EXPRESSION: a figure from a JSON report
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"r": r}))' "$1" "$2"
}

if [ "$mode" = soak ]; then
    python3 benches/memory_sampler.py "$metrics_addr" "$server" 10 "$out/soak-memory.jsonl" &
    sampler=$!
    trap 'kill "$server" "$sampler" 2>/dev/null || true' EXIT
    ticks "$server" >"$out/soak-cpu.before"
    run soak --scenario checkout --duration 600 --concurrency 64 --rate "$rate" \
        --interval 10 --watch-pid "$server"
    ticks "$server" >"$out/soak-cpu.after"
    kill "$sampler"
    "$ledgerd" load --target "$target" --scenario noop --duration 1 --concurrency 1 >/dev/null
    python3 - "$out/soak.json" "$out/soak-memory.jsonl" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
memory = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
print(f"soak: checkout at {r['settings']['rate']} requests/s for {r['elapsed_s']:.0f} s on "
      f"{r['machine']['cpu']}, {r['machine']['cores']} cores")
print(f"  achieved {r['requests_per_s']:.0f} requests/s, p50 {r['latency']['p50_us']/1000:.2f} ms, "
      f"p99 {r['latency']['p99_us']/1000:.2f} ms, p99.9 {r['latency']['p999_us']/1000:.2f} ms, "
      f"refused {sum(r['errors'].values())}")
print("   at s   requests/s   p99 ms   RSS MiB")
for s in r["samples"]:
    rss = f"{s['rss_kib']/1024:.1f}" if s["rss_kib"] is not None else "-"
    print(f"  {s['at_s']:5.0f}   {s['requests_per_s']:10.0f}   {s['p99_us']/1000:6.2f}   {rss:>7}")
for name, scale, unit in (("p99_us", 1000, "ms"), ("rss_kib", 1024, "MiB")):
    t = (r.get("trends") or {}).get(name)
    if t:
        print(f"  {name}: first third {t['first_third']/scale:.2f} {unit}, last third "
              f"{t['last_third']/scale:.2f} {unit}, fitted slope {t['slope_per_min']/scale:+.3f} {unit}/min")
# The bounded caches (memtables, block cache, member cache) fill in about
# the first two minutes; the same fit over the samples after that says
# whether anything still grows once they are full.
warm = 120
def trend(samples, name, scale, unit):
    points = [(s["at_s"] / 60, s[name] / scale) for s in samples
              if s["at_s"] >= warm and s.get(name) is not None]
    if len(points) < 2:
        return
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0
    third = max(1, len(points) // 3)
    first = sum(y for _, y in points[:third]) / third
    last = sum(y for _, y in points[-third:]) / third
    print(f"  {name} from {warm} s: first third {first:.2f} {unit}, last third {last:.2f} {unit}, "
          f"fitted slope {slope:+.3f} {unit}/min")
for name, scale, unit in (("p99_us", 1000, "ms"), ("rss_kib", 1024, "MiB")):
    trend(r["samples"], name, scale, unit)
# What grows, by kind (benches/memory_sampler.py, from the server's metrics).
for name in sorted({key for sample in memory for key in sample if ":" in key}):
    in_bytes = "_bytes:" in name
    trend(memory, name, 1024 * 1024 if in_bytes else 1, "MiB" if in_bytes else "entries")
EOF
    python3 benches/thread_cpu.py "$out/soak.json" requests_per_s "$out/soak-cpu.before" "$out/soak-cpu.after"
    stop_server
    remove_data
    exit 0
fi

run noop --scenario noop --duration 20 --concurrency 64
run checkout --scenario checkout --duration 30 --concurrency 64
run batch --scenario batch --duration 30 --concurrency 4
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
populated_rss_kib() { # populate NAME: 1,000,000 members, then the server's RSS
    run "$1" --scenario populate --members 1000000 --concurrency 4 --duration 3600
    # Resident memory once the views have folded the population: a read with
    # min_position at the head waits (up to 5 s at a time) for the balance view.
    local position reached
    position=$("$ledgerd" client --target "http://$target" --json head | json_field position)
    for _ in $(seq 1 120); do
        reached=$("$ledgerd" client --target "http://$target" --program load --json \
            balance m999999 --min-position "$position" | json_field position)
        [ "$reached" -ge "$position" ] && break
    done
    awk '/VmRSS/ {print $2}' "/proc/$server/status"
}
rss_kib=$(populated_rss_kib populate)
stop_server
fresh=$(mktemp -d /tmp/ledger-proof-data-XXXXXX)
start_server "$fresh" "$out/server-populate.log"
fresh_rss_kib=$(populated_rss_kib populate-alone)
stop_server
rm -rf "$fresh"

bytes=$(du -sb "$data" | cut -f1)
"$ledgerd" verify --data-dir "$data" | tee "$out/verify.txt"
head=$(sed -nE 's/^verified: ([0-9]+) records.*/\1/p' "$out/verify.txt")
verify_rate=$(sed -nE 's/^took .*: ([0-9]+) records\/s/\1/p' "$out/verify.txt")
"$ledgerd" rebuild --data-dir "$data" | tee "$out/rebuild.txt"
cargo bench --locked --bench writer 2>&1 | tee "$out/writer-bench.txt" | tail -n 12

noop=$(field "$out/noop.json" 'round(r["requests_per_s"])')
checkout=$(field "$out/checkout.json" 'round(r["requests_per_s"])')
cat <<EOF

machine: $(field "$out/noop.json" 'r["machine"]["cpu"]'), $(field "$out/noop.json" 'r["machine"]["cores"]') cores, $(field "$out/noop.json" 'r["machine"]["memory_gib"]') GiB; server and load generator on the same machine over loopback; data directory $data
| figure | measured | target |
|---|---:|---|
| noop ceiling (health checks, 64 workers) | $noop requests/s | |
| checkout (64 workers) | $checkout requests/s, p50 $(field "$out/checkout.json" 'r["latency"]["p50_us"]/1000') ms, p90 $(field "$out/checkout.json" 'r["latency"]["p90_us"]/1000') ms, p99 $(field "$out/checkout.json" 'r["latency"]["p99_us"]/1000') ms, p99.9 $(field "$out/checkout.json" 'r["latency"]["p999_us"]/1000') ms | |
| checkout / noop | $(python3 -c "print(f'{$checkout / $noop:.0%}')") | at least 50% |
| batch (SubmitBatch of 1,000 purchases, 4 workers) | $(field "$out/batch.json" 'round(r["events_per_s"])') durable events/s | at least 200,000 |
| populate 1,000,000 members | $(field "$out/populate.json" 'round(r["events_per_s"])') events/s, $(field "$out/populate.json" 'round(r["elapsed_s"])') s | |
| server RSS after 1,000,000 members, populated alone on a fresh server | $((fresh_rss_kib / 1024)) MiB | under 512 MiB |
| server RSS after 1,000,000 members, at the end of the whole run | $((rss_kib / 1024)) MiB | |
| verify | $verify_rate events/s over $head events | at least 1,000,000 |
| bytes on disk per event | $((bytes / head)) B ($bytes B for $head events) | |
EOF
grep -E '^rebuilt ' "$out/rebuild.txt" | sed 's/^/rebuild: /'
echo "reports in $out"
remove_data
