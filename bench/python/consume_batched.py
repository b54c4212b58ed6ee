"""Contender (b), consume, written well: consume(num_messages=500), strip the Confluent
header and parse with the message class, pre-aggregate per account in integer cents,
apply each batch with redis_sum's own Lua script (same keys, positions hash,
compare-and-set: exactly once), resume from the stored positions on assignment, commit
offsets (async, at most every second) only after Redis confirmed. One process, one
thread (the GIL makes more threads pointless for this CPU-bound loop).
Ends when every assigned partition is read to its end (--live 1: on SIGTERM).

usage: consume_batched.py --brokers B --topic T --group G --redis URL
         [--positions-key pipehost:positions:consume] [--live 0]"""
import sys
import time

import redis
from confluent_kafka import Consumer, KafkaError, TopicPartition

import bench_common as bc

SETTINGS = {"enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": True,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
            "queued.max.messages.kbytes": 16384, "queued.min.messages": 100000,
            "fetch.wait.max.ms": 10}


def main(a):
    bc.install_signals()
    r = redis.Redis.from_url(a["redis"])
    script = r.register_script(bc.sum_script())
    Transaction = bc.transaction_class()
    parse = Transaction.FromString
    topic, pkey = a["topic"], a["positions_key"]
    consumer = Consumer({"bootstrap.servers": a["brokers"], "group.id": a["group"], **SETTINGS})
    at_end, stored = {}, {}

    def on_assign(c, partitions):
        for p in partitions:
            at_end[p.partition] = False
            s = r.hget(pkey, f"{topic}:{p.partition}")
            stored[p.partition] = int(s) if s is not None else None
            if s is not None:
                p.offset = int(s)
        c.incremental_assign(partitions)

    def on_revoke(c, partitions):
        commit(sync=True)
        for p in partitions:
            at_end.pop(p.partition, None)
            stored.pop(p.partition, None)
        c.incremental_unassign(partitions)

    def commit(sync=False):
        offsets = [TopicPartition(topic, p, o) for p, o in stored.items() if o is not None]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=not sync)
            except Exception as e:  # nothing to commit / rebalancing
                print(f"commit: {e}", file=sys.stderr)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    latency = bc.Histogram()
    seen = 0
    last_commit = time.monotonic()
    start = last_commit
    while not bc.stopping:
        msgs = consumer.consume(num_messages=500, timeout=0.1)
        sums, nxt, stamps = {}, {}, []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end[m.partition()] = True
                continue
            p, off = m.partition(), m.offset()
            at_end[p] = False
            s = stored.get(p)
            if s is not None and off < s:
                continue  # already applied
            t = parse(m.value()[6:])  # 0x00, 4-byte id, message index [0]
            k = t.account_number
            sums[k] = sums.get(k, 0) + round(t.amount * 100)
            if off + 1 > nxt.get(p, -1):
                nxt[p] = off + 1
            stamps.append(m.timestamp()[1])
        if nxt:
            args = ["string", 2, len(nxt)]
            for p, off in nxt.items():
                s = stored.get(p)
                args += [f"{topic}:{p}", "none" if s is None else s, off]
            args += list(sums.values())
            reply = script(keys=[pkey, *sums.keys()], args=args)
            if reply[0] != b"ok":
                raise SystemExit(f"redis_sum script: {reply}")
            now = bc.now_ms()
            for ts in stamps:
                latency.add(now - ts)
            seen += len(stamps)
            stored.update(nxt)
        if time.monotonic() - last_commit >= 1.0:
            commit()
            last_commit = time.monotonic()
        if not a["live"] and at_end and all(at_end.values()):
            break
    commit(sync=True)
    consumer.close()
    bc.report(seen, time.monotonic() - start, latency, settings=SETTINGS)


if __name__ == "__main__":
    main(bc.args(sys.argv[1:], brokers="127.0.0.1:19092", topic="", group="", redis="",
                 positions_key="pipehost:positions:consume", live=0))
