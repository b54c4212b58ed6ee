"""bench/run's harness: the five benchmark pipelines (produce, consume, route, trades,
food), three to four contenders each, on the real services from scripts/services. See
bench/README.md. Speed figures live here and in bench/RESULTS.md only; no test asserts
timings."""
import argparse
import datetime
import json
import os
import platform
import hashlib
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal

import confluent_kafka
import redis
import requests
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

import instructions  # bench/instructions.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
BIN = os.path.join(BUILD, "bin")
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
SEED = 42


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def services_env():
    out = subprocess.run([os.path.join(ROOT, "scripts/services"), "env", "kafka", "registry", "redis",
                          "postgres"],
                         capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        for k, v in re.findall(r"(\w+)=(\S+)", line.replace("export ", "")):
            env[k] = v
    return env


def pid_of(env, name):
    path = os.path.join(env.get("PIPEHOST_SERVICES_DIR", "/tmp/pipehost-services"), "run", f"{name}.pid")
    return int(re.sub(r"\D", "", open(path).readline()))


def cpu_seconds(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:  # the service restarted (someone else ran `scripts/services`)
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def postgres_pid(env):
    """The postmaster's pid (scripts/services keeps PostgreSQL's own pid file), or None."""
    path = os.path.join(env.get("PIPEHOST_SERVICES_DIR", "/tmp/pipehost-services"), "data", "postgres",
                        "postmaster.pid")
    try:
        return int(open(path).readline())
    except (OSError, ValueError):
        return None


def tree_cpu_seconds(pid):
    """CPU seconds of a process, its reaped children (cutime, cstime) and its live children:
    PostgreSQL's postmaster and its backends, one per connection. A backend that starts and
    ends inside a window is in the postmaster's cutime at its end; the delta of this sum over
    a window is the cluster's CPU in it (other sessions' queries included, as for the broker)."""
    if pid is None:
        return 0.0
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(f[1]) == pid:
            ticks += int(f[11]) + int(f[12])
    return ticks / TICK


def rss_kb(pid):
    """(VmRSS, VmHWM) in kB, or (None, None). VmHWM is the process's own peak RSS: wait4's
    ru_maxrss is not, as Linux carries the parent's peak over fork and exec into the child
    (a contender would never show less than the harness's own ~60 MB)."""
    rss = hwm = None
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class Bench:
    def __init__(self, opts):
        self.o = opts
        self.env = {**os.environ, **services_env()}
        self.brokers = self.env["KAFKA_BROKERS"]
        self.registry = self.env["SCHEMA_REGISTRY_URL"]
        self.redis_url = self.env["REDIS_URL"]
        self.redis = redis.Redis.from_url(self.redis_url)
        self.broker_pid = pid_of(self.env, "kafka")
        self.redis_pid = pid_of(self.env, "redis")
        self.admin = AdminClient({"bootstrap.servers": self.brokers})
        self.run_id = uuid.uuid4().hex[:6]
        self.tmp = tempfile.mkdtemp(prefix="pipehost-bench-")
        self.schema_text = None
        self.baseline_settings = {}
        self.ran_route = False
        self.ran = set()
        self.pg_pid = postgres_pid(self.env)
        self.versions = {}

    # ------------------------------------------------------------ services helpers
    def topic(self, name, partitions=3, config=None):
        t = f"bench-{self.run_id}-{name}"
        fs = self.admin.create_topics([NewTopic(t, partitions, 1, config=config or {})])
        for f in fs.values():
            f.result()
        return t

    def delete_topics(self, topics):
        if topics:
            for f in self.admin.delete_topics(list(topics)).values():
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001
                    log("delete topic:", e)

    def delete_old_bench_topics(self):
        md = self.admin.list_topics(timeout=10)
        self.delete_topics([t for t in md.topics if t.startswith("bench-")])

    def register(self, topic):
        """Registers the text pipehost registers under <topic>-value: the same content id."""
        r = requests.post(f"{self.registry}/subjects/{topic}-value/versions",
                          json={"schema": self.schema_text, "schemaType": "PROTOBUF"}, timeout=10)
        r.raise_for_status()
        return r.json()["id"]

    def learn_schema_text(self):
        t = self.topic("schema", 1)
        self.run_cmd([os.path.join(BIN, "pipehost"), "run", "bench/configs/produce.toml", "--no-progress",
                      "--set", "pipeline.produce.source.count=1"], {"BENCH_TOPIC": t}, check=True)
        r = requests.get(f"{self.registry}/subjects/{t}-value/versions/latest", timeout=10)
        r.raise_for_status()
        self.schema_text = r.json()["schema"]
        self.delete_topics([t])

    def run_cmd(self, cmd, extra_env=None, check=True):
        p = subprocess.run(cmd, cwd=ROOT, env={**self.env, **(extra_env or {})}, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
        return p

    def preload(self, name, count, sums_path):
        t = self.topic(name)
        sid = self.register(t)
        p = self.run_cmd([os.path.join(BIN, "produce_baseline"), "--brokers", self.brokers, "--topic", t,
                          "--schema-id", str(sid), "--count", str(count), "--seed", str(SEED),
                          "--sums", sums_path])
        log(f"preloaded {t}: {p.stdout.strip()[:120]}")
        return t, {k: int(v) for k, v in json.load(open(sums_path)).items()}

    def redis_matches(self, expected):
        keys = list(expected)
        got = self.redis.mget(keys)
        for k, v in zip(keys, got):
            if v is None or round(Decimal(v.decode()) * 100) != expected[k]:
                return False
        return True

    # ------------------------------------------------------------ one contender run
    def launch(self, cmd, extra_env, done=None, timeout=600, stop_on_done=False):
        """Runs cmd; the clock stops at process exit, or when done() is true. Returns
        wall seconds, contender/broker/redis CPU seconds, peak and steady RSS, stdout."""
        out = open(os.path.join(self.tmp, "out.txt"), "w+")
        err = open(os.path.join(self.tmp, "err.txt"), "w+")
        self.broker_pid = pid_of(self.env, "kafka")
        self.redis_pid = pid_of(self.env, "redis")
        self.pg_pid = postgres_pid(self.env)
        b0, r0, p0 = cpu_seconds(self.broker_pid), cpu_seconds(self.redis_pid), tree_cpu_seconds(self.pg_pid)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=out, stderr=err)
        samples, t_end, b1, r1, p1, status, usage = [], None, None, None, None, None, None
        reached = False  # done() said so (not a timeout)
        peak_kb = 0  # VmHWM, sampled every 20 ms (VmRSS every 100 ms)
        next_sample = t0
        while True:
            now = time.monotonic()
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
                if t_end is None:
                    t_end, b1, r1 = now, cpu_seconds(self.broker_pid), cpu_seconds(self.redis_pid)
                    p1 = tree_cpu_seconds(self.pg_pid)
                break
            kb, hwm = rss_kb(proc.pid)  # every 20 ms: a short run's peak too
            if hwm:
                peak_kb = max(peak_kb, hwm)
            if now >= next_sample:
                if kb:
                    samples.append(kb)
                next_sample += 0.1
            if t_end is None and done is not None and done():
                reached = True
                t_end, b1, r1 = time.monotonic(), cpu_seconds(self.broker_pid), cpu_seconds(self.redis_pid)
                p1 = tree_cpu_seconds(self.pg_pid)
                if stop_on_done:
                    proc.send_signal(signal.SIGTERM)
            if now - t0 > timeout:
                log(f"timeout: {cmd[:2]}; terminating")
                proc.send_signal(signal.SIGTERM)
                timeout += 30
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        if proc.returncode != 0 and not (stop_on_done and reached):
            log(f"{os.path.basename(cmd[0])} {' '.join(cmd[1:3])} exited {proc.returncode}: {stderr[-1500:]}")
        # nan: a service restarted meanwhile. A contender stopped with SIGTERM once done
        # (Kafka Connect, which never ends by itself) may exit 143.
        stopped = stop_on_done and reached and proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)
        ok = (proc.returncode == 0 or stopped) and b1 == b1 and r1 == r1 and p1 == p1
        return {"seconds": t_end - t0, "exit_seconds": now - t0, "cpu": usage.ru_utime + usage.ru_stime,
                "broker_cpu": b1 - b0, "redis_cpu": r1 - r0, "pg_cpu": p1 - p0,
                "peak_rss_mb": (peak_kb or usage.ru_maxrss) / 1024, "ru_maxrss_mb": usage.ru_maxrss / 1024,
                "steady_rss_mb": statistics.median(samples) / 1024 if samples else None,
                "stdout": stdout, "stderr": stderr, "rc": proc.returncode, "ok": ok}

    # ------------------------------------------------------------ contenders, pipeline 1
    def produce_cmd(self, who, topic, count, rate=0.0):
        stats = os.path.join(self.tmp, "stats.json")
        if who in ("pipehost", "pipehost-2tasks"):
            if os.path.exists(stats):  # an earlier run's figures must not stand in for this one's
                os.unlink(stats)
            cmd = [os.path.join(BIN, "pipehost"), "run", "bench/configs/produce.toml", "--no-progress",
                   "--stats", stats, "--set", f"pipeline.produce.source.count={count}",
                   "--set", f"pipeline.produce.source.rate={float(rate)}"]
            if who == "pipehost-2tasks":  # two generating and producing threads (datagen splits the records)
                cmd += ["--set", "pipeline.produce.tasks=2"]
            return cmd, {"BENCH_TOPIC": topic}
        if who == "baseline":
            return ([os.path.join(BIN, "produce_baseline"), "--brokers", self.brokers, "--topic", topic,
                     "--schema-id", str(self.register(topic)), "--count", str(count), "--seed", str(SEED),
                     "--rate", str(rate)], {})
        if who == "py-batched":
            return ([PY, "bench/python/produce_batched.py", "--brokers", self.brokers, "--topic", topic,
                     "--schema-id", str(self.register(topic)), "--count", str(count), "--rate", str(rate)], {})
        return ([PY, "bench/python/produce_per_message.py", "--brokers", self.brokers, "--registry",
                 self.registry, "--topic", topic, "--count", str(count), "--rate", str(rate)], {})

    # ------------------------------------------------------------ contenders, pipeline 2
    def consume_cmd(self, who, topic, group, live=False):
        stats = os.path.join(self.tmp, "stats.json")
        if who in ("pipehost", "pipehost-projected"):
            if os.path.exists(stats):  # an earlier run's figures must not stand in for this one's
                os.unlink(stats)
            cmd = [os.path.join(BIN, "pipehost"), "run", "bench/configs/consume.toml", "--no-progress",
                   "--stats", stats]
            if who == "pipehost-projected":  # what the shipped configs do: only the sink's fields
                cmd += ["--set", 'pipeline.consume.transforms.0.fields=["account_number","amount"]']
            if live:
                cmd += ["--set", "pipeline.consume.source.stop_at_end=false"]
            return cmd, {"BENCH_TOPIC": topic, "BENCH_GROUP": group}
        if who == "baseline":
            u = redis.connection.parse_url(self.redis_url)
            return ([os.path.join(BIN, "consume_baseline"), "--brokers", self.brokers, "--topic", topic,
                     "--group", group, "--redis-host", u.get("host", "127.0.0.1"),
                     "--redis-port", str(u.get("port", 6379)), "--redis-db", str(u.get("db", 0)),
                     "--threads", "3", "--batch", "512", "--props", CONSUME_PROPS, "--stop-at-end", "0" if live else "1"], {})
        if who == "benthos":
            return ([self.benthos, "-c", "bench/benthos/consume.yaml"], {"BENCH_TOPIC": topic, "BENCH_GROUP": group})
        script = "consume_batched.py" if who == "py-batched" else "consume_per_message.py"
        return ([PY, f"bench/python/{script}", "--brokers", self.brokers, "--topic", topic, "--group", group,
                 "--redis", self.redis_url, "--live", "1" if live else "0"], {})

    def latency_of(self, who, result, pipeline):
        if who.startswith("pipehost"):
            try:
                return json.load(open(os.path.join(self.tmp, "stats.json")))["pipelines"][pipeline].get("latency_ms")
            except (OSError, ValueError, KeyError):
                return None
        for line in reversed(result["stdout"].splitlines()):
            if line.startswith("{"):
                d = json.loads(line)
                if "settings" in d and who == "baseline":
                    self.baseline_settings[pipeline] = d["settings"]
                    self.baseline_settings["librdkafka"] = d.get("librdkafka")
                return d.get("latency_ms")
        return None

    # ------------------------------------------------------------ phases
    def throughput(self, contenders, one_run, rounds):
        results = {c: [] for c in contenders}
        for rnd in range(rounds):
            for c in contenders:
                res = one_run(c)
                if not res["ok"] and rnd > 0 and self.o.strict:
                    # CI's slice: a contender that fails twice has rotted; once can be a
                    # flake of the machine or of a third-party client.
                    log(f"  round {rnd} {c}: failed; --strict runs it once more")
                    res = one_run(c)
                tag = "warm-up" if rnd == 0 else f"round {rnd}"
                log(f"  {tag} {c}: {res['records'] / res['seconds']:,.0f} rec/s in {res['seconds']:.2f}s "
                    f"(cpu {res['cpu']:.2f}s, broker {res['broker_cpu']:.2f}s, redis {res['redis_cpu']:.2f}s, "
                    f"postgres {res.get('pg_cpu', 0):.2f}s, "
                    f"peak {res['peak_rss_mb']:.0f} MB){'' if res['ok'] else ' FAILED'}")
                if rnd > 0:
                    results[c].append(res)
        return results

    def produce_phase(self):
        o = self.o
        counts = {"pipehost": o.records, "pipehost-2tasks": o.records, "baseline": o.records,
                  "py-batched": o.records, "py-per-message": o.pm_records}

        def one(c):
            t = self.topic(f"p1-{c}-{uuid.uuid4().hex[:4]}")
            cmd, env = self.produce_cmd(c, t, counts[c])
            res = self.run_one(cmd, env)
            res["records"] = counts[c]
            # The rate counts only records on the topic (idempotent producers, no
            # transactions: the high watermarks add up to the records written).
            try:
                written = sum(self.end_offsets([t]).values())
            except confluent_kafka.KafkaException as e:
                written = -1
                log(f"  {c}: cannot count the records on {t}: {e}")
            if written != counts[c]:
                res["ok"] = False
                log(f"  {c}: {written} records on the topic, not {counts[c]}")
            self.latency_of(c, res, "produce")
            self.delete_topics([t])
            return res

        log("pipeline 1 (produce): throughput")
        return self.throughput(PRODUCE_CONTENDERS, one, o.rounds + 1)

    def consume_phase(self, big, small):
        o = self.o

        def one(c):
            topic, expected, count = small if c == "py-per-message" else big
            self.redis.flushdb()
            group = f"bench-{self.run_id}-{c}-{uuid.uuid4().hex[:6]}"
            cmd, env = self.consume_cmd(c, topic, group)
            # Benthos never ends by itself: stopped (SIGTERM) once Redis holds the totals.
            res = self.launch(cmd, env, done=lambda: self.redis_matches(expected), timeout=o.timeout,
                              stop_on_done=c == "benthos")
            if not self.redis_matches(expected):
                res["ok"] = False
                log(f"  {c}: Redis does not hold the expected totals")
            res["records"] = count
            self.latency_of(c, res, "consume")
            return res

        log("pipeline 2 (consume): throughput")
        return self.throughput([c for c in CONSUME_CONTENDERS if c != "benthos" or self.benthos], one,
                               o.rounds + 1)

    def run_one(self, cmd, env):
        return self.launch(cmd, env, timeout=self.o.timeout)

    def latency_produce(self, rate):
        out = {}
        count = int(rate * self.o.latency_seconds)
        for c in CONTENDERS:
            t = self.topic(f"l1-{c}")
            n = min(count, self.o.pm_records) if c == "py-per-message" else count
            cmd, env = self.produce_cmd(c, t, n, rate)
            res = self.launch(cmd, env, timeout=self.o.latency_seconds * 6)
            res["records"] = n
            out[c] = {"latency": self.latency_of(c, res, "produce"), "achieved": n / res["seconds"],
                      "ok": res["ok"]}
            log(f"  latency produce {c} @ {rate:,.0f}/s: {out[c]}")
            self.delete_topics([t])
        return out

    def latency_consume(self, rate, contenders=None):
        """Each contender live at rate, o.latency_rounds rounds interleaved: one run's p99 on
        this shared machine swings 2-6x between runs of the same contender, so the table
        gives the median of the rounds' percentiles and the p99 spread. The Python
        contenders run the first round only: at half pipehost's rate they never keep up
        (each such run waits out its deadline), so more rounds would say nothing new."""
        contenders = contenders or CONTENDERS
        runs = {c: [] for c in contenders}
        for rnd in range(self.o.latency_rounds):
            for c in contenders:
                if rnd > 0 and c.startswith("py-"):
                    continue
                runs[c].append(self.latency_consume_once(c, rate, rnd))
                log(f"  latency consume {c} @ {rate:,.0f}/s, round {rnd + 1}: {runs[c][-1]}")
        return {c: merge_latency_runs(r) for c, r in runs.items()}

    def latency_consume_once(self, c, rate, rnd):
        count = int(rate * self.o.latency_seconds)
        # The broker stamps each record when it appends it (LogAppendTime), so the latency
        # is the consumer's alone: from CreateTime it also held the feeder's own queueing,
        # whose tail (p99 38-337 ms between runs) hid the consumers' (bench/NOTES.md).
        t = self.topic(f"l2-{c}-{rnd}", config={"message.timestamp.type": "LogAppendTime"})
        group = f"bench-{self.run_id}-lat-{c}-{rnd}"
        self.redis.flushdb()
        cmd, env = self.consume_cmd(c, t, group, live=True)
        out_f = open(os.path.join(self.tmp, "lat-out.txt"), "w+")
        err_f = open(os.path.join(self.tmp, "lat-err.txt"), "w+")
        consumer = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **env}, stdout=out_f, stderr=err_f)
        time.sleep(6)  # group join and assignment of all 3 partitions
        sums = os.path.join(self.tmp, "lat-sums.json")
        busy = MachineBusy()
        self.run_cmd([os.path.join(BIN, "produce_baseline"), "--brokers", self.brokers, "--topic", t,
                      "--schema-id", str(self.register(t)), "--count", str(count), "--seed", "7",
                      "--rate", str(rate), "--sums", sums])
        busy = busy.fraction()
        expected = {k: int(v) for k, v in json.load(open(sums)).items()}
        deadline = time.monotonic() + (20 if c == "py-per-message" else 60)
        while time.monotonic() < deadline and not self.redis_matches(expected):
            time.sleep(0.1)
        caught_up = self.redis_matches(expected)
        res = {"stdout": stop_live(consumer, out_f)}
        self.delete_topics([t])
        return {"latency": self.latency_of(c, res, "consume"), "caught_up": caught_up, "busy": busy}

    # ------------------------------------------------------------ pipeline 3 (route)
    def route_preload(self, name, count, rate=0.0, topic=None):
        """Writes count tenant events into a topic (3 partitions) with pipehost itself
        (bench/configs/route_preload.toml: three tenants, each a third of count); before
        any timed window, or as the live driver of the latency phase (rate > 0)."""
        t = topic or self.topic(name)
        shares = [count // 3 + (1 if i < count % 3 else 0) for i in range(3)]
        cmd = [os.path.join(BIN, "pipehost"), "run", "bench/configs/route_preload.toml", "--no-progress"]
        for tenant, n in zip(("tenant_a", "tenant_b", "tenant_c"), shares):
            cmd += ["--set", f"pipeline.{tenant}.source.count={n}",
                    "--set", f"pipeline.{tenant}.source.rate={float(rate) / 3}"]
        t0 = time.monotonic()
        self.run_cmd(cmd, {"BENCH_TOPIC": t})
        if not rate:
            log(f"preloaded {t}: {count:,} tenant events in {time.monotonic() - t0:.1f}s")
        return t

    def route_outputs(self, prefix):
        topics = [f"{prefix}.processor.to.{d}" for d in ROUTE_DESTINATIONS]
        fs = self.admin.create_topics([NewTopic(t, 3, 1) for t in topics] +
                                      [NewTopic(f"{prefix}.processor.dead-letters", 1, 1)])
        for f in fs.values():
            f.result()
        deadline = time.monotonic() + 10  # leaders elected and known (see retrying)
        while time.monotonic() < deadline:
            md = self.admin.list_topics(timeout=5).topics
            if all(t in md and len(md[t].partitions) == 3 and all(p.leader >= 0 for p in md[t].partitions.values())
                   for t in topics):
                break
            time.sleep(0.1)
        return topics

    def retrying(self, ask, attempts=5):
        """An admin answer. librdkafka's admin client can keep a topic created a moment ago
        in its metadata cache without partition leaders ("No leaders found" on every
        ListOffsets until the next refresh): on an error the metadata is fetched again."""
        for attempt in range(attempts):
            try:
                return ask()
            except confluent_kafka.KafkaException:
                if attempt == attempts - 1:
                    raise
                self.admin.list_topics(timeout=5)
                time.sleep(0.2)

    def end_offsets(self, topics, partitions=3, attempts=5):
        def ask():
            fs = self.admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest()
                                          for t in topics for p in range(partitions)}, request_timeout=10)
            return {(tp.topic, tp.partition): f.result().offset for tp, f in fs.items()}
        return self.retrying(ask, attempts)

    def committed(self, group, topic, partitions=3, attempts=5):
        def ask():
            f = self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])],
                request_timeout=10)[group]
            return {(tp.topic, tp.partition): tp.offset for tp in f.result().topic_partitions}
        return self.retrying(ask, attempts)

    def committed_to_end(self, group, topic, ends=None, attempts=5):
        ends = ends or self.end_offsets([topic], attempts=attempts)
        got = self.committed(group, topic, attempts=attempts)
        return all(got.get(k, -1) >= v for k, v in ends.items() if v > 0)

    def route_done(self, exactly_once, topic, group, outputs, count):
        """Every input event is on the output topics and its consumption is committed.
        At least once: the output high watermarks sum to count (at least: a rebalance while
        the group forms can make a member read records again) and the group has committed
        every input partition to its end (duplicates alone must not stop the clock early).
        Exactly once (the high watermarks also count transaction markers): the group has
        committed every input partition to its end, which happens in the transaction that
        wrote the partition's last outputs. Checked at most every 100 ms."""
        ends = self.end_offsets([topic])
        last = [0.0]

        def check():
            now = time.monotonic()
            if now - last[0] < 0.1:
                return False
            last[0] = now
            try:
                if not exactly_once and sum(self.end_offsets(outputs, attempts=1).values()) < count:
                    return False
                return self.committed_to_end(group, topic, ends, attempts=1)
            except Exception:  # noqa: BLE001  (a transient admin error: ask again)
                return False
        return check

    def committed_records(self, topics):
        """How many records a read_committed consumer reads from the topics (transaction
        markers and aborted records, which the high watermarks count, are not)."""
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.brokers, "group.id": "bench-count",
                                             "enable.auto.commit": False, "isolation.level": "read_committed",
                                             "enable.partition.eof": True})
        try:
            parts = [TopicPartition(t, p, confluent_kafka.OFFSET_BEGINNING) for t in topics for p in range(3)]
            consumer.assign(parts)
            left, count, idle = len(parts), 0, 0
            while left and idle < 30:
                batch = consumer.consume(10000, 1.0)
                idle = 0 if batch else idle + 1
                for m in batch:
                    if m.error() is None:
                        count += 1
                    elif m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        left -= 1
            return count if not left else -1
        finally:
            consumer.close()

    def route_check(self, prefix, outputs):
        """Reads the first record of every non-empty output partition (read_committed) with
        confluent-kafka's AvroDeserializer and checks its key, fields and subject."""
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext
        registry = SchemaRegistryClient({"url": self.registry})
        deserialize = AvroDeserializer(registry)
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.brokers, "group.id": "bench-check",
                                             "enable.auto.commit": False, "isolation.level": "read_committed"})
        problems = []
        try:
            for t, d in zip(outputs, ROUTE_DESTINATIONS):
                for p in range(3):
                    low, high = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                    if high <= low:
                        continue
                    consumer.assign([TopicPartition(t, p, low)])
                    m = consumer.poll(10)
                    if m is None or m.error():
                        problems.append(f"{t}/{p}: no record")
                        continue
                    v = deserialize(m.value(), SerializationContext(t, MessageField.VALUE))
                    want = {"processor_service_id": "event-processor-1", "destination_type": d.upper()}
                    if ({k: v.get(k) for k in want} != want or not v["payload"].startswith("dummy-payload ")
                            or m.key().decode() != f"{v['producer_service_id']}:{d.upper()}"
                            or v["processor_event_timestamp"] < v["producer_event_timestamp"]):
                        problems.append(f"{t}/{p}: {m.key()} {v}")
            latest = registry.get_latest_version(f"{prefix}.processor.to.consumer-value")
            if json.loads(latest.schema.schema_str)["name"] != "ProcessorToConsumer":
                problems.append("output subject holds another schema")
        finally:
            consumer.close()
        return problems

    def route_cmd(self, who, topic, group, prefix, live=False):
        stats = os.path.join(self.tmp, "stats.json")
        if who in ("pipehost", "pipehost-eos"):
            if os.path.exists(stats):
                os.unlink(stats)
            cmd = [os.path.join(BIN, "pipehost"), "run", "bench/configs/route.toml", "--no-progress",
                   "--stats", stats]
            if who == "pipehost-eos":
                # A transaction per batch costs its round trips (~20 ms here): the larger
                # batches the kafka sink's docs advise for exactly_once.
                cmd += ["--set", "pipeline.processor.sink.exactly_once=true",
                        "--set", f"pipeline.processor.sink.transactional_id={prefix}",
                        "--set", "pipeline.processor.batch_size=4096"]
            if live:
                cmd += ["--set", "pipeline.processor.source.stop_at_end=false"]
            if self.o.route_tasks != 3:
                cmd += ["--set", f"pipeline.processor.tasks={self.o.route_tasks}"]
            return cmd, {"BENCH_TOPIC": topic, "BENCH_GROUP": group, "BENCH_PREFIX": prefix}
        if who == "baseline":
            return ([os.path.join(BIN, "route_baseline"), "--brokers", self.brokers, "--registry", self.registry,
                     "--topic", topic, "--group", group, "--prefix", prefix,
                     "--out-schema", "configs/schemas/processor-to-consumer.avsc",
                     "--threads", str(self.o.route_tasks),
                     "--batch", "512", "--stop-at-end", "0" if live else "1"], {})
        return ([PY, "bench/python/route_per_message.py", "--brokers", self.brokers, "--registry", self.registry,
                 "--topic", topic, "--group", group, "--prefix", prefix, "--commit-every", "5",
                 "--live", "1" if live else "0"], {})

    def route_phase(self, big, small):
        o = self.o

        def one(c):
            topic, count = small if c == "py-per-message" else big
            tag = f"{c}-{uuid.uuid4().hex[:4]}"
            prefix, group = f"bench-{self.run_id}-route-{tag}", f"bench-{self.run_id}-route-{tag}"
            outputs = self.route_outputs(prefix)
            eos = c == "pipehost-eos"
            cmd, env = self.route_cmd(c, topic, group, prefix)
            res = self.launch(cmd, env, done=self.route_done(eos, topic, group, outputs, count),
                              timeout=o.timeout)
            res["records"] = count
            try:
                written = sum(self.end_offsets(outputs).values())
                committed = self.committed_to_end(group, topic)
            except confluent_kafka.KafkaException as e:
                written, committed = 0, False
                log(f"  {c}: cannot check the run: {e}")
            if not committed:
                res["ok"] = False
                log(f"  {c}: the group did not commit every input partition to its end")
            if eos:  # the records in committed transactions, read as a consumer reads them
                delivered = self.committed_records(outputs)
                if delivered != count:
                    res["ok"] = False
                    log(f"  {c}: {delivered} records in committed transactions on the output topics, not {count}")
            elif written < count:
                res["ok"] = False
                log(f"  {c}: {written} records on the output topics, not {count}")
            elif written > count:
                res["duplicates"] = written - count
                kept = os.path.join(self.tmp, f"route-{tag}.stderr")
                with open(kept, "w") as f:
                    f.write(res["stderr"])
                log(f"  {c}: {written - count} duplicates on the output topics (at least once); its log: {kept}")
            problems = self.route_check(prefix, outputs) if res["ok"] else []
            if problems:
                res["ok"] = False
                log(f"  {c}: wrong output: {problems[:3]}")
            self.route_latency(c, res)
            self.delete_topics(outputs + [f"{prefix}.processor.dead-letters"])
            return res

        log("pipeline 3 (route): throughput")
        return self.throughput(ROUTE_CONTENDERS, one, o.rounds + 1)

    def route_latency(self, who, result):
        if who.startswith("pipehost"):
            return self.latency_of("pipehost", result, "processor")  # the pipeline's name in route.toml
        return self.latency_of(who, result, "route")

    def pipehost_records(self, result, pipeline="processor"):
        try:
            return json.load(open(os.path.join(self.tmp, "stats.json")))["pipelines"][pipeline]["records_acked"]
        except (OSError, ValueError, KeyError):
            return None

    def latency_route(self, rate, eos_rate):
        """Each contender runs live on a fresh topic; pipehost's preload config feeds it at
        rate (three tenants, a third each; pipehost exactly once at eos_rate, half of its
        own median); latency = input CreateTime -> delivery acknowledged (pipehost:
        --stats; exactly once: the transaction committed). o.latency_rounds rounds
        interleaved, as latency_consume (one run's tail swings several-fold here: a single
        run once gave pipehost p99 4.6 s where the runs around it gave 0.3-0.7 s); the
        per-message Python runs the first round only (it never keeps up)."""
        runs = {c: [] for c in ROUTE_CONTENDERS}
        for rnd in range(self.o.latency_rounds):
            for c in ROUTE_CONTENDERS:
                if rnd > 0 and c.startswith("py-"):
                    continue
                r = eos_rate if c == "pipehost-eos" else rate
                runs[c].append(self.latency_route_once(c, r, rnd))
                log(f"  latency route {c} @ {r:,.0f}/s, round {rnd + 1}: {runs[c][-1]}")
        return {c: merge_latency_runs(x) for c, x in runs.items()}

    def latency_route_once(self, c, r, rnd):
        count = max(1, int(r * self.o.latency_seconds))  # datagen's count = 0 would never end
        topic = self.topic(f"l3-{c}-{rnd}")
        prefix = group = f"bench-{self.run_id}-lat-route-{c}-{rnd}"
        outputs = self.route_outputs(prefix)
        cmd, env = self.route_cmd(c, topic, group, prefix, live=True)
        out_f = open(os.path.join(self.tmp, "lat-out.txt"), "w+")
        err_f = open(os.path.join(self.tmp, "lat-err.txt"), "w+")
        contender = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **env}, stdout=out_f, stderr=err_f)
        time.sleep(6)  # group join and assignment of all 3 partitions
        self.route_preload(None, count, r, topic=topic)
        done = self.route_done(c == "pipehost-eos", topic, group, outputs, count)
        deadline = time.monotonic() + (20 if c == "py-per-message" else 60)
        caught_up = False
        while time.monotonic() < deadline and not caught_up:
            time.sleep(0.05)
            caught_up = done()
        res = {"stdout": stop_live(contender, out_f)}
        self.delete_topics([topic] + outputs + [f"{prefix}.processor.dead-letters"])
        return {"latency": self.route_latency(c, res), "caught_up": caught_up}

    # ------------------------------------------------------------ pipelines 4 and 5 (trades, food)
    def produce_lines(self, topic, lines, partitions=3):
        """Writes an iterable of JSON texts (no key) to topic with confluent-kafka, before
        any timed window, round-robin over its partitions (librdkafka's sticky partitioner
        puts keyless records on one partition per linger window: a small preload on a fast
        machine landed 19,999 of 20,000 trades on one partition); checks the high
        watermarks add up."""
        p = confluent_kafka.Producer({"bootstrap.servers": self.brokers, "linger.ms": 20,
                                      "batch.num.messages": 10000, "queue.buffering.max.messages": 500000,
                                      "queue.buffering.max.kbytes": 262144, "enable.idempotence": True})
        n = 0
        for line in lines:
            while True:
                try:
                    p.produce(topic, line, partition=n % partitions)
                    break
                except BufferError:
                    p.poll(0.05)
            n += 1
            if n % 10000 == 0:
                p.poll(0)
        if p.flush(120):
            raise RuntimeError(f"preloading {topic}: records still queued after 120 s")
        got = sum(self.end_offsets([topic]).values())
        if got != n:
            raise RuntimeError(f"preloading {topic}: {got} records on the topic, not {n}")
        return n

    def wait_group_done(self, group, topic, ends):
        """A done() for launch: the group has committed every input partition to its end
        (checked at most every 100 ms), then the destination's own test."""
        last = [0.0]

        def check(destination_full):
            now = time.monotonic()
            if now - last[0] < 0.1:
                return False
            last[0] = now
            try:
                return self.committed_to_end(group, topic, ends, attempts=1) and destination_full()
            except Exception:  # noqa: BLE001  (a transient admin or database error: ask again)
                return False
        return check

    # ------------------------------------------------------------ pipeline 4 (trades)
    def pg_connect(self, dbname=None):
        import psycopg
        url = self.env["DATABASE_URL"]
        if dbname:
            url = url.rsplit("/", 1)[0] + "/" + dbname
        return psycopg.connect(url, autocommit=True)

    def trades_setup(self):
        """The bench's own database (pipehost_bench, next to the tests' one) with an empty
        trades table from configs/sql/trades.sql."""
        with self.pg_connect() as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'pipehost_bench'").fetchone():
                c.execute("CREATE DATABASE pipehost_bench")
        self.bench_db_url = self.env["DATABASE_URL"].rsplit("/", 1)[0] + "/pipehost_bench"
        self.pg = self.pg_connect("pipehost_bench")
        self.pg.execute("DROP TABLE IF EXISTS trades, pipehost_offsets, baseline_offsets")
        self.pg.execute(open(os.path.join(ROOT, "configs", "sql", "trades.sql")).read())
        self.versions["PostgreSQL"] = self.pg.execute("SHOW server_version").fetchone()[0]

    def trades_reset(self):
        self.pg.execute("TRUNCATE trades")
        for t in ("pipehost_offsets", "baseline_offsets"):
            if self.pg.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]:
                self.pg.execute(f"TRUNCATE {t}")

    def trades_preload(self, name, count, connect=False):
        """count trades (3 partitions, no key) with unique (id, version), and for Kafka
        Connect the same trades in its JSON-with-schema envelope on a second topic."""
        t = self.topic(name)
        t0 = time.monotonic()
        self.produce_lines(t, (trade_json(i) for i in range(count)))
        tc = None
        if connect:
            tc = self.topic(name + "-connect")
            self.produce_lines(tc, (CONNECT_ENVELOPE % trade_json(i) for i in range(count)))
        log(f"preloaded {t}{' and ' + tc if tc else ''}: {count:,} trades in {time.monotonic() - t0:.1f}s")
        return t, tc

    def trades_count(self):
        return self.pg.execute("SELECT count(*) FROM trades").fetchone()[0]

    def trades_check(self, count):
        """The table holds count rows, and sampled ones hold their trade's fields."""
        problems = []
        got = self.trades_count()
        if got != count:
            problems.append(f"{got} rows in trades, not {count}")
        rng = random.Random(count)
        for i in sorted({0, count - 1, *(rng.randrange(count) for _ in range(30))}):
            want = trade_fields(i)
            row = self.pg.execute("SELECT counter_party, book_id, expired, matures_at, created_at FROM trades "
                                  "WHERE id = %s AND version = %s", (want["id"], want["version"])).fetchone()
            if row is None:
                problems.append(f"no row for {want['id']} version {want['version']}")
                continue
            ok = (row[0], row[1], row[2]) == (want["counter_party"], want["book"], want["expired"])
            for got_ts, ns in ((row[3], want["matures_ns"]), (row[4], want["created_ns"])):
                micros = (got_ts - EPOCH) // datetime.timedelta(microseconds=1)
                ok = ok and abs(micros * 1000 - ns) <= 1000  # PostgreSQL keeps microseconds
            if not ok:
                problems.append(f"{want['id']}/{want['version']}: {row}")
        return problems

    def connect_setup(self):
        """Kafka Connect's worker classpath and the Debezium JDBC plugin folder from Maven
        Central (bench/connect/*.xml), once: cached under ~/.cache/pipehost/bench-connect/
        by the poms' hash. Returns None (and the reason in self.connect_problem) when it
        cannot be had."""
        poms = [os.path.join(ROOT, "bench", "connect", f) for f in ("runtime-pom.xml", "plugin-pom.xml")]
        h = hashlib.sha256(b"".join(open(f, "rb").read() for f in poms) +
                           " ".join(CONNECT_PLUGIN_EXCLUDES).encode()).hexdigest()[:16]
        cache = os.path.join(os.path.expanduser("~"), ".cache", "pipehost", "bench-connect", h)
        cp_file, plugins = os.path.join(cache, "runtime-classpath.txt"), os.path.join(cache, "plugins")
        if not (os.path.exists(cp_file) and os.path.isdir(os.path.join(plugins, "debezium-jdbc"))):
            if not shutil.which("mvn"):
                self.connect_problem = "mvn not found (scripts/install-deps installs maven)"
                return None
            log("resolving Kafka Connect and the Debezium JDBC sink with Maven (once)")
            os.makedirs(cache, exist_ok=True)
            mlog = os.path.join(self.tmp, "connect-maven.log")
            with open(mlog, "w") as f:
                r1 = subprocess.run(["mvn", "-B", "-f", poms[0], "dependency:build-classpath",
                                     f"-Dmdep.outputFile={cp_file}.tmp"], stdout=f, stderr=subprocess.STDOUT)
                r2 = subprocess.run(["mvn", "-B", "-f", poms[1], "dependency:copy-dependencies",
                                     f"-DoutputDirectory={plugins}/debezium-jdbc.tmp", "-DincludeScope=runtime",
                                     *CONNECT_PLUGIN_EXCLUDES],
                                    stdout=f, stderr=subprocess.STDOUT)
            if r1.returncode or r2.returncode:
                self.connect_problem = f"Maven could not resolve Kafka Connect or the connector (log: {mlog})"
                return None
            os.replace(cp_file + ".tmp", cp_file)
            shutil.rmtree(os.path.join(plugins, "debezium-jdbc"), ignore_errors=True)
            os.replace(os.path.join(plugins, "debezium-jdbc.tmp"), os.path.join(plugins, "debezium-jdbc"))
        self.versions["Kafka Connect"] = re.search(r"connect-runtime-([^/]+)\.jar", open(cp_file).read()).group(1)
        self.versions["Debezium JDBC sink"] = next(
            (f[len("debezium-connector-jdbc-"):-4] for f in os.listdir(os.path.join(plugins, "debezium-jdbc"))
             if f.startswith("debezium-connector-jdbc-")), "?")
        return {"classpath": open(cp_file).read().strip(), "plugins": plugins}

    def benthos_setup(self):
        """Benthos (bench/benthos: the stock CLI with the Kafka, Redis, Confluent and pure
        components) built with Go from the Go module proxy, once: cached under
        ~/.cache/pipehost/bench-benthos/ by the sources' hash. Returns the binary's path, or
        None (and the reason in self.benthos_problem)."""
        src = os.path.join(ROOT, "bench", "benthos")
        files = [os.path.join(src, f) for f in ("go.mod", "go.sum", "main.go")]
        h = hashlib.sha256(b"".join(open(f, "rb").read() for f in files)).hexdigest()[:16]
        binary = os.path.join(os.path.expanduser("~"), ".cache", "pipehost", "bench-benthos", h, "benthos")
        version = re.search(r"github.com/benthosdev/benthos/v4 (v\S+)", open(files[0]).read()).group(1)
        if not os.path.exists(binary):
            go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
            if not go:
                self.benthos_problem = "no Go toolchain (go) on PATH"
                return None
            log(f"building Benthos {version} with Go (once; a few minutes)")
            os.makedirs(os.path.dirname(binary), exist_ok=True)
            blog = os.path.join(self.tmp, "benthos-build.log")
            with open(blog, "w") as f:
                r = subprocess.run([go, "build", "-trimpath", "-o", binary + ".tmp", "."], cwd=src,
                                   stdout=f, stderr=subprocess.STDOUT)
            if r.returncode:
                self.benthos_problem = f"go build failed (log: {blog})"
                return None
            os.replace(binary + ".tmp", binary)
        self.versions["Benthos"] = version
        return binary

    def connect_cmd(self, topic, name, live=False):
        """Kafka Connect standalone: the worker (JsonConverter with schemas, offsets flushed
        every second) and the Debezium JDBC sink (upsert on (id, version) from the record
        value, book renamed to book_id with ReplaceField, 3 tasks)."""
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        with socket.socket() as s:  # a free port for the worker's REST listener
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        host_port = re.match(r"postgresql://[^@]*@([^/]+)/", self.env["DATABASE_URL"]).group(1)
        worker = {"bootstrap.servers": self.brokers,
                  "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                  "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                  "value.converter.schemas.enable": "true",
                  "offset.storage.file.filename": os.path.join(d, "connect.offsets"),
                  "offset.flush.interval.ms": "1000",
                  "plugin.path": self.connect["plugins"],
                  "listeners": f"http://127.0.0.1:{port}"}
        connector = {"name": name, "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
                     "tasks.max": "3", "topics": topic,
                     "connection.url": f"jdbc:postgresql://{host_port}/pipehost_bench",
                     "connection.username": "postgres", "connection.password": "",
                     "insert.mode": "upsert", "primary.key.mode": "record_value",
                     "primary.key.fields": "id,version", "schema.evolution": "none",
                     "collection.name.format": "trades", "use.time.zone": "UTC",
                     "transforms": "rename",
                     "transforms.rename.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
                     "transforms.rename.renames": "book:book_id"}
        for fname, props in (("worker.properties", worker), ("connector.properties", connector)):
            with open(os.path.join(d, fname), "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in props.items())
        with open(os.path.join(d, "log4j2.properties"), "w") as f:
            f.write("status = error\nappender.err.type = Console\nappender.err.name = STDERR\n"
                    "appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n"
                    "appender.err.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = WARN\n"
                    "rootLogger.appenderRef.err.ref = STDERR\n")
        # connect-standalone.sh's heap and kafka-run-class.sh's JVM options
        return ["java", "-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={d}/log4j2.properties",
                "-cp", self.connect["classpath"], "org.apache.kafka.connect.cli.ConnectStandalone",
                os.path.join(d, "worker.properties"), os.path.join(d, "connector.properties")], {}

    def trades_cmd(self, who, topic, group, live=False):
        stats = os.path.join(self.tmp, "stats.json")
        if who == "pipehost":
            if os.path.exists(stats):
                os.unlink(stats)
            cmd = [os.path.join(BIN, "pipehost"), "run", "bench/configs/trades.toml", "--no-progress",
                   "--stats", stats]
            if live:
                cmd += ["--set", "pipeline.consumer.source.stop_at_end=false"]
            return cmd, {"BENCH_TOPIC": topic, "BENCH_GROUP": group, "BENCH_DLQ": self.dlq,
                         "DATABASE_URL": self.bench_db_url}
        if who == "baseline":
            return ([os.path.join(BIN, "trades_baseline"), "--brokers", self.brokers, "--topic", topic,
                     "--group", group, "--pg", self.bench_db_url, "--threads", "3", "--batch", "512",
                     "--stop-at-end", "0" if live else "1"], {})
        return ([PY, "bench/python/trades_per_message.py", "--brokers", self.brokers, "--topic", topic,
                 "--group", group, "--pg", self.bench_db_url, "--live", "1" if live else "0"], {})

    def trades_phase(self, big, small):
        o = self.o
        contenders = [c for c in TRADES_CONTENDERS if c != "connect" or self.connect]

        def one(c):
            topic, count = small if c == "py-per-message" else big
            if c == "connect":
                topic = self.trades_connect_topic
            self.trades_reset()
            tag = f"{c}-{uuid.uuid4().hex[:4]}"
            name = f"bench-{self.run_id}-trades-{tag}"
            group = f"connect-{name}" if c == "connect" else name
            if c == "connect":
                cmd, env = self.connect_cmd(topic, name)
            else:
                cmd, env = self.trades_cmd(c, topic, group)
            ends = self.end_offsets([topic])
            check = self.wait_group_done(group, topic, ends)
            res = self.launch(cmd, env, done=lambda: check(lambda: self.trades_count() >= count),
                              timeout=o.timeout, stop_on_done=c == "connect")
            res["records"] = count
            problems = self.trades_check(count)
            if not self.committed_to_end(group, topic, ends):
                problems.append("the group did not commit every input partition to its end")
            if c in ("pipehost", "baseline"):
                table = "pipehost_offsets" if c == "pipehost" else "baseline_offsets"
                stored = {}
                if self.pg.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
                    stored = dict(self.pg.execute(f"SELECT partition, next_offset FROM {table} WHERE topic = %s",
                                                  (topic,)).fetchall())
                # An empty partition has nothing to store a position for (as food's check).
                if {p: v for p, v in stored.items() if v} != {p: v for (_, p), v in ends.items() if v > 0}:
                    problems.append(f"positions in {table}: {stored}, not the ends {ends}")
            if c == "pipehost":
                acked = self.pipehost_records(res, "consumer")
                if acked != count:
                    problems.append(f"pipehost acknowledged {acked} records, not {count}")
            if problems:
                res["ok"] = False
                kept = os.path.join(self.tmp, f"trades-{tag}.stderr")
                with open(kept, "w") as f:
                    f.write(res["stderr"])
                log(f"  {c}: wrong result: {problems[:3]} (its log: {kept})")
            if c in ("baseline", "py-per-message"):
                self.latency_of(c, res, "trades")  # the baseline's settings for RESULTS.md
            return res

        log("pipeline 4 (trades): throughput")
        return self.throughput(contenders, one, o.rounds + 1)

    # ------------------------------------------------------------ pipeline 5 (food)
    def food_setup(self):
        """An emptied copy of the seed's database (configs/data/food-seed.sqlite)."""
        self.food_template = os.path.join(self.tmp, "food-empty.sqlite")
        shutil.copyfile(os.path.join(ROOT, "configs", "data", "food-seed.sqlite"), self.food_template)
        c = sqlite3.connect(self.food_template)
        c.execute("DELETE FROM aggregated")
        c.commit()
        c.execute("VACUUM")
        c.close()
        self.versions["SQLite (Python)"] = sqlite3.sqlite_version

    def food_preload(self, name, count):
        """count {"food": "<name>"} events (3 partitions, no key); returns the topic and
        the expected count per food."""
        names = food_names()
        rng = random.Random(3)
        picks = [names[rng.randrange(len(names))] for _ in range(count)]
        t = self.topic(name)
        t0 = time.monotonic()
        self.produce_lines(t, (f'{{"food": "{f}"}}' for f in picks))
        expected = {}
        for f in picks:
            expected[f] = expected.get(f, 0) + 1
        log(f"preloaded {t}: {count:,} food events in {time.monotonic() - t0:.1f}s")
        return t, expected

    def food_db_total(self, path):
        c = sqlite3.connect(path, timeout=30)
        try:
            return c.execute("SELECT coalesce(sum(count), 0) FROM aggregated").fetchone()[0]
        finally:
            c.close()

    def food_cmd(self, who, topic, group, db, live=False):
        stats = os.path.join(self.tmp, "stats.json")
        if who == "pipehost":
            if os.path.exists(stats):
                os.unlink(stats)
            cmd = [os.path.join(BIN, "pipehost"), "run", "bench/configs/food.toml", "--no-progress",
                   "--stats", stats]
            if live:
                cmd += ["--set", "pipeline.counter.source.stop_at_end=false"]
            return cmd, {"BENCH_TOPIC": topic, "BENCH_GROUP": group, "BENCH_DLQ": self.dlq, "FOOD_DB": db}
        if who == "baseline":
            return ([os.path.join(BIN, "food_baseline"), "--brokers", self.brokers, "--topic", topic,
                     "--group", group, "--db", db, "--batch", "512", "--stop-at-end", "0" if live else "1"], {})
        return ([PY, "bench/python/food_per_message.py", "--brokers", self.brokers, "--topic", topic,
                 "--group", group, "--db", db, "--live", "1" if live else "0"], {})

    def food_phase(self, big, small):
        o = self.o

        def one(c):
            topic, expected = small if c == "py-per-message" else big
            count = sum(expected.values())
            tag = f"{c}-{uuid.uuid4().hex[:4]}"
            group = f"bench-{self.run_id}-food-{tag}"
            db = os.path.join(self.tmp, f"food-{tag}.sqlite")
            shutil.copyfile(self.food_template, db)
            cmd, env = self.food_cmd(c, topic, group, db)
            ends = self.end_offsets([topic])
            check = self.wait_group_done(group, topic, ends)
            res = self.launch(cmd, env, done=lambda: check(lambda: self.food_db_total(db) >= count),
                              timeout=o.timeout)
            res["records"] = count
            committed = self.committed_to_end(group, topic, ends)
            c_db = sqlite3.connect(db)
            got = dict(c_db.execute("SELECT food, count FROM aggregated").fetchall())
            positions = {}
            if c in ("pipehost", "baseline"):
                table = "pipehost_offsets" if c == "pipehost" else "baseline_offsets"
                try:
                    positions = dict(c_db.execute(f"SELECT partition, next_offset FROM {table} WHERE topic = ?",
                                                  (topic,)).fetchall())
                except sqlite3.OperationalError:  # no such table: the contender wrote nothing
                    pass
            c_db.close()
            problems = [] if committed else ["the group did not commit every input partition to its end"]
            if got != expected:
                diff = {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected)
                        if got.get(k) != expected.get(k)}
                problems.append(f"{len(diff)} foods differ (got, expected): {dict(list(diff.items())[:3])}")
            if c in ("pipehost", "baseline") and positions != {p: v for (_, p), v in ends.items() if v > 0}:
                problems.append(f"positions {positions}, not the ends {ends}")
            if c == "pipehost":
                acked = self.pipehost_records(res, "counter")
                if acked is None:
                    problems.append("pipehost wrote no --stats")
            if problems:
                res["ok"] = False
                kept = os.path.join(self.tmp, f"food-{tag}.stderr")
                with open(kept, "w") as f:
                    f.write(res["stderr"])
                log(f"  {c}: wrong result: {problems[:3]} (its log: {kept})")
            else:
                if c in ("baseline", "py-per-message"):
                    self.latency_of(c, res, "food")  # the baseline's settings for RESULTS.md
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(db + suffix):
                        os.unlink(db + suffix)
            return res

        log("pipeline 5 (food): throughput")
        return self.throughput(FOOD_CONTENDERS, one, o.rounds + 1)

    # ------------------------------------------------------------ latency, pipelines 4 and 5
    def latency_sink(self, kind, rate):
        """Each contender (not Kafka Connect: it reports no per-record latency) runs live on
        a fresh topic; pipehost's datagen (bench/configs/feed.toml, pipeline trades or food)
        feeds it at rate; latency = input CreateTime -> the destination's commit (pipehost:
        --stats; the baseline: its COMMIT; Python: the INSERT's reply / the SQLite commit).
        The feed's trades are datagen's (random ids: some (id, version) repeat, and the
        first write wins)."""
        out = {}
        for c in (TRADES_CONTENDERS if kind == "trades" else FOOD_CONTENDERS):
            if c == "connect":
                continue
            count = max(1, int(rate * self.o.latency_seconds))
            topic = self.topic(f"l-{kind}-{c}")
            group = f"bench-{self.run_id}-lat-{kind}-{c}"
            if kind == "trades":
                self.trades_reset()
                cmd, env = self.trades_cmd(c, topic, group, live=True)
            else:
                db = os.path.join(self.tmp, f"food-lat-{c}.sqlite")
                shutil.copyfile(self.food_template, db)
                cmd, env = self.food_cmd(c, topic, group, db, live=True)
            out_f = open(os.path.join(self.tmp, "lat-out.txt"), "w+")
            err_f = open(os.path.join(self.tmp, "lat-err.txt"), "w+")
            contender = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **env}, stdout=out_f, stderr=err_f)
            time.sleep(6)  # group join and assignment of all 3 partitions
            self.run_cmd([os.path.join(BIN, "pipehost"), "run", "bench/configs/feed.toml", "--no-progress",
                          "--pipeline", kind, "--set", f"pipeline.{kind}.source.count={count}",
                          "--set", f"pipeline.{kind}.source.rate={float(rate)}"], {"BENCH_TOPIC": topic})
            ends = self.end_offsets([topic])
            deadline = time.monotonic() + (20 if c == "py-per-message" else 60)
            caught_up = False
            while time.monotonic() < deadline and not caught_up:
                time.sleep(0.1)
                try:
                    caught_up = self.committed_to_end(group, topic, ends, attempts=1)
                except Exception:  # noqa: BLE001
                    pass
            res = {"stdout": stop_live(contender, out_f)}
            pipeline = {"trades": "consumer", "food": "counter"}[kind]
            out[c] = {"latency": self.latency_of(c, res, pipeline if c == "pipehost" else kind),
                      "caught_up": caught_up}
            log(f"  latency {kind} {c} @ {rate:,.0f}/s: {out[c]}")
            self.delete_topics([topic])
        return out


