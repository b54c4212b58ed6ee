"""Shared bits of the Python contenders: the Transaction class (from pipehost's compiled
descriptor set, as tests/e2e/clients/transactions_pb.py does), redis_sum's Lua script
(read from plugins/redis/sum_script.hpp, so it is the very same text), a 1 ms latency
histogram like pipehost's --stats, and SIGTERM handling."""
import json
import os
import re
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e", "clients"))
os.environ.setdefault("PIPEHOST_BUILD_DIR", os.path.join(ROOT, "build"))

from transactions_pb import transaction_class  # noqa: E402

stopping = False


def _stop(*_):
    global stopping
    stopping = True


def install_signals():
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def sum_script():
    text = open(os.path.join(ROOT, "plugins", "redis", "sum_script.hpp")).read()
    return re.search(r'R"lua\((.*)\)lua"', text, re.S).group(1)


class Histogram:
    """Millisecond buckets, like pipehost's LatencyHistogram."""

    def __init__(self):
        self.buckets = {}

    def add(self, ms, n=1):
        ms = 0 if ms < 0 else min(int(ms), 10000)
        self.buckets[ms] = self.buckets.get(ms, 0) + n

    def json(self):
        total = sum(self.buckets.values())
        out = {"count": total}
        for name, f in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999), ("max", 1.0)):
            if not total:
                out[name] = -1
                continue
            wanted = max(1, int(f * total + 0.5))
            seen = 0
            for ms in sorted(self.buckets):
                seen += self.buckets[ms]
                if seen >= wanted:
                    out[name] = ms
                    break
        return out


def now_ms():
    return time.time_ns() // 1_000_000


def report(records, seconds, latency, **extra):
    print(json.dumps({"records": records, "seconds": round(seconds, 3),
                      "latency_ms": latency.json(), **extra}), flush=True)


def args(argv, **defaults):
    """--name value pairs over defaults (typed like the default)."""
    out = dict(defaults)
    for i in range(0, len(argv), 2):
        key = argv[i].lstrip("-").replace("-", "_")
        default = defaults.get(key)
        out[key] = type(default)(argv[i + 1]) if default is not None else argv[i + 1]
    return out
