"""Samples a server's memory every INTERVAL seconds until killed.

usage: python3 benches/memory_sampler.py METRICS_ADDR PID INTERVAL OUT.jsonl

Each line of OUT.jsonl is one sample: seconds since the start, the
process's resident memory (VmRSS, KiB), and every series of the gauges
below from `ledgerd serve --metrics`, by their labels' values. Run by
`benches/proof.sh soak` beside the load generator, whose own samples hold
the latencies.
"""
import json
import sys
import time
import urllib.request

GAUGES = ("ledger_heap_bytes", "ledger_rocksdb_memory_bytes", "ledger_engine_cache_entries")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def gauges(addr):
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        if name not in GAUGES:
            continue
        labels, value = rest.rsplit("} ", 1)
        # One label per series here: kind="..."
        kind = labels.split("=", 1)[1].strip('"')
        out[f"{name}:{kind}"] = float(value)
    return out


def main():
    addr, pid, interval, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    started = time.monotonic()
    with open(path, "w") as out:
        while True:
            time.sleep(interval)
            sample = {"at_s": round(time.monotonic() - started, 1), "rss_kib": rss_kib(pid)}
            try:
                sample.update(gauges(addr))
            except OSError as error:
                # A scrape that times out under load loses its gauges, not
                # the rest of the run's samples.
                print(f"memory_sampler: {error}", file=sys.stderr)
            out.write(json.dumps(sample) + "\n")
            out.flush()


main()