# The consume config's `properties` (bench/configs/consume.toml), given to the baseline too.
CONSUME_PROPS = "queued.min.messages=100000,queued.max.messages.kbytes=16384"
CONTENDERS = ["baseline", "py-per-message", "py-batched", "pipehost"]
LABEL = {"baseline": "(a) C++ librdkafka baseline", "py-per-message": "(b) Python per-message (seed style)",
         "py-batched": "(b) Python batched", "pipehost": "(c) pipehost",
         "pipehost-eos": "(c) pipehost exactly once (batch_size = 4096)",
         "pipehost-projected": "(c) pipehost, projected decode (fields = [account_number, amount])"}
# Pipeline 2 also runs pipehost decoding only the fields the sink uses, as the shipped
# configs do; the plain row decodes every field, like the baseline, for a fair comparison.
# (e) is Benthos, the open-source core of Redpanda Connect (--skip-benthos leaves it out).
CONSUME_CONTENDERS = CONTENDERS + ["pipehost-projected", "benthos"]
# Pipeline 1 also runs pipehost with `tasks = 2`: a user's answer when one thread
# (generate, encode, hand to librdkafka) is the limit; the like-for-like row is tasks = 1,
# as the baseline's one generating thread.
PRODUCE_CONTENDERS = CONTENDERS + ["pipehost-2tasks"]
LABEL["pipehost-2tasks"] = "(c) pipehost, tasks = 2 (two producing threads; the baseline has one)"
LABEL["benthos"] = "(e) Benthos (Redpanda Connect's core), batch folded per account"
# Pipeline 3 has no batched Python contender (the seed's processor is per message); the
# exactly-once row is pipehost with exactly_once = true on its kafka sink.
ROUTE_CONTENDERS = ["baseline", "py-per-message", "pipehost", "pipehost-eos"]
ROUTE_DESTINATIONS = ("finance", "marketing", "logistics")
# Pipeline 4 (trades, seed 002): (d) is Kafka Connect with the Debezium JDBC sink, when
# Maven Central gives its jars (--skip-connect leaves it out). Pipeline 5 (food, seed 003).
TRADES_CONTENDERS = ["baseline", "py-per-message", "pipehost", "connect"]
FOOD_CONTENDERS = ["baseline", "py-per-message", "pipehost"]
LABEL["connect"] = "(d) Kafka Connect + Debezium JDBC sink"
# What the connector's plugin folder leaves to the worker: the Connect API and Kafka
# clients (the worker's own), slf4j, and Jackson's core jars. With its own jackson-databind
# the plugin's Hibernate fails at start: ObjectMapper.findAndRegisterModules() finds the
# worker's jackson-module-jakarta-xmlbind-annotations through ServiceLoader ("Module ... not
# a subtype").
CONNECT_PLUGIN_EXCLUDES = ("-DexcludeGroupIds=org.apache.kafka,org.slf4j",
                           "-DexcludeArtifactIds=jackson-core,jackson-databind,jackson-annotations")

