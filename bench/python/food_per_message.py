"""Contender (b), food, written the way seed 003's Python consumer is: poll() one message,
json.loads it, read the food's count with SELECT, write count + 1 with INSERT OR REPLACE
and commit, per message (the sqlite3 module, the file's own journal mode, SQLite's default
synchronous setting); Kafka offsets auto-committed (librdkafka's default, every 5 s, as
kafka-python's). Not exactly once: a crash after a commit and before the next offset
commit counts those messages again. Ends when every assigned partition is read to its end
(--live 1: on SIGTERM).

usage: food_per_message.py --brokers B --topic T --group G --db FILE
Prints a JSON line: records, seconds, latency (CreateTime to the SQLite commit)."""
import json
import sqlite3
import sys
import time

from confluent_kafka import Consumer, KafkaError

import bench_common as bc


def main(a):
    bc.install_signals()
    db = sqlite3.connect(a["db"])
    consumer = Consumer({"bootstrap.servers": a["brokers"], "group.id": a["group"],
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    at_end = {}

    def on_assign(c, partitions):
        for p in partitions:
            at_end[p.partition] = False

    def on_revoke(c, partitions):
        for p in partitions:
            at_end.pop(p.partition, None)

    consumer.subscribe([a["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    latency = bc.Histogram()
    seen = 0
    start = time.monotonic()
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
        food = json.loads(msg.value())["food"]
        cur = db.cursor()
        cur.execute("SELECT count FROM aggregated WHERE food = ?", (food,))
        row = cur.fetchone()
        count = row[0] + 1 if row else 1
        cur.execute("INSERT OR REPLACE INTO aggregated (food, count) VALUES (?, ?)", (food, count))
        db.commit()
        latency.add(bc.now_ms() - msg.timestamp()[1])
        seen += 1
    consumer.close()  # commits the stored offsets (auto-commit)
    db.close()
    bc.report(seen, time.monotonic() - start, latency)


if __name__ == "__main__":
    main(bc.args(sys.argv[1:], brokers="127.0.0.1:19092", topic="", group="", db="", live=0))
