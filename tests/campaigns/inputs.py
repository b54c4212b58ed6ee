"""Bad-input campaign: a catalogue of malformed records per decoder (protobuf, JSON,
Avro), written by a third-party client between good records into the input topic of
the system that reads that format. Each bad record must reach the dead-letter topic
with its reason, every good record must arrive exactly as without them, the pipeline
must keep running, and its memory stay bounded.

  scripts/campaign inputs [--good N] [--json FILE]"""
import argparse
import json
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import crash  # noqa: E402
import test_tenants as tenants  # noqa: E402
import test_trades as trades  # noqa: E402
from support import (RedisServer, kcat_consume, pipehost, reference_transactions, require_env,  # noqa: E402
                     totals_of, unique)
import test_real_kafka as real_kafka  # noqa: E402

MAX_RSS_MB = 512


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def zigzag(n):
    return varint((n << 1) ^ (n >> 63))


def frame(schema_id, body, path=b"\x00"):
    return b"\x00" + struct.pack(">I", schema_id) + path + body


def pb_string(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def pb_transaction(account=b"GB00JAGO00000000000001", amount=1.0, tid=b"t"):
    return pb_string(1, tid) + pb_string(2, account) + varint(5 << 3 | 1) + struct.pack("<d", amount)


def protobuf_catalogue(schema_id):
    groups = varint(9 << 3 | 3) * 10000 + varint(9 << 3 | 4) * 10000  # unknown groups, nested
    return [
        (b"", "too short"),
        (b"\x01" + frame(schema_id, pb_transaction())[1:], "magic byte"),
        (frame(0x7FFFFFF0, pb_transaction()), "unknown schema id"),
        (frame(schema_id, pb_transaction(), path=b"\x02\x0a"), "names no message"),
        (frame(schema_id, pb_transaction()[:9]), "runs past the end in field 'account_number'"),
        (frame(schema_id, pb_transaction(account=b"\xff\xfe invalid")), "UTF-8"),
        (frame(schema_id, varint(1 << 3 | 2) + varint(1 << 40) + b"x"), "past the end"),
        (frame(schema_id, pb_transaction() + groups), "nested too deeply"),
        (frame(schema_id, pb_transaction(amount=float("nan"))), "not a finite"),
    ]


def avro_catalogue(schema_id, protobuf_id):
    def s(text):
        return zigzag(len(text)) + text
    good = s(b"1") + s(b"financial") + s(b"FINANCE") + zigzag(1) + s(b"dummy-payload x")
    return [
        (b"\x00\x00", "too short"),
        (b"\x05" + frame(schema_id, good)[1:], "magic byte"),
        (frame(0x7FFFFFF0, good, b""), "unknown schema id"),
        (frame(protobuf_id, good, b""), "not AVRO"),
        (frame(schema_id, good[:7], b""), "runs past the end"),
        (frame(schema_id, zigzag(1 << 40) + b"x", b""), "runs past the end"),
        (frame(schema_id, zigzag(-3) + good, b""), "negative length"),
        (frame(schema_id, good + b"trailing", b""), "bytes after the end"),
        (frame(schema_id, s(b"1") + s(b"financial") + s(b"HR") + zigzag(1) + s(b"p"), b""),
         "is not a routed destination"),
        (frame(schema_id, b"\xff" * 11, b""), "longer than 10 bytes"),
    ]


def json_catalogue():
    trade = json.dumps(trades.trade("T1", 1)).encode()
    return [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, "nested deeper than max_depth"),
        (b'{"id": "T1", "x": "' + b"a" * (100 << 10) + b'"}', "max_record_bytes"),
        (b'{"id": "T\xff\xfe", "version": 1}', "UTF-8"),
        (trade.replace(b'"version": 1', b'"version": "1"'), "not an integer"),
        (trade.replace(b'"T1"', b'"X1"'), "does not match"),
        (b"", "not valid JSON"),
    ]


def produce_raw(topic, values):
    import confluent_kafka
    producer = confluent_kafka.Producer({"bootstrap.servers": require_env("KAFKA_BROKERS")})
    failed = []
    for v in values:
        producer.produce(topic, value=v, key=b"bad", on_delivery=lambda err, _: err and failed.append(err))
    assert producer.flush(60) == 0 and not failed, failed


def dead_letters(topic):
    lines = kcat_consume(require_env("KAFKA_BROKERS"), topic, "%h\\n")
    return [line for line in lines if "pipehost.error=" in line]


