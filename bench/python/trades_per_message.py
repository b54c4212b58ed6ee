"""Contender (b), trades, written the way seed 002's Go consumer is (sarama consumer group,
GORM): poll() one message, json.loads it, check it (the 7 fields present, id matching
T[0-9]+, version an integer >= 0), insert it as one row with one INSERT ... ON CONFLICT
(id, version) DO NOTHING (GORM's Create on a table whose primary key is (id, version),
the seed's "idempotent insert") in a transaction of its own, as GORM runs every Create
(its default transaction: BEGIN, INSERT, COMMIT; --tx-per-insert 0: the INSERT alone,
autocommit); offsets auto-committed every second
(sarama's consumer-group default, Offsets.AutoCommit.Interval = 1 s, of the offsets the
handler marked: here librdkafka stores a message's offset when poll() returns it). At
least once: a crash redelivers up to a second of messages, which the primary key absorbs.
The seed logged a line per stored trade; this does not. Ends when every assigned
partition is read to its end (--live 1: on SIGTERM).

usage: trades_per_message.py --brokers B --topic T --group G --pg URL [--table trades]
         [--tx-per-insert 1] [--live 0]
Prints a JSON line: records, rejected, seconds, latency (CreateTime to the INSERT's reply)."""
import json
import re
import sys
import time

import psycopg
from confluent_kafka import Consumer, KafkaError

import bench_common as bc

FIELDS = ("id", "version", "counter_party", "book", "expired", "matures_at", "created_at")
ID = re.compile(r"T[0-9]+")


def valid(t):
    if not isinstance(t, dict) or any(t.get(f) is None for f in FIELDS):
        return False
    v = t["version"]
    return (isinstance(t["id"], str) and ID.fullmatch(t["id"]) is not None
            and isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def main(a):
    bc.install_signals()
    db = psycopg.connect(a["pg"], autocommit=True)
    insert = (f"INSERT INTO {a['table']} (id, version, counter_party, book_id, expired, matures_at, created_at) "
              "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id, version) DO NOTHING")
    consumer = Consumer({"bootstrap.servers": a["brokers"], "group.id": a["group"],
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "enable.auto.commit": True, "auto.commit.interval.ms": 1000})
    at_end = {}

    def on_assign(c, partitions):
        for p in partitions:
            at_end[p.partition] = False

    def on_revoke(c, partitions):
        for p in partitions:
            at_end.pop(p.partition, None)

    consumer.subscribe([a["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    latency = bc.Histogram()
    seen = rejected = 0
    start = time.monotonic()
    with db.cursor() as cur:
        while not bc.stopping:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end[msg.partition()] = True
                    if not a["live"] and at_end and all(at_end.values()):
                        break
                continue
            at_end[msg.partition()] = False
            try:
                t = json.loads(msg.value())
            except ValueError:
                t = None
            seen += 1
            if not valid(t):
                rejected += 1
                continue
            row = (t["id"], t["version"], t["counter_party"], t["book"], t["expired"], t["matures_at"],
                   t["created_at"])
            if a["tx_per_insert"]:
                with db.transaction():
                    cur.execute(insert, row)
            else:
                cur.execute(insert, row)
            latency.add(bc.now_ms() - msg.timestamp()[1])
    consumer.close()  # commits the stored offsets (auto-commit)
    db.close()
    bc.report(seen, time.monotonic() - start, latency, rejected=rejected)


if __name__ == "__main__":
    main(bc.args(sys.argv[1:], brokers="127.0.0.1:19092", topic="", group="", pg="", table="trades", tx_per_insert=1, live=0))
