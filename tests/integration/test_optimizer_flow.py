"""The optimizer's hypothesis lifecycle on the real stack (issue: optimizer).

An Insight goes in; an ExperimentRequest comes out; an ExperimentResult goes
in; the Q-table in MongoDB changes exactly as the seed's update rule says and
an APPLY command comes out; the applier's confirmation makes it APPLIED.
Records are written and read by independent clients (confluent-kafka,
fastavro); state is read with pymongo.
"""
import time
import uuid

import pytest
import requests

import hive_avro
from conftest import producer, read_committed
from hive_client import insight

ALPHA = 0.01
PENALTY = 0.2


def send(topic, name, key, record):
    p = producer()
    p.produce(topic, key=key.encode(), value=hive_avro.encode(name, record))
    assert p.flush(30) == 0


def wait_doc(coll, query, pred=lambda d: True, timeout=60):
    deadline = time.time() + timeout
    doc = None
    while time.time() < deadline:
        doc = coll.find_one(query)
        if doc and pred(doc):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"no document matching {query} (last seen: {doc})")


def metric_total(svc, name):
    total = 0.0
    for line in requests.get(svc.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def greedy(optimizer):
    """Deterministic, no approval needed: the flow without the Queen Agent."""
    optimizer.env.update({"EXPLORATION_RATE": "0", "EPSILON_MIN": "0", "POLICY_SEED": "42",
                          "APPROVAL_RISK_THRESHOLD": "1"})
    return optimizer


def test_insight_experiment_result_q_update_apply(topics, greedy, mongo):
    greedy.start()
    db = mongo[greedy.env["MONGODB_DATABASE"]]
    ins = insight("orchestrator")
    send(topics["insights"], "Insight", "orchestrator", ins)

    reqs = read_committed(topics["experiments_requests"], expected=1, timeout=60)
    assert len(reqs) == 1, f"expected one ExperimentRequest, got {len(reqs)}"
    req = hive_avro.decode("ExperimentRequest", reqs[0].value())
    assert req["target"] == "orchestrator"
    assert req["requested_by"] == "optimizer"
    assert req["success_criteria"] and req["guardrails"], "criteria and guardrails must be set"
    # A guardrail aborts when it holds: error_rate GT the limit (ExperimentRequest's doc).
    assert any(g["metric"] == "error_rate" and g["operator"] == "GT" for g in req["guardrails"])
    hyp = wait_doc(db.optimizations, {"_id": req["optimization_id"]})
    assert hyp["status"] == "EXPERIMENTING"
    assert hyp["insight_id"] == ins["insight_id"]
    assert hyp["experiment_id"] == req["experiment_id"]
    assert ins["insight_id"] in hyp["rationale"] and hyp["action"] in hyp["rationale"]
    assert 0 < hyp["propensity"] <= 1

    # The experiment succeeded with a 12% improvement.
    improvement = 0.12
    now = int(time.time() * 1000)
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], {
        "schema_version": 1, "experiment_id": req["experiment_id"], "optimization_id": req["optimization_id"],
        "experiment_type": req["experiment_type"], "target": "orchestrator", "candidate_version": None,
        "status": "COMPLETED", "decision": "ACCEPT", "variants": [], "primary_metric": "latency_p95_ms",
        "improvement": improvement, "p_value": 0.01, "guardrail_violations": [], "reason": "",
        "started_at": now - 60000, "ended_at": now})

    cmds = read_committed(topics["commands"], expected=1, timeout=60)
    assert len(cmds) == 1, f"expected one APPLY command, got {len(cmds)}"
    cmd = hive_avro.decode("OptimizationCommand", cmds[0].value())
    assert cmd["command"] == "APPLY"
    assert cmd["optimization_id"] == req["optimization_id"]
    assert cmd["adjustments"], "the command must say what to change"

    # Q(s,a) <- Q(s,a) + alpha * (r - Q(s,a)), terminal, from Q = 0:
    reward = improvement - hyp["risk"] * PENALTY
    entry = wait_doc(db.q_table, {"key": f'{hyp["state_key"]}|{hyp["action"]}'})
    assert entry["result_id"] == req["experiment_id"]
    assert entry["visits"] == 1
    assert entry["value"] == pytest.approx(ALPHA * reward, rel=1e-9), entry
    hyp = wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "APPROVED")
    assert hyp["reward"] == pytest.approx(reward, rel=1e-9)
    assert metric_total(greedy, "q_table_updates_total") == 1

    # The applier confirms: APPLIED.
    send(topics["applied"], "OptimizationEvent", req["optimization_id"], {
        "schema_version": 1, "event_id": "evt-" + uuid.uuid4().hex[:8], "optimization_id": req["optimization_id"],
        "optimization_type": cmd["optimization_type"], "event_type": "APPLIED", "target": "orchestrator",
        "applied_by": "slo-adjuster",
        "causal_analysis": {"insight_id": ins["insight_id"], "experiment_id": req["experiment_id"],
                            "summary": "s", "evidence": {}, "confidence": 0.9},
        "adjustments": [], "rollback_plan": {"revision": 1, "values": {}, "triggers": []},
        "revision": 2, "reason": "", "timestamp": now, "hash": ""})
    wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "APPLIED")
    assert metric_total(greedy, "optimizations_applied_total") == 1

    # The fleet-wide gauges (refreshed from MongoDB every 15 s) follow.
    deadline = time.time() + 40
    while time.time() < deadline and metric_total(greedy, "optimization_success_rate") != 1:
        time.sleep(0.5)
    assert metric_total(greedy, "optimization_success_rate") == 1
    assert metric_total(greedy, "average_improvement_percentage") == pytest.approx(100 * improvement)
    assert metric_total(greedy, "experiments_active") == 0


