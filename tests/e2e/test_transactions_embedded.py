"""Seeds 000 and 001 on the embedded broker: configs/transactions.toml as shipped,
with the totals checked against sums this test computes from the generated records."""
import collections
import json
import os
import signal
import tempfile
import time
import zlib
from decimal import Decimal

from support import (CONFIGS, TEST_PLUGIN_DIR, RedisServer, parse_tuples, pipehost,
                     reference_transactions, run_tests, start_pipehost, totals_of, wait_until)

CONFIG = os.path.join(CONFIGS, "transactions.toml")  # seed 001: sums logged
JAGO = os.path.join(CONFIGS, "jago.toml")            # seed 000: sums in Redis
# The shipped config reads ${KAFKA_BROKERS:-embedded}: blank them so the real services
# that scripts/test exported do not take over.
EMBEDDED = {"KAFKA_BROKERS": "", "SCHEMA_REGISTRY_URL": ""}


def sets(seed, count, *more, producer="produce"):
    args = ["--set", f"pipeline.{producer}.source.seed={seed}",
            "--set", f"pipeline.{producer}.source.count={count}"]
    for m in more:
        args += ["--set", m]
    return args


def test_logged_running_sums_end_at_the_produced_totals():
    seed, count = 11, 2000
    expected = totals_of(reference_transactions(seed, count))
    r = pipehost("run", CONFIG, *sets(seed, count), "--no-progress", env=EMBEDDED, check=0)
    per_record = parse_tuples(r.stdout)
    final = dict(parse_tuples(r.stdout, "final"))
    assert len(per_record) == count, f"{len(per_record)} tuples for {count} records"
    last = {}
    for account, total in per_record:
        last[account] = total
    assert last == expected
    assert final == expected
    assert len(expected) == 20


def redis_totals(redis, accounts):
    return {a: redis.cli("GET", a) for a in accounts}


def as_text(totals):
    return {a: f"{t:.2f}" for a, t in totals.items()}


def test_redis_totals_are_exact():
    seed, count = 12, 3000
    expected = as_text(totals_of(reference_transactions(seed, count)))
    with RedisServer() as redis:
        pipehost("run", JAGO, *sets(seed, count, producer="producer"), "--no-progress",
                 env={**EMBEDDED, "REDIS_URL": redis.url}, check=0)
        assert redis_totals(redis, expected) == expected
        positions = redis.cli("HGETALL", "pipehost:positions:consumer").split("\n")
        assert sorted(positions[0::2]) == ["jagoTransactions:0", "jagoTransactions:1", "jagoTransactions:2"]
        assert sum(int(x) for x in positions[1::2]) == count


def test_kill_9_mid_stream_then_a_restart_adds_its_own_run_to_what_was_applied():
    # The embedded broker's log dies with the process: the records of the killed run that
    # were not applied are gone, and the restart's producer writes a new log from offset 0.
    # Resuming from the positions the first run stored in Redis took the new log's records
    # below them for applied ones; they are dropped instead, so the totals are exactly
    # what the killed run applied plus the whole new run.
    seed, count = 13, 30000
    transactions = reference_transactions(seed, count)
    reference = totals_of(transactions)
    with RedisServer() as redis:
        args = ["run", JAGO, *sets(seed, count, "pipeline.producer.source.rate=3000", producer="producer"),
                "--no-progress"]
        p = start_pipehost(*args, env={**EMBEDDED, "REDIS_URL": redis.url})

        def applied():
            values = redis.cli("HVALS", "pipehost:positions:consumer").split()
            return sum(int(v) for v in values) if values else 0
        wait_until(lambda: applied() > 5000, 60, "the first records in Redis")
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert 0 < applied() < count, applied()
        killed = {a: Decimal(redis.cli("GET", a) or "0") for a in reference}
        # What the killed run applied, computed from the reference alone: in each partition
        # (librdkafka's default partitioner: CRC-32 of the key, the account, modulo 3),
        # the records before the position Redis stored with the totals.
        stored = redis.cli("HGETALL", "pipehost:positions:consumer").split()
        positions = {int(k.rsplit(":", 1)[1]): int(v) for k, v in zip(stored[0::2], stored[1::2])}
        in_partition = collections.defaultdict(list)
        for t in transactions:
            in_partition[zlib.crc32(t["account_number"].encode()) % 3].append(t)
        applied_before = totals_of([t for p, ts in in_partition.items() for t in ts[:positions.get(p, 0)]])
        assert killed == {a: applied_before.get(a, Decimal(0)) for a in reference}
        r = pipehost(*args[:-1], "--no-progress", env={**EMBEDDED, "REDIS_URL": redis.url}, check=0, timeout=180)
        assert "from an earlier run" in r.stderr
        assert applied() == count
        expected = {a: f"{killed[a] + t:.2f}" for a, t in reference.items()}
        assert redis_totals(redis, reference) == expected


