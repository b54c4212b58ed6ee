"""bench/run's harness: the two benchmark pipelines, four contenders each, on the real
services from scripts/services. See bench/README.md. Speed figures live here and in
bench/RESULTS.md only; no test asserts timings."""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
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
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
BIN = os.path.join(BUILD, "bin")
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
SEED = 42


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def services_env():
    out = subprocess.run([os.path.join(ROOT, "scripts/services"), "env", "kafka", "registry", "redis"],
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


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


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

    # ------------------------------------------------------------ services helpers
    def topic(self, name, partitions=3):
        t = f"bench-{self.run_id}-{name}"
        fs = self.admin.create_topics([NewTopic(t, partitions, 1)])
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
        b0, r0 = cpu_seconds(self.broker_pid), cpu_seconds(self.redis_pid)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=out, stderr=err)
        samples, t_end, b1, r1, status, usage = [], None, None, None, None, None
        next_sample = t0
        while True:
            now = time.monotonic()
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
                if t_end is None:
                    t_end, b1, r1 = now, cpu_seconds(self.broker_pid), cpu_seconds(self.redis_pid)
                break
            if now >= next_sample:
                kb = rss_kb(proc.pid)
                if kb:
                    samples.append(kb)
                next_sample += 0.1
            if t_end is None and done is not None and done():
                t_end, b1, r1 = time.monotonic(), cpu_seconds(self.broker_pid), cpu_seconds(self.redis_pid)
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
        if proc.returncode != 0:
            log(f"{os.path.basename(cmd[0])} {' '.join(cmd[1:3])} exited {proc.returncode}: {stderr[-1500:]}")
        ok = proc.returncode == 0 and b1 == b1 and r1 == r1  # nan: a service restarted meanwhile
        return {"seconds": t_end - t0, "cpu": usage.ru_utime + usage.ru_stime,
                "broker_cpu": b1 - b0, "redis_cpu": r1 - r0, "peak_rss_mb": usage.ru_maxrss / 1024,
                "steady_rss_mb": statistics.median(samples) / 1024 if samples else None,
                "stdout": stdout, "stderr": stderr, "rc": proc.returncode, "ok": ok}

    # ------------------------------------------------------------ contenders, pipeline 1
    def produce_cmd(self, who, topic, count, rate=0.0):
        stats = os.path.join(self.tmp, "stats.json")
        if who == "pipehost":
            return ([os.path.join(BIN, "pipehost"), "run", "bench/configs/produce.toml", "--no-progress",
                     "--stats", stats, "--set", f"pipeline.produce.source.count={count}",
                     "--set", f"pipeline.produce.source.rate={float(rate)}"], {"BENCH_TOPIC": topic})
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
        if who == "pipehost":
            cmd = [os.path.join(BIN, "pipehost"), "run", "bench/configs/consume.toml", "--no-progress",
                   "--stats", stats]
            if live:
                cmd += ["--set", "pipeline.consume.source.stop_at_end=false"]
            return cmd, {"BENCH_TOPIC": topic, "BENCH_GROUP": group}
        if who == "baseline":
            u = redis.connection.parse_url(self.redis_url)
            return ([os.path.join(BIN, "consume_baseline"), "--brokers", self.brokers, "--topic", topic,
                     "--group", group, "--redis-host", u.get("host", "127.0.0.1"),
                     "--redis-port", str(u.get("port", 6379)), "--redis-db", str(u.get("db", 0)),
                     "--threads", "3", "--batch", "512", "--props", CONSUME_PROPS, "--stop-at-end", "0" if live else "1"], {})
        script = "consume_batched.py" if who == "py-batched" else "consume_per_message.py"
        return ([PY, f"bench/python/{script}", "--brokers", self.brokers, "--topic", topic, "--group", group,
                 "--redis", self.redis_url, "--live", "1" if live else "0"], {})

    def latency_of(self, who, result, pipeline):
        if who == "pipehost":
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
                tag = "warm-up" if rnd == 0 else f"round {rnd}"
                log(f"  {tag} {c}: {res['records'] / res['seconds']:,.0f} rec/s in {res['seconds']:.2f}s "
                    f"(cpu {res['cpu']:.2f}s, broker {res['broker_cpu']:.2f}s, redis {res['redis_cpu']:.2f}s, "
                    f"peak {res['peak_rss_mb']:.0f} MB){'' if res['ok'] else ' FAILED'}")
                if rnd > 0:
                    results[c].append(res)
        return results

    def produce_phase(self):
        o = self.o
        counts = {"pipehost": o.records, "baseline": o.records, "py-batched": o.records,
                  "py-per-message": o.pm_records}

        def one(c):
            t = self.topic(f"p1-{c}-{uuid.uuid4().hex[:4]}")
            cmd, env = self.produce_cmd(c, t, counts[c])
            res = self.run_one(cmd, env)
            res["records"] = counts[c]
            self.latency_of(c, res, "produce")
            self.delete_topics([t])
            return res

        log("pipeline 1 (produce): throughput")
        return self.throughput(CONTENDERS, one, o.rounds + 1)

    def consume_phase(self, big, small):
        o = self.o

        def one(c):
            topic, expected, count = small if c == "py-per-message" else big
            self.redis.flushdb()
            group = f"bench-{self.run_id}-{c}-{uuid.uuid4().hex[:6]}"
            cmd, env = self.consume_cmd(c, topic, group)
            res = self.launch(cmd, env, done=lambda: self.redis_matches(expected), timeout=o.timeout)
            if not self.redis_matches(expected):
                res["ok"] = False
                log(f"  {c}: Redis does not hold the expected totals")
            res["records"] = count
            self.latency_of(c, res, "consume")
            return res

        log("pipeline 2 (consume): throughput")
        return self.throughput(CONTENDERS, one, o.rounds + 1)

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

    def latency_consume(self, rate):
        out = {}
        count = int(rate * self.o.latency_seconds)
        for c in CONTENDERS:
            t = self.topic(f"l2-{c}")
            group = f"bench-{self.run_id}-lat-{c}"
            self.redis.flushdb()
            cmd, env = self.consume_cmd(c, t, group, live=True)
            out_f = open(os.path.join(self.tmp, "lat-out.txt"), "w+")
            err_f = open(os.path.join(self.tmp, "lat-err.txt"), "w+")
            consumer = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **env}, stdout=out_f, stderr=err_f)
            time.sleep(6)  # group join and assignment of all 3 partitions
            sums = os.path.join(self.tmp, "lat-sums.json")
            self.run_cmd([os.path.join(BIN, "produce_baseline"), "--brokers", self.brokers, "--topic", t,
                          "--schema-id", str(self.register(t)), "--count", str(count), "--seed", "7",
                          "--rate", str(rate), "--sums", sums])
            expected = {k: int(v) for k, v in json.load(open(sums)).items()}
            deadline = time.monotonic() + (20 if c == "py-per-message" else 60)
            while time.monotonic() < deadline and not self.redis_matches(expected):
                time.sleep(0.1)
            caught_up = self.redis_matches(expected)
            consumer.send_signal(signal.SIGTERM)
            try:
                consumer.wait(60)
            except subprocess.TimeoutExpired:
                consumer.kill()
                consumer.wait()
            out_f.seek(0)
            res = {"stdout": out_f.read()}
            out[c] = {"latency": self.latency_of(c, res, "consume"), "caught_up": caught_up}
            log(f"  latency consume {c} @ {rate:,.0f}/s: {out[c]}")
            self.delete_topics([t])
        return out


