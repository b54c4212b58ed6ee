"""Fault campaign: a service fails while data flows — the Kafka broker stopped and
restarted, Redis and PostgreSQL restarted, the schema registry unreachable — and the
pipelines must recover by themselves and lose nothing (exact where the sink is exactly
once). The systems are those of the crash campaign (crash.py).

  scripts/campaign faults [--scenarios a,b] [--records N] [--rate R] [--outage S] [--json FILE]

It stops and starts the shared services of scripts/services: run nothing else against
them meanwhile."""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import crash  # noqa: E402
from support import pipehost, services  # noqa: E402


def restart_service(name):
    def fault(system, outage):
        services("stop", name)
        time.sleep(outage)
        services("start", name)
    return fault


def restart_redis(system, outage):
    system.redis.stop()
    time.sleep(outage)
    system.redis.start()


# (name, system, fault, when): "mid" = while records flow; "start" = the consumer starts
# during the outage (it must wait for the service, not fail or dead-letter).
SCENARIOS = [
    ("kafka-restart/jago", crash.Jago, restart_service("kafka"), "mid"),
    ("kafka-restart/tenants-eos", crash.TenantsExactlyOnce, restart_service("kafka"), "mid"),
    ("redis-restart/jago", crash.Jago, restart_redis, "mid"),
    ("postgres-restart/trades", crash.Trades, restart_service("postgres"), "mid"),
    ("registry-down-at-start/tenants", crash.Tenants, restart_service("registry"), "start"),
]


def run(scenario, records, rate, outage, rng):
    name, system_class, fault, when = scenario
    system = system_class(records, rate, rng.randrange(1 << 30))
    env = getattr(system, "env", {})
    log = open(os.devnull, "w")
    failures = []

    def produce():
        try:
            system.produce()
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(e)
    started = time.monotonic()
    producing = threading.Thread(target=produce)
    mid_stream = True
    process = None
    try:
        if when == "start":
            produce()  # every record written (the serializer needs the registry) ...
            stopper = threading.Thread(target=fault, args=(system, outage))
            stopper.start()  # ... then the service goes away and the consumer starts
            time.sleep(2)
            process = crash.start(system.consumer_args(False), env, log)
            stopper.join()
        else:
            producing.start()
            process = crash.start(system.consumer_args(False), env, log)
            time.sleep(rng.uniform(2, 4))
            mid_stream = producing.is_alive()
            fault(system, outage)
            producing.join()
        if failures:
            raise AssertionError(f"the producer failed: {failures[0]}")
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=300)
        pipehost(*system.consumer_args(True), env=env, check=0, timeout=600)
    finally:
        if producing.is_alive():
            producing.join()
        if process and process.poll() is None:
            process.kill()
    result = system.check()
    result.update(scenario=name, promise=system.promise, records=records, outage_s=outage,
                  drained_exit=code, seconds=round(time.monotonic() - started, 1))
    # A "mid" fault that came after the producer finished did not test a live stream
    # (too few records for the rate): it fails.
    if not mid_stream:
        result["detail"] += "; the fault came after the last record was produced"
    result["ok"] = (result["exact"] if system.promise == "exactly once"
                    else result["missing"] == 0 and result.get("wrong", 0) == 0) \
        and code == 0 and mid_stream
    return result


def table(results):
    lines = ["| fault / system | promise | records | outage s | missing | duplicates | result | detail |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for r in results:
        lines.append(f"| {r['scenario']} | {r['promise']} | {r['records']:,} | {r['outage_s']} | {r['missing']} | "
                     f"{r['duplicates']} | {'ok' if r['ok'] else '**FAILED**'} | {r['detail']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(s[0] for s in SCENARIOS),
                        help="comma-separated, of: " + ", ".join(s[0] for s in SCENARIOS))
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--outage", type=float, default=5, help="seconds each service is down (default 5)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    wanted = args.scenarios.split(",")
    unknown = set(wanted) - {s[0] for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    print(f"fault campaign: seed {seed}, {args.records} records at {args.rate}/s, outages of {args.outage} s",
          flush=True)
    results = []
    for scenario in SCENARIOS:
        if scenario[0] not in wanted:
            continue
        try:
            r = run(scenario, args.records, args.rate, args.outage, rng)
        finally:
            for service in ("kafka", "postgres", "registry"):
                services("start", service)  # whatever happened, leave them running
        print(f"  {r['scenario']}: {'ok' if r['ok'] else 'FAILED'} - missing {r['missing']}, duplicates "
              f"{r['duplicates']} ({r['detail']}, {r['seconds']} s)", flush=True)
        results.append(r)
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": seed, "results": results}, f, indent=1)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