def test_redis_down_at_start_is_exit_3_and_down_mid_run_loses_nothing():
    seed, count = 14, 20000
    expected = as_text(totals_of(reference_transactions(seed, count)))
    redis = RedisServer()
    args = ["run", JAGO, *sets(seed, count, "pipeline.producer.source.rate=2000", producer="producer"),
            "--no-progress"]
    # Checked before anything starts: a clear message and exit code 3.
    r = pipehost(*args, env={**EMBEDDED, "REDIS_URL": redis.url}, check=3)
    assert f"pipeline 'consumer', sink (redis_sum): redis 127.0.0.1:{redis.port}/0" in r.stderr, r.stderr
    assert "nothing was started" in r.stderr
    redis.start()
    p = start_pipehost(*args, env={**EMBEDDED, "REDIS_URL": redis.url})
    try:
        def applied():
            values = redis.cli("HVALS", "pipehost:positions:consumer").split()
            return sum(int(v) for v in values) if values else 0
        wait_until(lambda: applied() > 3000, 60, "records in Redis")
        redis.stop(signal.SIGKILL)
        time.sleep(1.5)
        redis.start()  # same port and data folder: the append-only file brings the data back
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
        assert "retrying" in err
        assert redis_totals(redis, expected) == expected
    finally:
        if p.poll() is None:
            p.kill()
        redis.stop()


def test_undecodable_records_under_each_policy():
    seed, count, every = 15, 1000, 50
    transactions = reference_transactions(seed, count)
    kept = [t for i, t in enumerate(transactions) if (i + 1) % every != 0]
    corrupt = ["--plugin-path", TEST_PLUGIN_DIR,
               "--set", 'pipeline.produce.transforms=[{plugin="protobuf_encode",message="Transaction",topic="transactions"},{plugin="corrupt",every=50}]']

    r = pipehost("run", CONFIG, *sets(seed, count, 'pipeline.sums.on_error="skip"'), *corrupt,
                 "--no-progress", env=EMBEDDED, check=0)
    assert dict(parse_tuples(r.stdout, "final")) == totals_of(kept)
    assert "skipped record transactions/" in r.stderr and "magic byte" in r.stderr

    dlq = os.path.join(tempfile.mkdtemp(), "dlq.jsonl")
    reader = ('pipeline.dlq={end_after="sums", source={plugin="kafka", topics=["transactions-dlq"], '
              f'group="dlq"}}, sink={{plugin="file", path="{dlq}", with_headers=true}}}}')
    r = pipehost("run", CONFIG, *sets(seed, count, 'pipeline.sums.on_error="dead_letter"', reader),
                 *corrupt, "--no-progress", env=EMBEDDED, check=0)
    assert dict(parse_tuples(r.stdout, "final")) == totals_of(kept)
    rows = [json.loads(line) for line in open(dlq)]
    assert len(rows) == count // every
    for row in rows:
        assert row["headers"]["pipehost.pipeline"] == "sums"
        assert row["headers"]["pipehost.stage"] == "transforms[0]"
        assert "magic byte" in row["headers"]["pipehost.error"]
        assert row["headers"]["pipehost.origin.topic"] == "transactions"

    r = pipehost("run", CONFIG, *sets(seed, count, 'pipeline.sums.on_error="fail"'), *corrupt,
                 "--no-progress", env=EMBEDDED, check=1)
    assert "pipeline 'sums' stopped: transforms[0]" in r.stderr
    assert "rejected:" in r.stderr and "magic byte" in r.stderr


def test_the_embedded_broker_says_when_it_drops_records():
    # 300k records outgrow its ~5 MiB per partition before the group has joined (3 s):
    # records are lost, and pipehost must say so rather than stay silent.
    r = pipehost("run", CONFIG, *sets(1, 300000, "pipeline.produce.source.rate=60000",
                                      "pipeline.sums.sink.each_record=false"),
                 "--no-progress", env=EMBEDDED, check=0)
    assert "the embedded broker started dropping the oldest records of transactions/" in r.stderr
    assert "the embedded broker dropped the oldest records:" in r.stderr


run_tests(globals())
