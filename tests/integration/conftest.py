"""Fixtures for integration tests against the real local stack (./hive stack up).

Every test gets its own topics, consumer group and MongoDB database, so tests
never see each other's records. The services under test are the real C
binaries; the clients here are independent implementations (confluent-kafka,
fastavro, pymongo, promtool).
"""
import importlib
import os
import signal
import sys
import uuid

import pymongo
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The stack's clients and record builders live in scripts/ (shared with ./hive demo
# and ./hive bench); hive_avro is there too.
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from hive_client import (BOOTSTRAP, LOGS, MONGODB_URI, Service, create_topics, free_port,  # noqa: E402,F401
                         producer, read_committed)


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
        # A fixed seed: the policy's random draws are the same on every run.
        "POLICY_SEED": "1",
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
