"""Server CPU per call or per durable event, by thread, for one load run.

    python3 benches/thread_cpu.py REPORT FIELD BEFORE AFTER [CLIENT_TICKS]

REPORT is the run's `ledgerd load --json` report and FIELD its rate that
counts the work (`requests_per_s`: calls; `events_per_s`: durable events).
BEFORE and AFTER hold one "thread-name ticks" line per server thread, read
around the run (the `ticks` function of benches/server.sh); numbered
threads (tokio's workers, the views' workers) are summed under one name.
Prints the run's rate, p99 and errors, then each thread's CPU in
microseconds per unit, the total, and the load generator's when
CLIENT_TICKS (its utime + stime) is given.
"""

import collections
import json
import os
import re
import sys


def read(path):
    totals = collections.Counter()
    for line in open(path):
        parts = line.split()
        if len(parts) < 2:
            continue
        group = re.sub(r"-\d+$", "", " ".join(parts[:-1]))
        totals[group] += int(parts[-1])
    return totals


def main():
    report_path, field = sys.argv[1], sys.argv[2]
    before, after = read(sys.argv[3]), read(sys.argv[4])
    client_ticks = int(sys.argv[5]) if len(sys.argv) > 5 else None
    report = json.load(open(report_path))
    name = os.path.splitext(os.path.basename(report_path))[0]
    unit = "call" if field == "requests_per_s" else "event"
    units = report[field] * report["elapsed_s"]
    hz = os.sysconf("SC_CLK_TCK")
    print(f"{name}: {report[field]:,.0f} {unit}s/s, p99 {report['latency']['p99_us'] / 1000:.1f} ms, "
          f"errors {sum(report['errors'].values())}; server CPU per {unit}, by thread:")
    total = 0.0
    for group in sorted(after):
        us = (after[group] - before.get(group, 0)) * 1e6 / hz / units
        total += us
        if us >= 0.05:
            print(f"  {group:<24} {us:8.1f} us")
    print(f"  {'all threads':<24} {total:8.1f} us")
    if client_ticks is not None:
        print(f"  {'load generator':<24} {client_ticks * 1e6 / hz / units:8.1f} us")


main()
