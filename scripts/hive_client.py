"""Clients of the local stack and the services, shared by the Python tests
(tests/integration/conftest.py), ./hive demo and ./hive bench.

    free_port()                       a free TCP port on 127.0.0.1
    create_topics(names)              creates them and waits for their leaders
    producer()                        an idempotent confluent-kafka Producer
    read_committed(topic, expected)   the records of a topic, read_committed, from the start
    Service(binary, env, name)        one running instance of a C service binary
    telemetry(i, degraded)            TelemetryAggregated record i, healthy or degraded
    insight(component)                a CRITICAL latency Insight about `component`
"""
import os
import signal
import socket
import subprocess
import time
import uuid

import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017")
LOGS = os.path.join(ROOT, ".hive", "test-results", "service-logs")
WINDOW_MS = 60_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topics(names, partitions=3):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for name, fut in futures.items():
        fut.result(timeout=30)
    # Wait until the broker reports leaders for every partition.
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(timeout=10)
        if all(n in md.topics and len(md.topics[n].partitions) == partitions and
               all(p.leader >= 0 for p in md.topics[n].partitions.values()) for n in names):
            return
        time.sleep(0.2)
    raise AssertionError(f"topics {names} have no leaders after 30 s")


def producer():
    return Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 5})


def read_committed(topic, expected, timeout=120, settle=3.0):
    """Reads `topic` from the beginning with isolation.level=read_committed until
    `expected` records came (then waits `settle` more seconds for extras) or the
    timeout passes. Returns the list of Message objects."""
    c = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "reader-" + uuid.uuid4().hex,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    out = []
    deadline = time.time() + timeout
    settle_until = None
    try:
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m)
            if len(out) >= expected and settle_until is None:
                settle_until = time.time() + settle
            if settle_until is not None and time.time() >= settle_until:
                break
    finally:
        c.close()
    return out


class Service:
    """One running instance of a C service binary, configured by environment."""

    def __init__(self, binary, env, name):
        self.binary, self.env, self.name = binary, env, name
        self.port = int(env["HTTP_PORT"])
        self.proc = None
        self.starts = 0

    def start(self, wait_ready=True, timeout=60):
        os.makedirs(LOGS, exist_ok=True)
        self.starts += 1
        log = open(os.path.join(LOGS, f"{self.name}.{self.starts}.log"), "wb")
        env = dict(os.environ)
        env.update(self.env)
        self.proc = subprocess.Popen([self.binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait_ready:
            self.wait_ready(True, timeout)
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self):
        try:
            return requests.get(self.url("/ready"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, want=True, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before ready")
            if self.ready() == want:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} /ready did not become {want} within {timeout} s")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not exit within {timeout} s of SIGTERM")
        return self.proc.returncode if self.proc else None


def telemetry(i, degraded, service=None):
    """Record i: a healthy window, or one that breaks one of the seed's rules."""
    rec = {
        "schema_version": 1,
        "service": service or f"svc-{i % 7}",
        "window_start": 1_700_000_000_000 + i * WINDOW_MS,
        "window_end": 1_700_000_000_000 + (i + 1) * WINDOW_MS,
        "request_count": 1000,
        "error_count": 1,
        "error_rate": 0.001,
        "latency_p50_ms": 80.0,
        "latency_p95_ms": 300.0,
        "latency_p99_ms": 600.0,
        "slo_compliance": 0.999,
        "availability": 0.9999,
        "variant": None,
        "experiment_id": None,
        "metrics": {"cpu": 0.4},
    }
    if degraded:
        kind = i % 3
        if kind == 0:
            rec["latency_p95_ms"] = 1500.0
        elif kind == 1:
            rec["error_rate"], rec["error_count"] = 0.05, 50
        else:
            rec["slo_compliance"] = 0.97
    return rec


def insight(component, insight_id=None, priority="CRITICAL", problem="LATENCY"):
    return {
        "schema_version": 1,
        "insight_id": insight_id or "ins-" + uuid.uuid4().hex[:16],
        "source": "analyst-agents",
        "type": "DEGRADATION",
        "priority": priority,
        "component": component,
        "metric": "latency_p95_ms",
        "current_value": 1800.0,
        "baseline_value": 800.0,
        "description": "p95 latency above target",
        "timestamp": int(time.time() * 1000),
        "labels": {"problem": problem},
    }
