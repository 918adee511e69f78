"""The optimizer's gRPC API (service neuralhive.optimizer.v1.OptimizerAgent)
against the real optimizer binary and the local stack, with grpcio as the
client.

Client classes come from schemas/proto/optimizer.proto (the `pb` fixture of conftest.py)
at test time. Optimizations are seeded with pymongo into the test's own
database, in the shape optimizer/repo.c writes; TriggerOptimization goes the
whole way: an Insight on the test's insights topic, which the engine turns
into a hypothesis that GetOptimizationStatus then shows.
"""
import time
import uuid

import grpc
import pytest
from confluent_kafka import Consumer

from conftest import BOOTSTRAP, read_committed
import hive_avro

SERVICE = "/neuralhive.optimizer.v1.OptimizerAgent/"
STATUSES = ["PROPOSED", "AWAITING_APPROVAL", "EXPERIMENTING", "APPROVED", "APPLIED", "REJECTED",
            "ROLLED_BACK", "FAILED", "EXPIRED"]


@pytest.fixture
def channel(optimizer):
    """A channel to the running optimizer's GRPC_PORT (started ready)."""
    optimizer.start()
    with grpc.insecure_channel(f"127.0.0.1:{optimizer.env['GRPC_PORT']}") as ch:
        grpc.channel_ready_future(ch).result(timeout=15)
        yield ch


@pytest.fixture
def stub(pb, channel):
    return pb[1].OptimizerAgentStub(channel)


@pytest.fixture
def optimizations(optimizer, mongo):
    """The test database's optimizations collection."""
    return mongo[optimizer.env["MONGODB_DATABASE"]]["optimizations"]


def hypothesis(oid, **fields):
    """A document as optimizer/repo.c writes it; `fields` override the defaults."""
    doc = {
        "_id": oid,
        "insight_id": "ins-" + oid,
        "component": "consensus-engine",
        "problem": "LATENCY",
        "state_key": "consensus-engine|LATENCY|sev2|load1",
        "action": "slo_latency_relax_10",
        "type": "SLO_ADJUSTMENT",
        "policy": "qlearning",
        "status": "EXPERIMENTING",
        "q_value": 0.125,
        "confidence": 0.75,
        "risk": 0.2,
        "expected_improvement": 0.08,
        "propensity": 0.9,
        "experiment_id": "exp-" + oid[4:],
        "has_result": False,
        "improvement": 0.0,
        "reward": 0.0,
        "reason": "",
        "rationale": "p95 latency 1500 ms against a 300 ms baseline; relax the latency SLO by 10%.",
        "created_at_ms": 1_700_000_000_000,
        "updated_at_ms": 1_700_000_000_500,
    }
    doc.update(fields)
    return doc


def rpc_error(fn, *args, **kwargs):
    """The grpc.RpcError raised by fn(*args) (fails when none is)."""
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, timeout=10, **kwargs)
    return e.value


# ---- HealthCheck ----------------------------------------------------------------------------------------