def run_and_measure(args, env=None):
    """Runs a bounded pipehost and returns (CompletedProcess, peak RSS MB) from wait4."""
    import resource
    import subprocess
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen([crash.support.PIPEHOST, *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=full_env)
    _, err = p.communicate(timeout=600)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return p.returncode, err, usage.ru_maxrss / 1024


def check_reasons(catalogue, letters):
    missing = [reason for _, reason in catalogue if not any(reason in line for line in letters)]
    if missing:
        print("  dead-letter reasons:\n    " + "\n    ".join(line.split("pipehost.error=")[1].split(",pipehost.")[0]
                                                    for line in letters))
    return missing


def protobuf_case(good):
    seed = 5
    topic = unique("inputs-protobuf")
    expected = {a: f"{t:.2f}" for a, t in totals_of(reference_transactions(seed, good)).items()}
    with RedisServer() as redis:
        env = {"REDIS_URL": redis.url}
        args = real_kafka.jago_args(topic, seed, good, 0, f"pipeline.consumer.dead_letter_topic={topic}-dlq")
        pipehost("run", real_kafka.JAGO, "--pipeline", "producer", *args, env=env, check=0)
        schema_id = int.from_bytes(crash.support.kcat_payloads(require_env("KAFKA_BROKERS"), topic)[0][1:5], "big")
        catalogue = protobuf_catalogue(schema_id)
        produce_raw(topic, [v for v, _ in catalogue])
        code, err, rss = run_and_measure(["run", real_kafka.JAGO, "--pipeline", "consumer", *args,
                                          "--set", "pipeline.consumer.source.stop_at_end=true"], env)
        got = {a: redis.cli("GET", a) for a in expected}
    letters = dead_letters(f"{topic}-dlq")
    return {"decoder": "protobuf (jago → Redis)", "bad": len(catalogue), "dead_lettered": len(letters),
            "reasons_missing": check_reasons(catalogue, letters), "good": good,
            "good_ok": got == expected, "exit": code, "peak_rss_mb": round(rss), "stderr": err[-2000:]}


def json_case(good):
    topic = unique("inputs-json")
    table = topic.replace("-", "_")
    trades.create_table(table)
    rows = [trades.trade(f"T{i}", i % 7) for i in range(good)]
    catalogue = json_catalogue()
    trades.produce(topic, rows[: good // 2] + [v for v, _ in catalogue] + rows[good // 2:], partitions=3)
    code, err, rss = run_and_measure(trades.consumer_args(topic, table, [
        "--set", "pipeline.consumer.source.stop_at_end=true",
        "--set", "pipeline.consumer.transforms.0.max_record_bytes=65536"]))
    stored = int(trades.psql(f"SELECT count(*) FROM {table}"))
    trades.psql(f"DROP TABLE {table}, {table}_positions")
    letters = dead_letters(f"{topic}-dlq")
    return {"decoder": "json (trades → PostgreSQL)", "bad": len(catalogue), "dead_lettered": len(letters),
            "reasons_missing": check_reasons(catalogue, letters), "good": good, "good_ok": stored == good,
            "exit": code, "peak_rss_mb": round(rss), "stderr": err[-2000:]}


def avro_case(good):
    prefix = unique("inputs-avro")
    topic = f"{prefix}.producer.to.processor"
    tenants.create_topic(topic)
    events = [tenants.event("123456", ("FINANCE", "MARKETING", "LOGISTICS")[i % 3], i) for i in range(good)]
    tenants.produce_events(topic, events)
    registry = tenants.registry()
    schema_id = registry.get_latest_version(f"{topic}-value").schema_id
    from confluent_kafka.schema_registry import Schema
    protobuf_id = registry.register_schema(f"{prefix}-proto-value", Schema('syntax = "proto3"; message M {}', "PROTOBUF"))
    catalogue = avro_catalogue(schema_id, protobuf_id)
    produce_raw(topic, [v for v, _ in catalogue])
    config = tenants.tenant_config(prefix)
    code, err, rss = run_and_measure(tenants.processor_args(config, "--set", "pipeline.processor.source.stop_at_end=true"))
    routed = sum(len(tenants.read_topic(f"{prefix}.processor.to.{d}")) for d in tenants.DESTINATIONS)
    letters = dead_letters(f"{prefix}.processor.dead-letters")
    return {"decoder": "avro (tenants → Kafka)", "bad": len(catalogue), "dead_lettered": len(letters),
            "reasons_missing": check_reasons(catalogue, letters), "good": good, "good_ok": routed == good,
            "exit": code, "peak_rss_mb": round(rss), "stderr": err[-2000:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--good", type=int, default=5000, help="good records around the bad ones")
    parser.add_argument("--json")
    args = parser.parse_args()
    results = []
    for case in (protobuf_case, json_case, avro_case):
        started = time.monotonic()
        r = case(args.good)
        r["ok"] = (r["exit"] == 0 and r["good_ok"] and not r["reasons_missing"] and r["dead_lettered"] == r["bad"]
                   and r["peak_rss_mb"] < MAX_RSS_MB)
        r["seconds"] = round(time.monotonic() - started, 1)
        print(f"  {r['decoder']}: {'ok' if r['ok'] else 'FAILED'} - {r['dead_lettered']}/{r['bad']} dead-lettered, "
              f"good records {'exact' if r['good_ok'] else 'WRONG'}, peak RSS {r['peak_rss_mb']} MB"
              + (f", reasons not found: {r['reasons_missing']}" if r["reasons_missing"] else ""), flush=True)
        if not r["ok"]:
            print(r["stderr"])
        results.append(r)
    print()
    print("| decoder (system) | malformed records | dead-lettered with the reason | good records | exit | peak RSS MB | result |")
    print("|---|---:|---:|---|---:|---:|---|")
    for r in results:
        print(f"| {r['decoder']} | {r['bad']} | {r['bad'] - len(r['reasons_missing'])} | "
              f"{r['good']:,} {'exact' if r['good_ok'] else 'WRONG'} | {r['exit']} | {r['peak_rss_mb']} | "
              f"{'ok' if r['ok'] else '**FAILED**'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