# ---------------------------------------------------------------- the trades of pipeline 4
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
TRADES_START = 1672531200  # 2023-01-01T00:00:00Z, as datagen's trades
YEAR = 365 * 86400


def trade_fields(i):
    """Trade i: id T<i // 4>, version i % 4 (so (id, version) is unique), the other fields
    drawn from a hash of i as datagen's trades draw them; timestamps in nanoseconds."""
    h = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=24).digest()
    a, b, c = (int.from_bytes(h[k:k + 8], "little") for k in (0, 8, 16))
    created = (TRADES_START + a % (2 * YEAR)) * 1_000_000_000 + b % 1_000_000_000
    matures = created + (c % (10 * YEAR)) * 1_000_000_000 + (a >> 32) % 1_000_000_000
    return {"id": f"T{i // 4}", "version": i % 4, "counter_party": f"CP-{(b >> 32) % 100}",
            "book": f"B{(c >> 32) % 100}", "expired": bool((c >> 40) & 1),
            "matures_ns": matures, "created_ns": created}


def rfc3339_ns(ns):
    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


def trade_json(i):
    t = trade_fields(i)
    return (f'{{"id":"{t["id"]}","version":{t["version"]},"counter_party":"{t["counter_party"]}",'
            f'"book":"{t["book"]}","expired":{"true" if t["expired"] else "false"},'
            f'"matures_at":"{rfc3339_ns(t["matures_ns"])}","created_at":"{rfc3339_ns(t["created_ns"])}"}}')


