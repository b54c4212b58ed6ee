"""Shared helpers for the end-to-end tests: run pipehost, start a private redis-server,
compute reference totals independently of the pipeline under test."""
import collections
import contextlib
import decimal
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

PIPEHOST = os.environ.get("PIPEHOST_BIN", "build/bin/pipehost")
SOURCE_DIR = os.environ.get("PIPEHOST_SOURCE_DIR", os.getcwd())
BUILD_DIR = os.environ.get("PIPEHOST_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
TEST_PLUGIN_DIR = os.environ.get("PIPEHOST_TEST_PLUGIN_DIR", os.path.join(BUILD_DIR, "tests/plugins"))
CONFIGS = os.path.join(SOURCE_DIR, "configs")
# scripts/test --sanitize sets this: everything runs several times slower under ASan.
TIME_SCALE = float(os.environ.get("PIPEHOST_TEST_TIME_SCALE", "1"))


def pipehost(*args, timeout=120, env=None, check=None):
    """Runs pipehost to completion; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        result = subprocess.run([PIPEHOST, *args], capture_output=True, text=True,
                                timeout=timeout * TIME_SCALE, env=full_env)
    except subprocess.TimeoutExpired as e:
        def tail(data, n):
            text = data.decode(errors="replace") if isinstance(data, bytes) else (data or "")
            return text[-n:]
        raise AssertionError(f"pipehost {' '.join(args)} still running after {timeout * TIME_SCALE:.0f} s\n"
                             f"--- stdout\n{tail(e.stdout, 3000)}\n--- stderr\n{tail(e.stderr, 8000)}")
    if check is not None and result.returncode != check:
        raise AssertionError(f"pipehost {' '.join(args)} exited {result.returncode}, wanted {check}\n"
                             f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-5000:]}")
    return result


def start_pipehost(*args, env=None, stdout=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.Popen([PIPEHOST, *args], stdout=stdout or subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env)


def free_port():
    """A port free now, below Linux's ephemeral range (32768-60999): one bound with port 0
    was handed out again before pipehost bound it (to an embedded broker's listener or an
    outgoing connection), and the admin endpoint could not listen."""
    import random
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port between 20000 and 32000")


def write_config(text, name="config.toml"):
    directory = tempfile.mkdtemp(prefix="pipehost-e2e-")
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout * TIME_SCALE
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    """A private redis-server on a free port, durable (appendonly, fsync always) so a
    restart keeps its data."""

    def __init__(self, port=None, durable=True):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="pipehost-redis-")
        self.process = None
        # durable=False: no append-only file, snapshots only when asked (SAVE), so a test
        # can roll Redis back to an older snapshot.
        self.persistence = (["--appendonly", "yes", "--appendfsync", "always"] if durable
                            else ["--appendonly", "no"])

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", *self.persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG", 10, f"redis-server on port {self.port}")
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)

    def cli(self, *args):
        """Runs redis-cli (a third-party client) and returns its output, stripped."""
        r = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def reference_transactions(seed, count, accounts=20):
    """The generated transactions, written by datagen straight to a JSON-lines file:
    no Kafka, no codec, no sink under test."""
    out = os.path.join(tempfile.mkdtemp(prefix="pipehost-ref-"), "transactions.jsonl")
    config = write_config(f"""
[pipelines.reference]
source = {{ plugin = "datagen", count = {count}, accounts = {accounts}, seed = {seed} }}
sink = {{ plugin = "file", path = "{out}", format = "json" }}
""")
    pipehost("run", config, "--no-progress", check=0)
    with open(out) as f:
        return [json.loads(line) for line in f]


def datagen_records(kind, count, seed):
    """What datagen generates of `kind`, written straight to a JSON-lines file: no Kafka,
    no codec, no sink under test."""
    out = os.path.join(tempfile.mkdtemp(prefix="pipehost-ref-"), f"{kind}.jsonl")
    config = write_config(f"""
[pipelines.reference]
source = {{ plugin = "datagen", kind = "{kind}", count = {count}, seed = {seed} }}
sink = {{ plugin = "file", path = "{out}" }}
""")
    pipehost("run", config, "--no-progress", check=0)
    with open(out) as f:
        return [json.loads(line) for line in f]


def totals_of(transactions):
    """Exact per-account sums (Decimal, 2 places), computed here."""
    totals = collections.defaultdict(decimal.Decimal)
    for t in transactions:
        totals[t["account_number"]] += decimal.Decimal(repr(t["amount"])).quantize(decimal.Decimal("0.01"))
    return dict(totals)


def parse_tuples(stdout, section="records"):
    """The (account, sum) tuples the log sink printed, in order: for each record
    (section="records") or in the final summary (section="final")."""
    tuples = []
    lines = stdout.splitlines()
    marker = next((i for i, l in enumerate(lines) if l.startswith("final totals of pipeline")), len(lines))
    lines = lines[:marker] if section == "records" else lines[marker + 1:]
    for line in lines:
        line = line.strip()
        if line.startswith("(") and line.endswith(")") and ", " in line:
            account, total = line[1:-1].split(", ")
            tuples.append((account, decimal.Decimal(total)))
    return tuples


def require_env(name):
    """A variable scripts/services exports; the real-service tests cannot run without it."""
    value = os.environ.get(name)
    if not value:
        raise AssertionError(f"{name} is not set: run through scripts/test, or "
                             f'eval "$(scripts/services env)" first')
    return value


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"


def services(*args):
    """Runs scripts/services (start/stop a service for restart tests)."""
    r = subprocess.run([os.path.join(SOURCE_DIR, "scripts/services"), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"scripts/services {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def kcat_consume(brokers, topic, fmt="%k\\n", timeout=60):
    """Reads a whole topic with kcat (third-party client); returns its output lines."""
    r = subprocess.run(["kcat", "-b", brokers, "-C", "-t", topic, "-e", "-q", "-f", fmt],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def kcat_payloads(brokers, topic, timeout=60):
    """Every value of a topic as bytes, read with kcat (-f %R%s: a 4-byte big-endian
    length, then the value)."""
    r = subprocess.run(["kcat", "-b", brokers, "-C", "-t", topic, "-e", "-q", "-f", "%R%s"],
                       capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    data, values, at = r.stdout, [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        values.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return values


class Skipped(Exception):
    """Raised by a test that does not run in this setting, with the reason: reported as
    SKIP and counted apart, never as a pass."""


def run_tests(namespace):
    """Runs every test_* function in the module (or those named on the command line);
    prints a closing 'N passed, N failed, N skipped'. Nothing when the module is imported
    (by a campaign or a probe)."""
    if namespace.get("__name__") != "__main__":
        return
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    only = sys.argv[1:]
    unknown = sorted(set(only) - {n for n, _ in tests})
    if unknown:
        print(f"no such test: {', '.join(unknown)}", file=sys.stderr)
        sys.exit(2)
    passed = failed = skipped = 0
    for name, function in tests:
        if only and name not in only:
            continue
        started = time.monotonic()
        try:
            function()
            passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.1f}s)", flush=True)
        except Skipped as why:
            skipped += 1
            print(f"SKIP {name}: {why}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    sys.exit(1 if failed else 0)
