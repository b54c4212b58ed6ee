#!/usr/bin/env python3
"""Instructions per record, counted by valgrind's callgrind on a fixed in-process workload:
pipehost against the C++ baseline's own code, no Kafka, no network, no clock in the loop.

Two workloads, each run twice (a small and a large record count) so that start-up (plugin
loading, the embedded schema registry, protobuf's descriptor pool) cancels out: the figure
is (instructions(large) - instructions(small)) / (large - small).

  encode   generate transactions and encode them (protobuf, Confluent framing)
           pipehost: datagen -> protobuf_encode -> file sink on /dev/null (raw)
           baseline: produce_baseline --dry-run 1 (its generator and encoder, as it runs
                     before each rd_kafka_producev)
  decode   the same, then each payload decoded and summed per account; reported as the
           difference from `encode`, i.e. what reading a record costs (pipehost also with
           the projection the shipped configs use, fields = [account_number, amount])
           pipehost: ... -> protobuf_decode -> count_by(account_number, sum amount) -> /dev/null
           baseline: produce_baseline --dry-run 1 --decode 1 (consume_baseline's per-record
                     code: strip the framing, ParseFromArray, sum per account)

librdkafka is left out on purpose: both contenders use the same library with the same
settings, and its instruction counts depend on how the network batches. Unlike records/s
on this shared machine, these counts repeat to a fraction of a percent run to run.

usage: bench/instructions [--small N] [--large N]   (bench/run runs it too)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")

PIPELINE = """schema_registry = "embedded"

[pipelines.w]
batch_size = 512

[pipelines.w.source]
plugin = "datagen"
kind = "transactions"
count = {count}
accounts = 20
seed = 42

[[pipelines.w.transforms]]
plugin = "protobuf_encode"
message = "Transaction"
topic = "transactions"
{decode}
[pipelines.w.sink]
plugin = "file"
path = "/dev/null"
format = "{format}"
fsync = false
"""

DECODE = """
[[pipelines.w.transforms]]
plugin = "protobuf_decode"
{fields}
[[pipelines.w.transforms]]
plugin = "count_by"
group_by = "account_number"
sum_field = "amount"
"""


def callgrind(command, tmp, name):
    """Total instructions (Ir) of every thread of `command` under callgrind."""
    out = os.path.join(tmp, f"callgrind.{name}")
    r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} under callgrind exited {r.returncode}:\n{r.stderr[-2000:]}")
    total = 0
    with open(out) as f:
        for line in f:
            m = re.match(r"(summary|totals): (\d+)", line)
            if m:
                total = max(total, int(m.group(2)))
    if not total:
        raise RuntimeError(f"no instruction total in {out}")
    return total


def pipehost_command(tmp, count, decode, projected=False):
    path = os.path.join(tmp, f"w-{count}-{int(decode)}{int(projected)}.toml")
    fields = 'fields = ["account_number", "amount"]\n' if projected else ""
    with open(path, "w") as f:
        f.write(PIPELINE.format(count=count, decode=DECODE.format(fields=fields) if decode else "",
                                format="json" if decode else "raw"))
    return [os.path.join(BUILD, "bin", "pipehost"), "run", path, "--no-progress", "--log-level", "warn"]


def baseline_command(count, decode):
    return [os.path.join(BUILD, "bin", "produce_baseline"), "--dry-run", "1", "--decode", str(int(decode)),
            "--schema-id", "1", "--count", str(count), "--seed", "42", "--accounts", "20"]


def measure(small=20_000, large=220_000, log=print):
    """{contender: {"encode": instructions per record, "decode": ..., "decode_projected": ...}}."""
    workloads = {"baseline": {"encode": lambda tmp, n: baseline_command(n, False),
                              "decode": lambda tmp, n: baseline_command(n, True)},
                 "pipehost": {"encode": lambda tmp, n: pipehost_command(tmp, n, False),
                              "decode": lambda tmp, n: pipehost_command(tmp, n, True),
                              "decode_projected": lambda tmp, n: pipehost_command(tmp, n, True, True)}}
    result = {}
    with tempfile.TemporaryDirectory(prefix="pipehost-instructions-") as tmp:
        for contender, commands in workloads.items():
            per = {}
            for name, command in commands.items():
                counts = {n: callgrind(command(tmp, n), tmp, f"{contender}-{name}-{n}") for n in (small, large)}
                log(f"instructions: {contender} {name}: {counts[small]:,} ({small:,} records), "
                    f"{counts[large]:,} ({large:,} records)")
                per[name] = (counts[large] - counts[small]) / (large - small)
            # Decoding is what the decode workload adds to the encode workload.
            result[contender] = {name: v - (per["encode"] if name != "encode" else 0) for name, v in per.items()}
    result["records"] = {"small": small, "large": large}
    return result


def markdown(result):
    b, p = result["baseline"], result["pipehost"]
    lines = ["### Instructions per record (callgrind, in process, no Kafka)", "",
             "| work per record | C++ baseline | pipehost | pipehost / baseline |", "|---|---:|---:|---:|",
             f"| encode: generate + protobuf encode + framing | {b['encode']:,.0f} | {p['encode']:,.0f} "
             f"| {p['encode'] / b['encode']:.2f}× |",
             f"| decode: strip framing + protobuf decode (all fields) + sum per account | {b['decode']:,.0f} "
             f"| {p['decode']:,.0f} | {p['decode'] / b['decode']:.2f}× |",
             f"| decode, projected (pipehost `fields = [account_number, amount]`; the baseline's generated "
             f"class parses every field) | {b['decode']:,.0f} | {p['decode_projected']:,.0f} "
             f"| {p['decode_projected'] / b['decode']:.2f}× |"]
    lines += ["", f"Marginal counts between {result['records']['small']:,} and {result['records']['large']:,} "
                  "records (start-up cancels out); pipehost's figure includes its host (batches, hand-off "
                  "between stages, acknowledgements) and the file sink writing to /dev/null. See "
                  "bench/instructions.py."]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--large", type=int, default=220_000)
    o = ap.parse_args()
    result = measure(o.small, o.large, log=lambda *a: print(*a, file=sys.stderr))
    print("\n".join(markdown(result)))


if __name__ == "__main__":
    main()