# Kafka Connect's JsonConverter envelope (schemas.enable = true) around a trade: the JDBC
# sink needs the schema. The timestamps are strings named io.debezium.time.ZonedTimestamp,
# which the Debezium sink binds as timestamptz.
_TS = '"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp"'
CONNECT_ENVELOPE = ('{"schema":{"type":"struct","name":"trade","optional":false,"fields":['
                    '{"field":"id","type":"string","optional":false},'
                    '{"field":"version","type":"int64","optional":false},'
                    '{"field":"counter_party","type":"string","optional":false},'
                    '{"field":"book","type":"string","optional":false},'
                    '{"field":"expired","type":"boolean","optional":false},'
                    '{"field":"matures_at",' + _TS + '},{"field":"created_at",' + _TS + '}]},'
                    '"payload":%s}')


def food_names():
    """Seed 003's foods as datagen sends them (plugins/datagen/foods.cpp; spaces as '-')."""
    text = open(os.path.join(ROOT, "plugins", "datagen", "foods.cpp")).read()
    body = text[text.index("kNames = {"):text.index("};", text.index("kNames = {"))]
    return re.findall(r'"([^"]+)"', body)


def summarize(results):
    s = {}
    for c, runs in results.items():
        good = [r for r in runs if r["ok"]]
        if not good:
            s[c] = None
            continue
        rates = [r["records"] / r["seconds"] for r in good]
        per_m = lambda key: statistics.median(r.get(key, 0.0) / r["records"] * 1e6 for r in good)  # noqa: E731
        s[c] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": len(good),
                "failed": len(runs) - len(good), "records": good[0]["records"],
                "cpu": per_m("cpu"), "broker_cpu": per_m("broker_cpu"), "redis_cpu": per_m("redis_cpu"),
                "pg_cpu": per_m("pg_cpu"),
                "exit_median": statistics.median(r["records"] / r["exit_seconds"] for r in good),
                "peak_rss": max(r["peak_rss_mb"] for r in good),
                "steady_rss": statistics.median(r["steady_rss_mb"] for r in good if r["steady_rss_mb"])}
    return s