# The consume config's `properties` (bench/configs/consume.toml), given to the baseline too.
CONSUME_PROPS = "queued.min.messages=100000,queued.max.messages.kbytes=16384"
CONTENDERS = ["baseline", "py-per-message", "py-batched", "pipehost"]
LABEL = {"baseline": "(a) C++ librdkafka baseline", "py-per-message": "(b) Python per-message (seed style)",
         "py-batched": "(b) Python batched", "pipehost": "(c) pipehost"}


def summarize(results):
    s = {}
    for c, runs in results.items():
        good = [r for r in runs if r["ok"]]
        if not good:
            s[c] = None
            continue
        rates = [r["records"] / r["seconds"] for r in good]
        per_m = lambda key: statistics.median(r[key] / r["records"] * 1e6 for r in good)  # noqa: E731
        s[c] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": len(good),
                "failed": len(runs) - len(good), "records": good[0]["records"],
                "cpu": per_m("cpu"), "broker_cpu": per_m("broker_cpu"), "redis_cpu": per_m("redis_cpu"),
                "peak_rss": max(r["peak_rss_mb"] for r in good),
                "steady_rss": statistics.median(r["steady_rss_mb"] for r in good if r["steady_rss_mb"])}
    return s


def fmt_lat(lat):
    if not lat or not lat.get("latency"):
        return "n/a"
    lt = lat["latency"]
    extra = ""
    if lat.get("caught_up") is False:
        extra = " (did not keep up)"
    if lat.get("achieved") is not None:
        extra = f" @ {lat['achieved']:,.0f}/s"
    return f"{lt['p50']} / {lt['p99']} / {lt['p999']}{extra}"