def test_result_replayed_after_restart_is_counted_once(topics, greedy, mongo):
    """A second copy of the same result (a replay) neither counts twice nor moves anything."""
    greedy.start()
    db = mongo[greedy.env["MONGODB_DATABASE"]]
    send(topics["insights"], "Insight", "gateway", insight("gateway"))
    req = hive_avro.decode("ExperimentRequest",
                           read_committed(topics["experiments_requests"], expected=1, timeout=60)[0].value())
    now = int(time.time() * 1000)
    result = {
        "schema_version": 1, "experiment_id": req["experiment_id"], "optimization_id": req["optimization_id"],
        "experiment_type": req["experiment_type"], "target": "gateway", "candidate_version": None,
        "status": "COMPLETED", "decision": "REJECT", "variants": [], "primary_metric": "latency_p95_ms",
        "improvement": -0.03, "p_value": None, "guardrail_violations": ["error_rate"], "reason": "guardrail",
        "started_at": now - 1000, "ended_at": now}
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], result)
    wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "REJECTED")
    greedy.stop()
    greedy.start()
    # The learned table came back from MongoDB.
    stats = requests.get(greedy.url("/api/v1/optimizations/statistics/summary"), timeout=5).json()
    assert stats["q_table_size"] == 1, stats
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], result)
    time.sleep(3)
    entries = list(db.q_table.find({"result_id": req["experiment_id"]}))
    assert len(entries) == 1, f"the result was counted {len(entries)} times"
    assert not read_committed(topics["commands"], expected=1, timeout=3), "a rejected experiment applies nothing"