def stop_live(proc, out_f):
    """Stops a live contender (SIGTERM, then kill after 60 s) and returns what it printed."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out_f.seek(0)
    return out_f.read()


class MachineBusy:
    """The share of the machine's CPU time that was not idle from construction to
    fraction() (/proc/stat's first line: every core, every process, the kernel's too)."""

    def __init__(self):
        self.start = self.sample()

    @staticmethod
    def sample():
        ticks = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # idle + iowait

    def fraction(self):
        total, idle = self.sample()
        spent = total - self.start[0]
        return 1 - (idle - self.start[1]) / spent if spent > 0 else None


def merge_latency_runs(runs):
    """Median of each percentile over the runs that reported one; p99_runs keeps every run's
    p99, busy_runs the machine's busy share while the feeder ran (consume)."""
    caught_up = all(r["caught_up"] for r in runs)
    busy = [r["busy"] for r in runs if r.get("busy") is not None]
    lats = [r["latency"] for r in runs if r.get("latency")]
    if not lats:
        return {"latency": None, "caught_up": caught_up}
    merged = {k: statistics.median(l[k] for l in lats) for k in ("p50", "p99", "p999")}
    merged["p99_runs"] = [l["p99"] for l in lats]
    out = {"latency": merged, "caught_up": caught_up}
    if busy:
        out["busy_runs"] = busy
    return out