def table(name, summary, latency, redis_relevant):
    rows = [f"### {name}", "",
            "| contender | records/run | records/s median | spread (min–max) | CPU s per M records: contender "
            "| broker | redis | peak RSS MB | steady RSS MB | latency ms p50 / p99 / p99.9 (half load) |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for c in CONTENDERS:
        s = summary.get(c)
        if not s:
            rows.append(f"| {LABEL[c]} | failed | | | | | | | | |")
            continue
        redis_cpu = f"{s['redis_cpu']:.2f}" if redis_relevant else "–"
        rows.append(f"| {LABEL[c]} | {s['records']:,} | {s['median']:,.0f} | {s['min']:,.0f}–{s['max']:,.0f} "
                    f"| {s['cpu']:.2f} | {s['broker_cpu']:.2f} | {redis_cpu} | {s['peak_rss']:.1f} "
                    f"| {s['steady_rss']:.1f} | {fmt_lat((latency or {}).get(c))} |")
    return rows


def ratios(summary):
    p = summary.get("pipehost")
    out = {}
    for c in ("baseline", "py-per-message", "py-batched"):
        if p and summary.get(c):
            out[c] = p["median"] / summary[c]["median"]
    return out


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
    v["pipehost"] = subprocess.run([os.path.join(BIN, "pipehost"), "--version"], capture_output=True,
                                   text=True).stdout.strip()
    v["git commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()
    return v


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores ({model}), {mem / 1024 / 1024:.1f} GiB memory, {platform.platform()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=2_000_000, help="records per run (preloaded topic size)")
    ap.add_argument("--pm-records", type=int, default=200_000,
                    help="records for the per-message Python contenders (a prefix: the same generator)")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds (one more warm-up round is discarded)")
    ap.add_argument("--latency-seconds", type=float, default=20)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--only", choices=["produce", "consume"])
    ap.add_argument("--timeout", type=float, default=300, help="per run")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    o = ap.parse_args()
    b = Bench(o)
    started = time.monotonic()
    log(f"run {b.run_id}: {o.records:,} records, {o.rounds} rounds + 1 warm-up; temp {b.tmp}")
    b.delete_old_bench_topics()
    b.learn_schema_text()
    results, latency, summary = {}, {}, {}

    if o.only != "consume":
        results["produce"] = b.produce_phase()
        summary["produce"] = summarize(results["produce"])
        if not o.skip_latency and summary["produce"].get("pipehost"):
            rate = summary["produce"]["pipehost"]["median"] / 2
            log(f"pipeline 1 (produce): latency at {rate:,.0f}/s")
            latency["produce"] = b.latency_produce(rate)
            latency["produce_rate"] = rate

    if o.only != "produce":
        big = b.preload("preload", o.records, os.path.join(b.tmp, "sums.json"))
        small = b.preload("preload-pm", o.pm_records, os.path.join(b.tmp, "sums-pm.json"))
        results["consume"] = b.consume_phase((*big, o.records), (*small, o.pm_records))
        summary["consume"] = summarize(results["consume"])
        if not o.skip_latency and summary["consume"].get("pipehost"):
            rate = summary["consume"]["pipehost"]["median"] / 2
            log(f"pipeline 2 (consume): latency at {rate:,.0f}/s")
            latency["consume"] = b.latency_consume(rate)
            latency["consume_rate"] = rate
        b.delete_topics([big[0], small[0]])

    lines = ["# pipehost benchmark results", "",
             f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}  ",
             f"Machine: {machine()}  ",
             f"Command: `bench/run {' '.join(sys.argv[1:])}` ({(time.monotonic() - started) / 60:.1f} min)  ",
             f"Records per run: {o.records:,} (per-message Python: the first {o.pm_records:,} of the same "
             f"generator); {o.rounds} measured rounds, contenders interleaved, one warm-up round discarded.", ""]
    lines += ["Versions: " + "; ".join(f"{k} {v}" for k, v in versions(b).items()), ""]
    lines += ["Baseline librdkafka settings (printed by the baseline programs; pipehost's kafka plugin defaults):", ""]
    for k in ("produce", "consume"):
        if k in b.baseline_settings:
            lines.append(f"- {k}: `{json.dumps(b.baseline_settings[k])}`")
    lines.append("")
    for key, title, redis_relevant in (("produce", "Pipeline 1: datagen → protobuf → Kafka (3 partitions)", False),
                                       ("consume", "Pipeline 2: Kafka (3 partitions, group) → protobuf decode → "
                                                   "redis_sum (exactly once)", True)):
        if key not in summary:
            continue
        lines += table(title, summary[key], latency.get(key), redis_relevant)
        r = ratios(summary[key])
        lines.append("")
        if f"{key}_rate" in latency:
            lines.append(f"Latency driven at {latency[key + '_rate']:,.0f} records/s (half of pipehost's median) "
                         f"for {o.latency_seconds:.0f} s.  ")
        lines.append("Ratios (pipehost median / contender median): " +
                     ", ".join(f"pipehost/{LABEL[c]} = {v:.2f}×" for c, v in r.items()))
        lines.append("")
    text = "\n".join(lines) + "\n"
    print(text)
    raw = os.path.join(os.path.dirname(o.out), "results.json")
    with open(raw, "w") as f:
        json.dump({"summary": summary, "latency": latency,
                   "runs": {k: {c: [{x: y for x, y in r.items() if x not in ("stdout", "stderr")} for r in rs]
                                for c, rs in v.items()} for k, v in results.items()}}, f, indent=1)
    notes = os.path.join(os.path.dirname(o.out), "NOTES.md")
    with open(o.out, "w") as f:
        f.write(text)
        if os.path.exists(notes):
            f.write("\n" + open(notes).read())
    log(f"wrote {o.out} and {raw}")


if __name__ == "__main__":
    main()
