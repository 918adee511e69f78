"""Fixtures for integration tests against the real local stack (./hive stack up).

Every test gets its own topics, consumer group and MongoDB database, so tests
never see each other's records. The services under test are the real C
binaries; the clients here are independent implementations (confluent-kafka,
fastavro, pymongo, promtool).
"""
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pymongo
import pytest
import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017")
LOGS = os.path.join(ROOT, ".hive", "test-results", "service-logs")


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


@pytest.fixture
def topics(request):
    """Fresh telemetry/insight/dlq topics for one test."""
    tag = uuid.uuid4().hex[:10]
    t = {
        "telemetry": f"telemetry.aggregated.t{tag}",
        "insights": f"insights.generated.t{tag}",
        "approvals_requests": f"approvals.requests.t{tag}",
        "approvals_responses": f"approvals.responses.t{tag}",
        "experiments_requests": f"experiments.requests.t{tag}",
        "experiments_results": f"experiments.results.t{tag}",
        "commands": f"optimization.commands.t{tag}",
        "applied": f"optimization.applied.t{tag}",
        "tag": tag,
    }
    t["dlq"] = t["telemetry"] + ".dlq"
    consumed = ("telemetry", "insights", "approvals_responses", "experiments_results", "applied")
    names = [v for k, v in t.items() if k != "tag"] + [t[k] + ".dlq" for k in consumed if k != "telemetry"]
    create_topics(names)
    return t


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


@pytest.fixture
def optimizer(topics):
    """The optimizer wired to this test's topics, group and database (not started)."""
    binary = os.environ.get("OPTIMIZER_BIN", os.path.join(ROOT, "build", "optimizer", "optimizer"))
    db = "itest_" + topics["tag"]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KAFKA_TELEMETRY_TOPIC": topics["telemetry"],
        "KAFKA_INSIGHTS_TOPIC": topics["insights"],
        "KAFKA_APPROVALS_REQUESTS_TOPIC": topics["approvals_requests"],
        "KAFKA_APPROVALS_RESPONSES_TOPIC": topics["approvals_responses"],
        "KAFKA_EXPERIMENT_REQUESTS_TOPIC": topics["experiments_requests"],
        "KAFKA_EXPERIMENTS_TOPIC": topics["experiments_results"],
        "KAFKA_COMMANDS_TOPIC": topics["commands"],
        "KAFKA_OPTIMIZATION_TOPIC": topics["applied"],
        "KAFKA_CONSUMER_GROUP": "optimizer-" + topics["tag"],
        "KAFKA_TRANSACTIONAL_ID": "optimizer-" + topics["tag"],
        "MONGODB_URI": MONGODB_URI,
        "MONGODB_DATABASE": db,
        "HTTP_PORT": str(free_port()),
        "GRPC_PORT": str(free_port()),
        "LOG_LEVEL": "info",
    }
    svc = Service(binary, env, "optimizer-" + topics["tag"])
    yield svc
    code = svc.stop()
    pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(db)
    # A clean SIGTERM shutdown exits 0 (and, under ASan, with no leak report).
    if svc.starts and code is not None and code != -signal.SIGKILL:
        assert code == 0, f"optimizer exited with {code} on SIGTERM"


@pytest.fixture
def mongo():
    return pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """(optimizer_pb2, optimizer_pb2_grpc), the Python gRPC messages and client
    stubs generated once per session from the repository's .proto."""
    from grpc_tools import protoc

    proto_dir = os.path.join(ROOT, "schemas", "proto")
    out = tmp_path_factory.mktemp("grpc_stubs")
    rc = protoc.main(["grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
                      os.path.join(proto_dir, "optimizer.proto")])
    assert rc == 0, "grpc_tools.protoc failed on optimizer.proto"
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("optimizer_pb2"), importlib.import_module("optimizer_pb2_grpc")
    finally:
        sys.path.remove(str(out))
