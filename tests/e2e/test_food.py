"""Seed 003: configs/food.toml on the embedded and the real broker. Checked with the
sqlite3 command-line tool and an HTTP client (urllib), not with pipehost's own code:
counts exact (also through kill -9 and with two processes in one group), the table's
structure unchanged, bad events dead-lettered, the API answering while counts change."""
import collections
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from support import (CONFIGS, SOURCE_DIR, free_port, kcat_consume, pipehost, require_env,
                     run_tests, start_pipehost, unique, wait_until)

FOOD = os.path.join(CONFIGS, "food.toml")
SEED_DB = os.path.join(CONFIGS, "data", "food-seed.sqlite")
EMBEDDED = {"KAFKA_BROKERS": ""}


def sqlite(db, sql):
    r = subprocess.run(["sqlite3", "-cmd", ".timeout 10000", db, sql], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def total(db):
    return int(sqlite(db, "SELECT coalesce(sum(count), 0) FROM aggregated"))


def fresh_db(empty=False):
    db = os.path.join(tempfile.mkdtemp(prefix="pipehost-food-"), "food.sqlite")
    shutil.copy(SEED_DB, db)
    os.chmod(db, 0o644)
    if empty:
        sqlite(db, "DELETE FROM aggregated")
    return db


def get(port, path="/aggregated", method="GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), json.loads(r.read())


def produce(topic, values, partitions=3):
    import confluent_kafka
    import confluent_kafka.admin
    brokers = require_env("KAFKA_BROKERS")
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": brokers})
    futures = admin.create_topics([confluent_kafka.admin.NewTopic(topic, partitions, 1)])
    try:
        futures[topic].result(30)
    except confluent_kafka.KafkaException:
        pass  # exists already
    producer = confluent_kafka.Producer({"bootstrap.servers": brokers})
    for v in values:  # as the seed's datafeed: json.dumps of a dict, no key
        producer.produce(topic, value=v if isinstance(v, bytes) else json.dumps(v).encode())
    assert producer.flush(30) == 0


def counter_args(db, topic, port, bounded=True):
    """The shipped counter (and API) of configs/food.toml, on a topic of the test's own."""
    args = ["run", FOOD, "--env", "real", "--pipeline", "counter", "--no-progress",
            "--set", f'pipeline.counter.source.topics=["{topic}"]',
            "--set", f"pipeline.counter.source.group={topic}-counter",
            "--set", f"pipeline.counter.dead_letter_topic={topic}-dlq",
            "--set", f'http.listen="127.0.0.1:{port}"']
    if bounded:
        args += ["--set", "pipeline.counter.source.stop_at_end=true"]
    return args


def env_for(db):
    return {"FOOD_DB": db}


def counts(db):
    return {food: int(n) for food, n in (line.split("|") for line in
                                          sqlite(db, "SELECT food, count FROM aggregated").splitlines())}


def reference_feed(count, seed):
    """How many of each food the feed names: datagen straight to a file, no Kafka, no sink under test."""
    from support import datagen_records
    return collections.Counter(r["food"] for r in datagen_records("food", count, seed))


def test_the_shipped_config_counts_a_burst_of_1000_exactly_and_keeps_the_table_as_it_was():
    db = fresh_db()
    ddl = sqlite(db, "SELECT sql FROM sqlite_master WHERE name = 'aggregated'")
    before, counts_before = total(db), counts(db)
    port = free_port()
    p = start_pipehost("run", FOOD, "--no-progress", "--set", f'http.listen="127.0.0.1:{port}"',
                       "--set", "pipeline.feed.source.seed=17", env={**EMBEDDED, "FOOD_DB": db})
    seen = []
    try:
        # The API answers while the counter writes; every answer is a consistent table.
        def answered():
            try:
                status, kind, rows = get(port)
            except OSError:
                return False
            assert status == 200 and kind == "application/json"
            assert len(rows) == 107 and all(set(r) == {"count", "food"} for r in rows)
            seen.append(sum(r["count"] for r in rows))
            return p.poll() is not None or len(seen) > 20
        wait_until(answered, 60, "answers from GET /aggregated")
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
    assert total(db) == before + 1000
    fed = reference_feed(1000, 17)
    assert {f: n - counts_before[f] for f, n in counts(db).items() if n != counts_before[f]} == fed
    assert seen == sorted(seen) and before <= seen[0] and seen[-1] <= before + 1000
    assert sqlite(db, "SELECT sql FROM sqlite_master WHERE name = 'aggregated'") == ddl
    assert sqlite(db, "SELECT count(*) FROM aggregated") == "107"


def test_running_the_embedded_config_again_counts_the_new_run_instead_of_skipping_it():
    # The embedded broker starts empty every run, so positions the sink stored in the
    # first run belong to a log that is gone: resuming from them took the second run's
    # 1000 events for applied ones (it counted nothing and exited 0).
    db = fresh_db()
    before = total(db)
    for run in (1, 2):
        r = pipehost("run", FOOD, "--no-progress", "--set", f'http.listen="127.0.0.1:{free_port()}"',
                     env={**EMBEDDED, "FOOD_DB": db}, check=0, timeout=120)
        assert total(db) == before + 1000 * run
    assert "from an earlier run" in r.stderr


def test_a_stored_position_past_the_end_of_the_log_stops_the_counter_instead_of_skipping():
    # Positions of another cluster (or of a topic deleted and made again): the first
    # records come from below the stored position; skipping them would lose them.
    import confluent_kafka
    topic = unique("message")
    produce(topic, [])
    producer = confluent_kafka.Producer({"bootstrap.servers": require_env("KAFKA_BROKERS")})
    for _ in range(3):
        producer.produce(topic, value=json.dumps({"food": "bagel"}).encode(), partition=0)
    assert producer.flush(30) == 0
    db = fresh_db()
    before = total(db)
    sqlite(db, "CREATE TABLE pipehost_offsets (pipeline TEXT, topic TEXT, partition INTEGER, "
               "next_offset INTEGER NOT NULL, PRIMARY KEY (pipeline, topic, partition))")
    sqlite(db, f"INSERT INTO pipehost_offsets VALUES ('counter', '{topic}', 0, 1000)")
    r = pipehost(*counter_args(db, topic, free_port()), env=env_for(db), check=1, timeout=120)
    assert f"stored position of {topic}/0 is 1000, past the end" in r.stderr, r.stderr[-3000:]
    assert total(db) == before


def check_methods_and_paths(port):
    """What an HTTP client gets besides GET and POST, as from the seed's Flask API."""
    import http.client

    def ask(method, path="/aggregated", body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            c.request(method, path, body=body, headers=headers or {},
                      encode_chunked="Transfer-Encoding" in (headers or {}))
            r = c.getresponse()
            return r.status, r.getheader("Allow") or "", r.read()
        finally:
            c.close()
    status, _, body = ask("HEAD")
    assert (status, body) == (200, b"")
    status, allow, _ = ask("OPTIONS")
    assert status == 200 and set(allow.split(", ")) == {"GET", "POST", "HEAD", "OPTIONS"}, allow
    status, allow, body = ask("PUT", body=b"{}")
    assert status == 405 and "GET" in allow and b"PUT" in body, (status, allow, body)
    status, _, _ = ask("POST", body=b"x" * (2 << 20))  # past the 1 MiB body limit: not read
    assert status == 413, status
    # Chunked, the limit did not apply (the server read 300 MiB into memory): refused unread.
    status, _, body = ask("POST", body=iter([b"x" * (1 << 20)] * 3), headers={"Transfer-Encoding": "chunked"})
    assert status == 411 and b"Content-Length" in body, (status, body)
    assert ask("GET", headers={"Range": "bytes=0-,0-,0-"})[0] == 416  # not three copies
    for path in ("/aggregatedX", "/aggregate.", "/Aggregated", "/%FF"):  # the path is literal
        assert ask("GET", path)[0] == 404, path


def test_one_more_x_counts_n_plus_1_and_an_empty_table_answers_exactly_mayo_and_butter():
    topic = unique("message")
    db = fresh_db()
    n = int(sqlite(db, "SELECT count FROM aggregated WHERE food = 'bagel'"))
    produce(topic, [{"food": "bagel"}])
    pipehost(*counter_args(db, topic, free_port()), env=env_for(db), check=0, timeout=120)
    assert int(sqlite(db, "SELECT count FROM aggregated WHERE food = 'bagel'")) == n + 1

    topic = unique("message")
    db = fresh_db(empty=True)
    produce(topic, [{"food": "mayo"}, {"food": "butter"}, {"food": "mayo"}, {"food": "mayo"}])
    port = free_port()
    p = start_pipehost(*counter_args(db, topic, port, bounded=False), env=env_for(db))
    try:
        wait_until(lambda: sqlite(db, "SELECT coalesce(sum(count), 0) FROM aggregated") == "4", 60, "4 counted")
        for method in ("GET", "POST"):
            status, kind, rows = get(port, method=method)
            assert (status, kind) == (200, "application/json")
            assert rows == [{"count": 1, "food": "butter"}, {"count": 3, "food": "mayo"}], rows
        check_methods_and_paths(port)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
    finally:
        if p.poll() is None:
            p.kill()


def test_bad_events_are_not_counted_and_are_dead_lettered_with_the_reason():
    topic = unique("message")
    db = fresh_db(empty=True)
    bad = [b"not json", {}, {"drink": "tea"}, {"food": None}, {"food": 3}, {"food": "x" * 100}, b"[1]"]
    produce(topic, [{"food": "toast"}, *bad, {"food": "toast"}])
    pipehost(*counter_args(db, topic, free_port()), env=env_for(db), check=0, timeout=120)
    assert sqlite(db, "SELECT food, count FROM aggregated") == "toast|2"
    reasons = kcat_consume(require_env("KAFKA_BROKERS"), f"{topic}-dlq", "%h\\n")
    assert len(reasons) == len(bad), reasons
    text = "\n".join(reasons)
    for expected in ("not a JSON object", "field 'food' is missing", "field 'food' is null", "not a string",
                     "which does not match .{1,64}"):
        assert expected in text, (expected, text)


def test_kill_9_mid_stream_and_two_processes_in_one_group_count_exactly():
    topic = unique("message")
    db = fresh_db(empty=True)
    foods = [{"food": f"food-{i % 50}"} for i in range(20000)]
    expected = collections.Counter(f["food"] for f in foods)
    produce(topic, foods[:10000])
    first = start_pipehost(*counter_args(db, topic, free_port(), bounded=False), env=env_for(db))
    second = start_pipehost(*counter_args(db, topic, free_port(), bounded=False), env=env_for(db))
    try:
        wait_until(lambda: total(db) > 2000, 90, "counts from two processes")
        first.send_signal(signal.SIGKILL)
        first.wait()
        produce(topic, foods[10000:])
        first = start_pipehost(*counter_args(db, topic, free_port(), bounded=False), env=env_for(db))
        wait_until(lambda: total(db) == 20000, 120, "every event counted")
        time.sleep(1)  # nothing more may arrive: no double counting after the end
        for p in (first, second):
            p.send_signal(signal.SIGTERM)
        for p in (first, second):
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err[-2000:]
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()
    rows = dict(line.split("|") for line in sqlite(db, "SELECT food, count FROM aggregated").splitlines())
    assert {k: int(v) for k, v in rows.items()} == dict(expected)


run_tests(globals())