def test_health_check_serving_with_named_checks(pb, stub):
    msgs = pb[0]
    resp = stub.HealthCheck(msgs.HealthCheckRequest(), timeout=10)
    assert resp.status == msgs.HealthCheckResponse.SERVING
    checks = dict(resp.checks)
    assert {"kafka", "mongodb", "redis"} <= set(checks), f"checks: {checks}"
    assert all(checks.values()), f"checks: {checks}"
    assert stub.HealthCheck(msgs.HealthCheckRequest(service="neuralhive.optimizer.v1.OptimizerAgent"),
                            timeout=10).status == msgs.HealthCheckResponse.SERVING
    err = rpc_error(stub.HealthCheck, msgs.HealthCheckRequest(service="no.such.Service"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


# ---- GetOptimizationStatus ------------------------------------------------------------------------------


def test_get_optimization_status_returns_every_field(pb, stub, optimizations):
    doc = hypothesis("opt-00000000000000a1", status="APPLIED", has_result=True, improvement=0.12, reward=0.1)
    optimizations.insert_one(doc)
    info = stub.GetOptimizationStatus(pb[0].GetOptimizationStatusRequest(optimization_id=doc["_id"]),
                                      timeout=10).optimization
    assert info.optimization_id == doc["_id"]
    assert info.optimization_type == "SLO_ADJUSTMENT"
    assert info.component == "consensus-engine"
    assert info.status == "APPLIED"
    assert info.action == doc["action"]
    assert info.state_key == doc["state_key"]
    assert info.insight_id == doc["insight_id"]
    assert info.q_value == pytest.approx(0.125)
    assert info.confidence == pytest.approx(0.75)
    assert info.risk == pytest.approx(0.2)
    assert info.expected_improvement == pytest.approx(0.08)
    assert info.propensity == pytest.approx(0.9)
    assert info.policy == "qlearning"
    assert info.experiment_id == doc["experiment_id"]
    assert info.reward == pytest.approx(0.1)
    assert info.created_at_ms == 1_700_000_000_000
    assert info.updated_at_ms == 1_700_000_000_500
    assert info.rationale == doc["rationale"]


def test_get_optimization_status_errors(pb, stub):
    msgs = pb[0]
    err = rpc_error(stub.GetOptimizationStatus,
                    msgs.GetOptimizationStatusRequest(optimization_id="opt-unknown"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "opt-unknown" in err.details()
    err = rpc_error(stub.GetOptimizationStatus, msgs.GetOptimizationStatusRequest(optimization_id=""))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "optimization_id" in err.details()


def test_malformed_request_is_invalid_argument(channel):
    call = channel.unary_unary(SERVICE + "GetOptimizationStatus",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"\xff\xff\xff", timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---- ListOptimizations ----------------------------------------------------------------------------------


def test_list_optimizations_streams_matching_items_newest_first(pb, stub, optimizations):
    msgs = pb[0]
    base = 1_700_000_000_000
    docs = [
        hypothesis("opt-00000000000000b1", created_at_ms=base + 1000, status="APPLIED"),
        hypothesis("opt-00000000000000b2", created_at_ms=base + 2000, status="EXPERIMENTING",
                   component="orchestrator"),
        hypothesis("opt-00000000000000b3", created_at_ms=base + 3000, status="REJECTED",
                   type="WEIGHT_RECALIBRATION", action="weight_safety_up_05"),
        hypothesis("opt-00000000000000b4", created_at_ms=base + 4000, status="APPLIED",
                   component="orchestrator"),
        hypothesis("opt-00000000000000b5", created_at_ms=base + 5000, status="AWAITING_APPROVAL", risk=0.7),
    ]
    optimizations.insert_many(docs)

    def ids(**filters):
        return [i.optimization_id for i in stub.ListOptimizations(msgs.ListOptimizationsRequest(**filters),
                                                                   timeout=10)]

    newest_first = [d["_id"] for d in reversed(docs)]
    got = list(stub.ListOptimizations(msgs.ListOptimizationsRequest(), timeout=10))
    assert [i.optimization_id for i in got] == newest_first
    assert got[0].status == "AWAITING_APPROVAL" and got[0].risk == pytest.approx(0.7)
    assert ids(status="APPLIED") == ["opt-00000000000000b4", "opt-00000000000000b1"]
    assert ids(component="orchestrator") == ["opt-00000000000000b4", "opt-00000000000000b2"]
    assert ids(optimization_type="WEIGHT_RECALIBRATION") == ["opt-00000000000000b3"]
    assert ids(component="orchestrator", status="EXPERIMENTING") == ["opt-00000000000000b2"]
    assert ids(limit=2, offset=1) == newest_first[1:3]
    assert ids(component="no-such-component") == []


def test_list_optimizations_bad_filters_are_invalid_argument(pb, stub):
    msgs = pb[0]
    for req, field in [(msgs.ListOptimizationsRequest(status="DONE"), "status"),
                       (msgs.ListOptimizationsRequest(status="applied"), "status"),
                       (msgs.ListOptimizationsRequest(optimization_type="MAGIC"), "optimization_type"),
                       (msgs.ListOptimizationsRequest(limit=-1), "limit"),
                       (msgs.ListOptimizationsRequest(offset=-5), "offset")]:
        with pytest.raises(grpc.RpcError) as e:
            list(stub.ListOptimizations(req, timeout=10))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req
        assert field in e.value.details(), e.value.details()


# ---- RollbackOptimization -------------------------------------------------------------------------------


def test_rollback_of_a_non_applied_optimization_is_failed_precondition(pb, stub, optimizations):
    msgs = pb[0]
    optimizations.insert_one(hypothesis("opt-00000000000000c1", status="EXPERIMENTING"))
    err = rpc_error(stub.RollbackOptimization,
                    msgs.RollbackOptimizationRequest(optimization_id="opt-00000000000000c1", reason="test"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "EXPERIMENTING" in err.details()
    err = rpc_error(stub.RollbackOptimization,
                    msgs.RollbackOptimizationRequest(optimization_id="opt-unknown"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(stub.RollbackOptimization, msgs.RollbackOptimizationRequest(optimization_id=""))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Nothing changed in the store.
    assert optimizations.find_one({"_id": "opt-00000000000000c1"})["status"] == "EXPERIMENTING"


def test_rollback_of_an_applied_optimization_publishes_the_command(pb, stub, topics, optimizations):
    oid = "opt-" + uuid.uuid4().hex[:16]
    optimizations.insert_one(hypothesis(oid, status="APPLIED", component="orchestrator"))
    req = pb[0].RollbackOptimizationRequest(optimization_id=oid, reason="p99 regression")
    resp = stub.RollbackOptimization(req, timeout=30)
    # ROLLED_BACK only once the applier confirms: the answer is the hypothesis as it stands.
    assert resp.optimization.optimization_id == oid
    assert resp.optimization.status == "APPLIED"

    command = find_record(topics["commands"], "OptimizationCommand", lambda r: r["optimization_id"] == oid)
    assert command["command"] == "ROLLBACK"
    assert command["target"] == "orchestrator"
    assert command["optimization_type"] == "SLO_ADJUSTMENT"
    assert command["reason"] == "p99 regression"


def find_record(topic, schema, match, timeout=60):
    """The first record of `topic` (read_committed, from the beginning) whose
    decoded value satisfies `match`; fails after `timeout` seconds."""
    c = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "reader-" + uuid.uuid4().hex,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            try:
                record = hive_avro.decode(schema, m.value())
            except ValueError:
                continue
            if match(record):
                return record
    finally:
        c.close()
    pytest.fail(f"no matching {schema} on {topic} within {timeout} s")


# ---- GetStatistics --------------------------------------------------------------------------------------


def test_get_statistics_counts_by_status_and_type(pb, stub, optimizations):
    optimizations.insert_many([
        hypothesis("opt-00000000000000d1", status="APPLIED", has_result=True, improvement=0.2),
        hypothesis("opt-00000000000000d2", status="ROLLED_BACK", has_result=True, improvement=0.1),
        hypothesis("opt-00000000000000d3", status="REJECTED", has_result=True, improvement=-0.05,
                   type="WEIGHT_RECALIBRATION"),
        hypothesis("opt-00000000000000d4", status="EXPERIMENTING", type="WEIGHT_RECALIBRATION"),
    ])
    resp = stub.GetStatistics(pb[0].GetStatisticsRequest(), timeout=10)
    assert resp.total == 4
    by_status = dict(resp.by_status)
    assert set(by_status) == set(STATUSES)
    assert by_status["APPLIED"] == 1 and by_status["ROLLED_BACK"] == 1
    assert by_status["REJECTED"] == 1 and by_status["EXPERIMENTING"] == 1 and by_status["PROPOSED"] == 0
    assert dict(resp.by_type) == {"SLO_ADJUSTMENT": 2, "WEIGHT_RECALIBRATION": 2}
    assert resp.rollbacks == 1
    assert resp.success_rate == pytest.approx(2 / 3)
    assert resp.average_improvement == pytest.approx((0.2 + 0.1 - 0.05) / 3)
    # No decision was made (the hypotheses were seeded): an empty table, and epsilon
    # still at EXPLORATION_RATE's default.
    assert resp.q_table_size == 0
    assert resp.epsilon == pytest.approx(0.3)


def test_get_statistics_of_an_empty_database(pb, stub):
    resp = stub.GetStatistics(pb[0].GetStatisticsRequest(), timeout=10)
    assert resp.total == 0 and resp.rollbacks == 0 and resp.success_rate == 0.0
    assert dict(resp.by_type) == {}


# ---- TriggerOptimization --------------------------------------------------------------------------------


def test_trigger_optimization_invalid_arguments(pb, stub):
    msgs = pb[0]
    err = rpc_error(stub.TriggerOptimization,
                    msgs.TriggerOptimizationRequest(component="", problem="LATENCY"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("component"), err.details()
    err = rpc_error(stub.TriggerOptimization, msgs.TriggerOptimizationRequest(component="orchestrator",
                                                                              problem="SLOWNESS"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("problem"), err.details()
    err = rpc_error(stub.TriggerOptimization, msgs.TriggerOptimizationRequest(
        component="orchestrator", problem="LATENCY", priority="URGENT"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("priority"), err.details()


def trigger(pb, stub, component):
    req = pb[0].TriggerOptimizationRequest(
        component=component, problem="LATENCY", metric="latency_p95_ms", current_value=1500.0,
        baseline_value=300.0, priority="HIGH", description="p95 is 5x the baseline")
    return stub.TriggerOptimization(req, timeout=30).optimization


def test_trigger_optimization_publishes_an_insight(pb, stub, topics):
    info = trigger(pb, stub, "consensus-engine")
    assert info.optimization_id.startswith("opt-") and len(info.optimization_id) == 20
    assert info.status == "PROPOSED"
    assert info.component == "consensus-engine"
    assert info.insight_id

    messages = read_committed(topics["insights"], 1, settle=1.0)
    records = [hive_avro.decode("Insight", m.value()) for m in messages]
    mine = [r for r in records if r["insight_id"] == info.insight_id]
    assert len(mine) == 1, records
    insight = mine[0]
    assert insight["source"] == "api"
    assert insight["component"] == "consensus-engine"
    assert insight["metric"] == "latency_p95_ms"
    assert insight["priority"] == "HIGH"
    assert insight["current_value"] == pytest.approx(1500.0)
    assert insight["baseline_value"] == pytest.approx(300.0)
    assert insight["description"] == "p95 is 5x the baseline"


def test_trigger_optimization_is_proposed_by_the_engine(pb, stub):
    info = trigger(pb, stub, "orchestrator")
    req = pb[0].GetOptimizationStatusRequest(optimization_id=info.optimization_id)
    deadline = time.time() + 90
    last = None
    while time.time() < deadline:
        try:
            last = stub.GetOptimizationStatus(req, timeout=10).optimization
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
            last = None
        if last is not None and last.status in ("EXPERIMENTING", "AWAITING_APPROVAL", "REJECTED"):
            break
        time.sleep(0.5)
    assert last is not None, f"{info.optimization_id} was never stored"
    # The policy may also decide that changing nothing is best: the decision is
    # kept, REJECTED with that reason.
    assert last.status in ("EXPERIMENTING", "AWAITING_APPROVAL") or (
        last.status == "REJECTED" and last.optimization_type == "NO_OP"), last
    assert last.insight_id == info.insight_id
    assert last.component == "orchestrator"
    assert last.action and last.state_key and last.policy
    assert last.created_at_ms > 0

    # The new optimization is also what ListOptimizations streams.
    req = pb[0].ListOptimizationsRequest(component="orchestrator")
    listed = list(stub.ListOptimizations(req, timeout=10))
    assert [i.optimization_id for i in listed] == [info.optimization_id]


# ---- calls in flight ------------------------------------------------------------------------------------


def test_concurrent_and_abandoned_calls(pb, stub, optimizations):
    """Calls whose client gives up before the answer (deadline, cancel) leave the
    service answering the rest; the fixture then checks a clean exit on SIGTERM."""
    msgs = pb[0]
    ids = [f"opt-{i:016x}" for i in range(30)]
    optimizations.insert_many([hypothesis(oid, created_at_ms=1_700_000_000_000 + i)
                               for i, oid in enumerate(ids)])
    streams = [stub.ListOptimizations(msgs.ListOptimizationsRequest(), timeout=30) for _ in range(10)]
    for s in streams:
        s.cancel()
    hurried = [stub.GetStatistics.future(msgs.GetStatisticsRequest(), timeout=0.001) for _ in range(10)]
    cancelled = [stub.GetOptimizationStatus.future(msgs.GetOptimizationStatusRequest(optimization_id=ids[0]))
                 for _ in range(10)]
    for f in cancelled:
        f.cancel()
    for f in hurried:  # whichever came first, the answer or the deadline
        assert f.exception() is None or f.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f.exception()

    futures = [stub.GetOptimizationStatus.future(msgs.GetOptimizationStatusRequest(optimization_id=oid),
                                                 timeout=30) for oid in ids]
    assert [f.result().optimization.optimization_id for f in futures] == ids
    assert len(list(stub.ListOptimizations(msgs.ListOptimizationsRequest(limit=100), timeout=30))) == 30
