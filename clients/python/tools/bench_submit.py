"""Submit throughput of one Python process (make bench: python_submit_tx_per_s).

Threads share one chasqui.Client (one channel, the retry policy on) and each
makes one single-observation transaction per call, for a fixed time after a
warm-up. Prints one JSON line: {"tx": N, "seconds": S, "tx_per_s": R}.

    /usr/bin/python3 clients/python/tools/bench_submit.py --addr 127.0.0.1:7444
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import chasqui  # noqa: E402


def run(c: chasqui.Client, threads: int, seconds: float) -> "tuple[int, float]":
    stop = threading.Event()
    counts = [0] * threads
    errors: list = []

    def worker(i: int) -> None:
        n = 0
        try:
            while not stop.is_set():
                c.start_observation("BENCH", obs_unit="python-bench")
                n += 1
        except Exception as e:  # a failed call ends the figure
            errors.append(e)
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    time.sleep(seconds)  # the measuring window
    stop.set()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", required=True, help="the edge's host:port (plaintext)")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--duration", type=float, default=3.0, help="measuring seconds")
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args()
    with chasqui.Client(a.addr) as c:
        run(c, a.threads, a.warmup)
        n, secs = run(c, a.threads, a.duration)
    print(json.dumps({"tx": n, "seconds": round(secs, 3), "tx_per_s": round(n / secs, 1)}))


if __name__ == "__main__":
    main()