def test_risky_hypothesis_waits_for_the_queen_agent(topics, optimizer, mongo):
    optimizer.env.update({"APPROVAL_RISK_THRESHOLD": "0", "POLICY_SEED": "7"})
    optimizer.start()
    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    for component in ("consensus-engine", "orchestrator"):
        send(topics["insights"], "Insight", component, insight(component))
    asks = read_committed(topics["approvals_requests"], expected=2, timeout=60)
    assert len(asks) == 2
    asks = {hive_avro.decode("ApprovalRequest", m.value())["target"]: hive_avro.decode("ApprovalRequest", m.value())
            for m in asks}
    assert not read_committed(topics["experiments_requests"], expected=1, timeout=3)
    now = int(time.time() * 1000)
    for component, decision in (("consensus-engine", "REJECTED"), ("orchestrator", "APPROVED")):
        oid = asks[component]["optimization_id"]
        send(topics["approvals_responses"], "ApprovalResponse", oid, {
            "schema_version": 1, "optimization_id": oid, "decision": decision, "approver": "queen-agent",
            "reason": "test", "responded_at": now})
    wait_doc(db.optimizations, {"_id": asks["consensus-engine"]["optimization_id"]},
             lambda d: d["status"] == "REJECTED")
    reqs = read_committed(topics["experiments_requests"], expected=1, timeout=60)
    assert len(reqs) == 1
    assert hive_avro.decode("ExperimentRequest", reqs[0].value())["optimization_id"] == \
        asks["orchestrator"]["optimization_id"]


def test_flood_of_identical_insights_makes_one_hypothesis(topics, greedy, mongo):
    greedy.start()
    db = mongo[greedy.env["MONGODB_DATABASE"]]
    p = producer()
    for _ in range(30):
        p.produce(topics["insights"], key=b"orchestrator", value=hive_avro.encode("Insight", insight("orchestrator")))
    # LOW and MEDIUM insights are ignored.
    p.produce(topics["insights"], key=b"cache", value=hive_avro.encode("Insight", insight("cache", priority="MEDIUM")))
    assert p.flush(30) == 0
    deadline = time.time() + 60
    while time.time() < deadline and (metric_total(greedy, "hypotheses_suppressed_total") < 29 or
                                      metric_total(greedy, "insights_filtered_total") < 1):
        time.sleep(0.2)
    assert metric_total(greedy, "hypotheses_suppressed_total") == 29
    assert metric_total(greedy, "insights_filtered_total") == 1
    assert db.optimizations.count_documents({}) == 1
    assert len(read_committed(topics["experiments_requests"], expected=1, timeout=10)) == 1


def test_linucb_model_is_persisted_exactly(topics, optimizer, mongo):
    """With OPTIMIZER_POLICY=linucb the learned model is each action's (A, b):
    after one update from the ridge prior, A = I + x x^T and b = r x, so
    b b^T = r^2 (A - I) whatever the feature vector x is."""
    optimizer.env.update({"OPTIMIZER_POLICY": "linucb", "APPROVAL_RISK_THRESHOLD": "1"})
    optimizer.start()
    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    req = hive_avro.decode("ExperimentRequest",
                           read_committed(topics["experiments_requests"], expected=1, timeout=60)[0].value())
    now = int(time.time() * 1000)
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], {
        "schema_version": 1, "experiment_id": req["experiment_id"], "optimization_id": req["optimization_id"],
        "experiment_type": req["experiment_type"], "target": "orchestrator", "candidate_version": None,
        "status": "COMPLETED", "decision": "ACCEPT", "variants": [], "primary_metric": "latency_p95_ms",
        "improvement": 0.2, "p_value": 0.01, "guardrail_violations": [], "reason": "",
        "started_at": now - 1000, "ended_at": now})
    hyp = wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "APPROVED")
    assert hyp["policy"] == "linucb"
    doc = wait_doc(db.q_table, {"key": f'linucb|{hyp["action"]}'})
    assert doc["model"] == "linucb" and doc["n"] == 1 and doc["result_id"] == req["experiment_id"]
    A, b, r = doc["A"], doc["b"], hyp["reward"]
    dim = len(b)
    assert len(A) == dim * dim
    assert any(abs(v) > 0 for v in b)
    for i in range(dim):
        for j in range(dim):
            assert b[i] * b[j] == pytest.approx(r * r * (A[i * dim + j] - (1.0 if i == j else 0.0)), abs=1e-12)