def busy_range(latency):
    """'94-97 %': the machine's busy share over a latency phase's runs of the baseline and
    pipehost (a Python consumer that cannot keep up burns what is left)."""
    shares = [b for c in ("baseline", "pipehost") for b in (latency.get(c) or {}).get("busy_runs", [])]
    if not shares:
        return None
    return f"{100 * min(shares):.0f}–{100 * max(shares):.0f} %"


def fmt_lat(lat):
    if not lat or not lat.get("latency"):
        return "n/a"
    lt = lat["latency"]
    extra = ""
    if lat.get("caught_up") is False:
        extra = " (did not keep up)"
    if lat.get("achieved") is not None:
        extra = f" @ {lat['achieved']:,.0f}/s"
    if len(lt.get("p99_runs", [])) > 1:
        extra = f" (median of {len(lt['p99_runs'])} runs; p99 {min(lt['p99_runs']):g}–{max(lt['p99_runs']):g})" + extra
    return f"{lt['p50']:g} / {lt['p99']:g} / {lt['p999']:g}{extra}"


def table(name, summary, latency, redis_relevant, contenders=CONTENDERS, service="redis", missing=None):
    """service: the third CPU column (redis, or postgres: summary key pg_cpu); missing:
    contender -> why it did not run."""
    rows = [f"### {name}", "",
            "| contender | records/run | records/s median | spread (min–max) | CPU s per M records: contender "
            f"| broker | {service} | peak RSS MB | steady RSS MB | latency ms p50 / p99 / p99.9 (half load) |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for c in contenders:
        s = summary.get(c)
        if missing and c in missing:
            rows.append(f"| {LABEL[c]} | not run: {missing[c]} | | | | | | | | |")
            continue
        if not s:
            rows.append(f"| {LABEL[c]} | failed | | | | | | | | |")
            continue
        key = "pg_cpu" if service == "postgres" else "redis_cpu"
        redis_cpu = f"{s[key]:.2f}" if redis_relevant else "–"
        rows.append(f"| {LABEL[c]} | {s['records']:,} | {s['median']:,.0f} | {s['min']:,.0f}–{s['max']:,.0f} "
                    f"| {s['cpu']:.2f} | {s['broker_cpu']:.2f} | {redis_cpu} | {s['peak_rss']:.1f} "
                    f"| {s['steady_rss']:.1f} | {fmt_lat((latency or {}).get(c))} |")
    return rows


def ratios(summary, contenders=("baseline", "py-per-message", "py-batched")):
    p = summary.get("pipehost")
    out = {}
    for c in contenders:
        if p and summary.get(c):
            out[c] = p["median"] / summary[c]["median"]
    return out


def targets(s, key):
    """The targets of pipelines 4 and 5, reported (not asserted)."""
    p = s.get("pipehost")
    if not p:
        return ["Targets: pipehost failed."]
    out = []
    for c, want in (("baseline", 0.9), ("py-per-message", 20.0)):
        if s.get(c):
            r = p["median"] / s[c]["median"]
            out.append(f"pipehost/{LABEL[c]} {r:.2f}× (target ≥ {want:g}×: {'met' if r >= want else 'NOT met'})")
    k = s.get("connect")
    if key == "trades" and k:
        cpu_p = p["cpu"] + p["broker_cpu"] + p["pg_cpu"]
        cpu_k = k["cpu"] + k["broker_cpu"] + k["pg_cpu"]
        out.append(f"vs {LABEL['connect']}: rows/s {p['median'] / k['median']:.2f}×, contender CPU s per M rows "
                   f"{p['cpu']:.2f} vs {k['cpu']:.2f} (with broker and postgres {cpu_p:.2f} vs {cpu_k:.2f}), "
                   f"peak RSS {p['peak_rss']:.0f} vs {k['peak_rss']:.0f} MB (target: ahead on all three: "
                   f"{'met' if p['median'] > k['median'] and p['cpu'] < k['cpu'] and p['peak_rss'] < k['peak_rss'] else 'NOT met'})")
    return ["Targets (reported, not asserted): " + "; ".join(out) + "."]


def versions(bench):
    v = {}
    v["librdkafka (pipehost, baseline)"] = bench.baseline_settings.get("librdkafka", "?")
    v["confluent-kafka (Python)"] = f"{confluent_kafka.version()[0]} (bundled librdkafka {confluent_kafka.libversion()[0]})"
    v["Redis"] = bench.redis.info("server").get("redis_version")
    try:
        kafka_log = os.path.join(bench.env.get("PIPEHOST_SERVICES_DIR", "/tmp/pipehost-services"), "logs", "kafka.log")
        m = re.findall(r"Kafka version: (\S+)", open(kafka_log, errors="replace").read())
        v["Kafka"] = m[-1] if m else "?"
    except OSError:
        v["Kafka"] = "?"
    v["Python"] = platform.python_version()
    import google.protobuf
    v["protobuf (Python)"] = google.protobuf.__version__
    if bench.ran & {"trades", "food"}:
        v["simdjson (pipehost, baseline)"] = subprocess.run(["pkg-config", "--modversion", "simdjson"],
                                                            capture_output=True, text=True).stdout.strip() or "?"
    if "trades" in bench.ran:
        v["libpqxx (pipehost)"] = subprocess.run(["pkg-config", "--modversion", "libpqxx"],
                                                 capture_output=True, text=True).stdout.strip() or "?"
        v["libpq (baseline)"] = subprocess.run(["pkg-config", "--modversion", "libpq"],
                                               capture_output=True, text=True).stdout.strip() or "?"
        import psycopg
        v["psycopg (Python)"] = f"{psycopg.__version__} ({psycopg.pq.__impl__})"
    if "food" in bench.ran:
        v["SQLite (pipehost, baseline)"] = subprocess.run(["pkg-config", "--modversion", "sqlite3"],
                                                          capture_output=True, text=True).stdout.strip() or "?"
    v.update(bench.versions)
    if bench.ran_route:
        v["Avro C (pipehost, baseline)"] = subprocess.run(["pkg-config", "--modversion", "avro-c"],
                                                          capture_output=True, text=True).stdout.strip() or "?"
        import fastavro
        v["fastavro (Python)"] = fastavro.__version__
    v["pipehost"] = subprocess.run([os.path.join(BIN, "pipehost"), "--version"], capture_output=True,
                                   text=True).stdout.strip()
    v["git commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()
    return v


def git_commit():
    return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def keep_earlier_sections(o, raw, summary, latency, results, baseline_settings, sections):
    """With --only, the pipelines this run left out keep their figures from the results file
    it replaces (summary, latency, runs, the baseline's settings and the run they came from);
    so does the instructions count when this run did not measure it. Results files written
    before sections were recorded take their provenance from the RESULTS.md beside them."""
    kept = {"sections": {}, "instructions": None}
    if o.only is None or not os.path.exists(raw):
        return kept
    old = json.load(open(raw))
    fallback = {}
    try:
        header = open(os.path.join(os.path.dirname(raw), "RESULTS.md")).read(4000)
        date = re.search(r"^Date: (\S+)", header, re.M)
        command = re.search(r"^Command: `([^`]*)`", header, re.M)
        commit = re.search(r"git commit (\w+)", header)
        fallback = {"date": date and date.group(1), "command": command and command.group(1),
                    "commit": commit and commit.group(1)}
        for key, text in re.findall(r"^- (\w+): `(\{.*\})`$", header, re.M):
            baseline_settings.setdefault(key, json.loads(text))
    except (OSError, ValueError):
        pass
    for key, s in (old.get("summary") or {}).items():
        if key in summary:
            continue
        summary[key] = s
        for name, value in (old.get("latency") or {}).items():
            if name == key or name.startswith(key + "_"):
                latency[name] = value
        results[key] = (old.get("runs") or {}).get(key, {})
        if key in (old.get("baseline_settings") or {}):
            baseline_settings[key] = old["baseline_settings"][key]
        sections[key] = (old.get("sections") or {}).get(key) or fallback
        kept["sections"][key] = sections[key]
    kept["instructions"] = old.get("instructions")
    return kept


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores ({model}), {mem / 1024 / 1024:.1f} GiB memory, {platform.platform()}"


PIPELINES = ("produce", "consume", "route", "trades", "food")


def pipelines_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PIPELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown pipeline(s) {', '.join(unknown) or '(none)'}: "
                                         f"choose from {', '.join(PIPELINES)}")
    return names


def optional_contender(missing, key, skipped, flag, setup, problem, what):
    """A contender built or fetched on first use (Benthos, Kafka Connect): what setup()
    returns, or None with the reason in missing[key]."""
    if skipped:
        missing[key] = flag
        return None
    got = setup()
    if not got:
        missing[key] = problem()
        log(f"{what}: {missing[key]}")
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=2_000_000, help="records per run (preloaded topic size)")
    ap.add_argument("--pm-records", type=int, default=200_000,
                    help="records for the per-message Python contenders (a prefix: the same generator)")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds (one more warm-up round is discarded)")
    ap.add_argument("--latency-seconds", type=float, default=20)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--latency-rounds", type=int, default=5,
                    help="consume and route: live latency runs per contender, interleaved (the table gives their medians)")
    ap.add_argument("--only", type=pipelines_list, default=None, metavar="PIPELINE[,PIPELINE...]",
                    help="run only these of: " + ", ".join(PIPELINES))
    ap.add_argument("--food-pm-records", type=int, default=5_000,
                    help="food: records for the per-message Python contender (at most --pm-records); it "
                         "commits SQLite per message, ~100 records/s on this machine's disk")
    ap.add_argument("--skip-connect", action="store_true", help="trades: leave out Kafka Connect (contender d)")
    ap.add_argument("--skip-benthos", action="store_true", help="consume: leave out Benthos (contender e)")
    ap.add_argument("--route-tasks", type=int, default=3,
                    help="route: pipehost's tasks and the baseline's threads (consumer-group members)")
    ap.add_argument("--timeout", type=float, default=300, help="per run")
    ap.add_argument("--skip-instructions", action="store_true",
                    help="leave out the instructions-per-record count (bench/instructions.py, callgrind)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--strict", action="store_true",
                    help="run a failed measured run once more and exit 1 if it fails again (CI's slice: the bench cannot rot)")
    o = ap.parse_args()
    b = Bench(o)
    started = time.monotonic()
    log(f"run {b.run_id}: {o.records:,} records, {o.rounds} rounds + 1 warm-up; temp {b.tmp}")
    os.makedirs(os.path.dirname(os.path.abspath(o.out)), exist_ok=True)
    b.delete_old_bench_topics()
    def wanted(*names):
        return o.only is None or any(n in o.only for n in names)

    if wanted("produce", "consume"):
        b.learn_schema_text()
    results, latency, summary, missing = {}, {}, {}, {}

    if wanted("produce"):
        results["produce"] = b.produce_phase()
        summary["produce"] = summarize(results["produce"])
        if not o.skip_latency and summary["produce"].get("pipehost"):
            rate = summary["produce"]["pipehost"]["median"] / 2
            log(f"pipeline 1 (produce): latency at {rate:,.0f}/s")
            latency["produce"] = b.latency_produce(rate)
            latency["produce_rate"] = rate

    if wanted("consume"):
        b.benthos = optional_contender(missing, "benthos", o.skip_benthos, "--skip-benthos", b.benthos_setup,
                                       lambda: b.benthos_problem, "pipeline 2 (consume): no Benthos")
        big = b.preload("preload", o.records, os.path.join(b.tmp, "sums.json"))
        small = b.preload("preload-pm", o.pm_records, os.path.join(b.tmp, "sums-pm.json"))
        results["consume"] = b.consume_phase((*big, o.records), (*small, o.pm_records))
        summary["consume"] = summarize(results["consume"])
        if not o.skip_latency and summary["consume"].get("pipehost"):
            rate = summary["consume"]["pipehost"]["median"] / 2
            log(f"pipeline 2 (consume): latency at {rate:,.0f}/s")
            latency["consume"] = b.latency_consume(rate)
            latency["consume_rate"] = rate
            # Half pipehost's median is past the baseline's own median, and feeding it takes
            # the feeder and the broker most of this machine's two cores (bench/NOTES.md):
            # the pair is also driven at half the baseline's median, where neither
            # contender nor the machine is saturated.
            low = (summary["consume"].get("baseline") or {}).get("median", rate * 2) / 2
            if low < rate * 0.8:
                log(f"pipeline 2 (consume): latency at {low:,.0f}/s (half the baseline's median)")
                latency["consume_low"] = b.latency_consume(low, ["baseline", "pipehost"])
                latency["consume_low_rate"] = low
        b.delete_topics([big[0], small[0]])

    if wanted("route"):
        b.ran_route = True
        big = b.route_preload("route-preload", o.records)
        small = b.route_preload("route-preload-pm", o.pm_records)
        results["route"] = b.route_phase((big, o.records), (small, o.pm_records))
        summary["route"] = summarize(results["route"])
        if not o.skip_latency and o.latency_seconds > 0 and summary["route"].get("pipehost"):
            rate = summary["route"]["pipehost"]["median"] / 2
            eos = summary["route"].get("pipehost-eos")
            eos_rate = eos["median"] / 2 if eos else rate
            log(f"pipeline 3 (route): latency at {rate:,.0f}/s (exactly once: {eos_rate:,.0f}/s)")
            latency["route"] = b.latency_route(rate, eos_rate)
            latency["route_rate"] = rate
            latency["route_eos_rate"] = eos_rate
        b.delete_topics([big, small])

    if wanted("trades"):
        b.ran.add("trades")
        b.trades_setup()
        b.connect = optional_contender(missing, "connect", o.skip_connect, "--skip-connect", b.connect_setup,
                                       lambda: b.connect_problem, "pipeline 4 (trades): no Kafka Connect")
        b.dlq = b.topic("trades-dlq", 1)
        big, b.trades_connect_topic = b.trades_preload("trades-preload", o.records, connect=bool(b.connect))
        small, _ = b.trades_preload("trades-preload-pm", o.pm_records)
        results["trades"] = b.trades_phase((big, o.records), (small, o.pm_records))
        summary["trades"] = summarize(results["trades"])
        if not o.skip_latency and o.latency_seconds > 0 and summary["trades"].get("pipehost"):
            rate = summary["trades"]["pipehost"]["median"] / 2
            log(f"pipeline 4 (trades): latency at {rate:,.0f}/s")
            latency["trades"] = b.latency_sink("trades", rate)
            latency["trades_rate"] = rate
        b.delete_topics([t for t in (big, small, b.trades_connect_topic, b.dlq) if t])

    if wanted("food"):
        b.ran.add("food")
        b.food_setup()
        b.dlq = b.topic("food-dlq", 1)
        pm = min(o.pm_records, o.food_pm_records)
        big = b.food_preload("food-preload", o.records)
        small = b.food_preload("food-preload-pm", pm)
        results["food"] = b.food_phase(big, small)
        summary["food"] = summarize(results["food"])
        if not o.skip_latency and o.latency_seconds > 0 and summary["food"].get("pipehost"):
            rate = summary["food"]["pipehost"]["median"] / 2
            log(f"pipeline 5 (food): latency at {rate:,.0f}/s")
            latency["food"] = b.latency_sink("food", rate)
            latency["food_rate"] = rate
        b.delete_topics([big[0], small[0], b.dlq])

    counted = None
    if not o.skip_instructions and wanted("produce", "consume"):
        log("instructions per record (callgrind, bench/instructions.py)")
        counted = instructions.measure(log=log)

    # This run's sections, and (with --only) the other pipelines' sections kept from the
    # results file this run replaces, each with the run it came from.
    raw = os.path.join(os.path.dirname(o.out), "results.json")
    this_run = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": "bench/run " + " ".join(sys.argv[1:]), "commit": git_commit()}
    sections = {key: dict(this_run) for key in summary}
    kept = keep_earlier_sections(o, raw, summary, latency, results, b.baseline_settings, sections)
    if counted is None and kept.get("instructions"):
        counted = kept["instructions"]

    lines = ["# pipehost benchmark results", "",
             f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}  ",
             f"Machine: {machine()}  ",
             f"Command: `bench/run {' '.join(sys.argv[1:])}` ({(time.monotonic() - started) / 60:.1f} min)  ",
             f"Records per run: {o.records:,} (per-message Python: the first {o.pm_records:,} of the same "
             f"generator); {o.rounds} measured rounds, contenders interleaved, one warm-up round discarded."
             + (f" Route: {o.route_tasks} consumer-group member(s) for pipehost and the baseline."
                if wanted("route") else "")
             + (f" Food: the per-message Python contender runs on {min(o.pm_records, o.food_pm_records):,} "
                f"records (it commits SQLite per message)." if wanted("food") else ""), ""]
    lines += ["Versions: " + "; ".join(f"{k} {v}" for k, v in versions(b).items()), ""]
    lines += ["Baseline librdkafka settings (printed by the baseline programs; pipehost's kafka plugin defaults):", ""]
    for k in ("produce", "consume", "route", "trades", "food"):
        if k in b.baseline_settings:
            lines.append(f"- {k}: `{json.dumps(b.baseline_settings[k])}`")
    lines.append("")
    for key, title, redis_relevant in (("produce", "Pipeline 1: datagen → protobuf → Kafka (3 partitions)", False),
                                       ("consume", "Pipeline 2: Kafka (3 partitions, group) → protobuf decode → "
                                                   "redis_sum (exactly once)", True),
                                       ("route", "Pipeline 3: Kafka (3 partitions, group) → Avro decode → route by "
                                                 "destination → Avro encode → Kafka (3 topics × 3 partitions), "
                                                 "at least once (and exactly once)", False),
                                       ("trades", "Pipeline 4 (trades, seed 002): Kafka (3 partitions, group) → JSON "
                                                  "decode → checks → PostgreSQL table trades, first write wins, "
                                                  "exactly once (rows/s = records/s: every (id, version) is unique)",
                                        True),
                                       ("food", "Pipeline 5 (food, seed 003): Kafka (3 partitions, group) → JSON "
                                                "decode → count per food → SQLite aggregated(food, count), exactly "
                                                "once", False)):
        if key not in summary:
            continue
        route = key == "route"
        contenders = {"produce": PRODUCE_CONTENDERS, "consume": CONSUME_CONTENDERS, "route": ROUTE_CONTENDERS,
                      "trades": TRADES_CONTENDERS, "food": FOOD_CONTENDERS}.get(key, CONTENDERS)
        section = table(title, summary[key], latency.get(key), redis_relevant, contenders,
                        service="postgres" if key == "trades" else "redis",
                        missing=missing if key in ("trades", "consume") else None)
        if key in kept["sections"]:  # under the title
            k = kept["sections"][key]
            section[2:2] = [f"*Kept from an earlier run ({k.get('date', '?')}, `{k.get('command', '?')}`, "
                            f"commit {k.get('commit', '?')}): this run (`--only`) did not include it.*", ""]
        lines += section
        r = ratios(summary[key], [c for c in contenders
                                  if c not in ("pipehost", "pipehost-eos", "pipehost-projected", "pipehost-2tasks")])
        lines.append("")
        if f"{key}_rate" in latency:
            busy = busy_range(latency.get(key) or {})
            lines.append(f"Latency driven at {latency[key + '_rate']:,.0f} records/s (half of pipehost's median) "
                         f"for {o.latency_seconds:.0f} s" +
                         (f"; pipehost exactly once at {latency['route_eos_rate']:,.0f} records/s (half of its own "
                          f"median)" if route and "route_eos_rate" in latency else "") +
                         (f"; the machine was {busy} busy while the feeder ran, with the baseline or pipehost "
                          f"consuming (/proc/stat, all processes)"
                          if busy else "") + ".  ")
        if f"{key}_low_rate" in latency:
            low = latency.get(key + "_low") or {}
            busy = busy_range(low)
            lines.append(f"Latency at {latency[key + '_low_rate']:,.0f} records/s (half of the baseline's median"
                         + (f"; the machine {busy} busy" if busy else "") + "), ms p50 / p99 / p99.9: "
                         + "; ".join(f"{LABEL[c]} {fmt_lat(low.get(c))}" for c in ("baseline", "pipehost")) + ".  ")
        lines.append("Ratios (pipehost median / contender median): " +
                     ", ".join(f"pipehost/{LABEL[c]} = {v:.2f}×" for c, v in r.items()))
        dups = ({c: [run.get("duplicates", 0) for run in results[key][c]] for c in ROUTE_CONTENDERS}
                if route else {})
        if any(any(d) for d in dups.values()):
            lines.append("")
            lines.append("Duplicates on the output topics (at least once; measured rounds, a member that read "
                         "records before the group settled): " +
                         ", ".join(f"{LABEL[c]} {sum(d):,} in {sum(1 for x in d if x)} of {len(d)} runs"
                                   for c, d in dups.items() if c != "pipehost-eos" and any(d)) + ".")
        if key in ("trades", "food"):
            lines += [""] + targets(summary[key], key)
        projected = summary[key].get("pipehost-projected")
        if projected and summary[key].get("pipehost"):
            lines.append("")
            lines.append(f"Projected / all fields (pipehost medians): "
                         f"{projected['median'] / summary[key]['pipehost']['median']:.2f}× records/s, "
                         f"{projected['cpu'] / summary[key]['pipehost']['cpu']:.2f}× CPU per record.")
        two = summary[key].get("pipehost-2tasks")
        if two and summary[key].get("pipehost"):
            py = summary[key].get("py-per-message")
            lines.append("")
            lines.append(f"tasks = 2 / tasks = 1 (pipehost medians): "
                         f"{two['median'] / summary[key]['pipehost']['median']:.2f}× records/s, "
                         f"{two['cpu'] / summary[key]['pipehost']['cpu']:.2f}× CPU per record"
                         + (f"; tasks = 2 / (b) per-message Python = {two['median'] / py['median']:.2f}×" if py else "")
                         + (f"; tasks = 2 / (a) baseline = {two['median'] / summary[key]['baseline']['median']:.2f}×"
                            if summary[key].get("baseline") else "") + ".")
        alo, eos = summary[key].get("pipehost"), summary[key].get("pipehost-eos")
        if route and alo and eos:
            lines.append("")
            lines.append(f"Exactly once / at least once (pipehost medians): {eos['median'] / alo['median']:.2f}× "
                         f"(the clock stops when every event is on the output topics and every input partition is "
                         f"committed; exactly once: committed, i.e. in a committed transaction); "
                         f"{eos['exit_median'] / alo['exit_median']:.2f}× with both clocks at process exit.")
        lines.append("")
    if counted:
        if counted is kept.get("instructions"):
            lines += ["*Instructions per record: kept from an earlier run (this run did not count them).*", ""]
        lines += instructions.markdown(counted) + [""]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(raw, "w") as f:
        json.dump({"summary": summary, "latency": latency, "instructions": counted, "sections": sections,
                   "baseline_settings": b.baseline_settings,
                   "runs": {k: {c: [{x: y for x, y in r.items() if x not in ("stdout", "stderr")} for r in rs]
                                for c, rs in v.items()} for k, v in results.items()}}, f, indent=1)
    notes = os.path.join(os.path.dirname(o.out), "NOTES.md")
    with open(o.out, "w") as f:
        f.write(text)
        if os.path.exists(notes):
            f.write("\n" + open(notes).read())
    log(f"wrote {o.out} and {raw}")
    if os.path.abspath(o.out) == os.path.join(ROOT, "bench", "RESULTS.md"):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "readme_table.py"), "--results", raw],
                       check=True)
    failed = [f"{key}/{c}: {sum(not r['ok'] for r in runs)} of {len(runs)}"
              for key, per in results.items() if key not in kept["sections"]
              for c, runs in per.items() if any(not r["ok"] for r in runs)]
    if failed:
        log("failed runs (see the log above): " + "; ".join(failed))
        if o.strict:
            sys.exit(1)


if __name__ == "__main__":
    main()
