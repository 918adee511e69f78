"""common/grpc against an independent gRPC client (grpcio).

Client classes come from schemas/proto/optimizer.proto through the `pb`
fixture of conftest.py; the server is tests/integration/grpc_echo_server, a C program
serving canned OptimizerAgent answers through common/grpc with protobuf-c.
It needs no stack. The binary comes from GRPC_ECHO_SERVER_BIN, else
build-asan/, else build/.
"""
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from conftest import free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVICE = "/neuralhive.optimizer.v1.OptimizerAgent/"


def echo_server_binary():
    candidates = [os.environ.get("GRPC_ECHO_SERVER_BIN")] + [
        os.path.join(ROOT, d, "tests", "integration", "grpc_echo_server") for d in ("build-asan", "build")
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail("grpc_echo_server is not built (scripts/build.sh) and GRPC_ECHO_SERVER_BIN is not set")


@pytest.fixture(scope="module")
def server():
    """The echo server on a free port; stopped with SIGTERM, which must exit 0."""
    port = free_port()
    proc = subprocess.Popen([echo_server_binary(), str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 15
    while True:
        assert proc.poll() is None, f"grpc_echo_server exited early: {proc.stdout.read().decode()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline, "grpc_echo_server did not listen within 15 s"
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("grpc_echo_server did not exit within 15 s of SIGTERM")
    output = proc.stdout.read().decode(errors="replace")
    assert code == 0, f"grpc_echo_server exited with {code} on SIGTERM:\n{output}"


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture
def stub(pb, channel):
    return pb[1].OptimizerAgentStub(channel)


def test_health_check(pb, stub):
    resp = stub.HealthCheck(pb[0].HealthCheckRequest(service="optimizer"), timeout=5)
    assert resp.status == pb[0].HealthCheckResponse.SERVING
    assert dict(resp.checks) == {"grpc": True}


def test_get_optimization_status(pb, stub):
    resp = stub.GetOptimizationStatus(pb[0].GetOptimizationStatusRequest(optimization_id="opt-77"), timeout=5)
    info = resp.optimization
    assert info.optimization_id == "opt-77"
    assert info.optimization_type == "WEIGHT_RECALIBRATION"
    assert info.status == "APPLIED"
    assert info.q_value == pytest.approx(0.42)
    assert info.created_at_ms == 1_700_000_000_000
    assert info.rationale.startswith("p95 latency")


def test_get_optimization_status_not_found(pb, stub):
    with pytest.raises(grpc.RpcError) as e:
        stub.GetOptimizationStatus(pb[0].GetOptimizationStatusRequest(optimization_id="missing"), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == "optimization missing not found"


def test_list_optimizations_streams_limit_messages(pb, stub):
    req = pb[0].ListOptimizationsRequest(component="orchestrator", limit=7, offset=3)
    got = list(stub.ListOptimizations(req, timeout=5))
    assert [i.optimization_id for i in got] == [f"opt-{n}" for n in range(3, 10)]
    assert all(i.component == "orchestrator" and i.status == "PROPOSED" for i in got)
    assert list(stub.ListOptimizations(pb[0].ListOptimizationsRequest(limit=0), timeout=5)) == []


def test_list_optimizations_many(pb, stub):
    """Enough data to go through HTTP/2 flow control several times."""
    got = list(stub.ListOptimizations(pb[0].ListOptimizationsRequest(limit=1000), timeout=10))
    assert len(got) == 1000
    assert got[-1].optimization_id == "opt-999"


def test_rollback_optimization(pb, stub):
    resp = stub.RollbackOptimization(
        pb[0].RollbackOptimizationRequest(optimization_id="opt-5", reason="p99 regression"), timeout=5)
    assert resp.optimization.optimization_id == "opt-5"
    assert resp.optimization.status == "ROLLED_BACK"
    assert resp.optimization.rationale == "p99 regression"
    with pytest.raises(grpc.RpcError) as e:
        stub.RollbackOptimization(pb[0].RollbackOptimizationRequest(optimization_id=""), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "optimization_id is required"


def test_trigger_optimization(pb, stub):
    req = pb[0].TriggerOptimizationRequest(
        component="consensus-engine", problem="latency", metric="latency_p95_ms",
        current_value=1500.0, baseline_value=300.0, priority="HIGH", description="p95 is 5x the baseline")
    resp = stub.TriggerOptimization(req, timeout=5)
    assert resp.optimization.component == "consensus-engine"
    assert resp.optimization.status == "PROPOSED"
    assert resp.optimization.rationale == "p95 is 5x the baseline"
    with pytest.raises(grpc.RpcError) as e:
        stub.TriggerOptimization(pb[0].TriggerOptimizationRequest(component=""), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_statistics(pb, stub):
    resp = stub.GetStatistics(pb[0].GetStatisticsRequest(), timeout=5)
    assert resp.total == 10
    assert dict(resp.by_status) == {"APPLIED": 7, "ROLLED_BACK": 3}
    assert dict(resp.by_type) == {"WEIGHT_RECALIBRATION": 10}
    assert resp.success_rate == pytest.approx(0.7)
    assert resp.rollbacks == 3
    assert resp.q_table_size == 12
    assert resp.epsilon == pytest.approx(0.1)


def test_unknown_method_is_unimplemented(channel):
    call = channel.unary_unary(SERVICE + "NoSuchMethod",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "NoSuchMethod" in e.value.details()


def test_malformed_request_is_invalid_argument(channel):
    call = channel.unary_unary(SERVICE + "GetOptimizationStatus",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"\xff\xff\xff", timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_twenty_concurrent_calls(pb, stub):
    """20 calls in flight at once on one connection (HTTP/2 streams), a mix of
    unary and streaming, each answered with its own data."""
    msgs = pb[0]
    futures = [stub.GetOptimizationStatus.future(msgs.GetOptimizationStatusRequest(optimization_id=f"c-{i}"),
                                                 timeout=10) for i in range(15)]
    futures.append(stub.GetOptimizationStatus.future(
        msgs.GetOptimizationStatusRequest(optimization_id="missing"), timeout=10))
    ids = [f.result().optimization.optimization_id for f in futures[:15]]
    assert ids == [f"c-{i}" for i in range(15)]
    assert futures[15].code() == grpc.StatusCode.NOT_FOUND

    def stream(n):
        return len(list(stub.ListOptimizations(msgs.ListOptimizationsRequest(limit=n), timeout=10)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(stream, [10, 20, 30, 40]))
    assert counts == [10, 20, 30, 40]


def test_twenty_concurrent_connections(pb, server):
    """20 clients, each with its own channel (its own TCP connection)."""
    def one(i):
        with grpc.insecure_channel(server, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            stub = pb[1].OptimizerAgentStub(ch)
            resp = stub.GetOptimizationStatus(pb[0].GetOptimizationStatusRequest(optimization_id=f"k-{i}"),
                                              timeout=10)
            return resp.optimization.optimization_id

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert list(pool.map(one, range(20))) == [f"k-{i}" for i in range(20)]
