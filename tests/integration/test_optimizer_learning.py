"""The optimizer's learning loop as seed 000 writes it, on the real stack (issue 15).

Each test drives the real optimizer binary with independent clients
(confluent-kafka + fastavro for records, pymongo for state, requests for REST
and /metrics) and checks one item of the issue:

  item 1  an ABORTED experiment that measured +8 % earns a negative reward;
  item 3  the update bootstraps from the state the telemetry shows at the
          experiment's end: Q <- Q + alpha [r + gamma max Q(s',.) - Q];
  item 6  the next decision reports the observed improvement, not a shrunk Q;
  item 7  an applier's FAILED event is a failure, not a rollback;
  item 8  a hypothesis nobody answers expires and frees its component;
  item 9  REST accepts the NO_OP type filter; the experiment metrics exist.
"""
import time
import uuid

import pytest
import requests

import hive_avro
from conftest import producer, read_committed

ALPHA = 0.5
PENALTY = 0.2
MIN_IMPROVEMENT = 0.05


def insight(component, priority="CRITICAL"):
    return {
        "schema_version": 1, "insight_id": "ins-" + uuid.uuid4().hex[:16], "source": "analyst-agents",
        "type": "DEGRADATION", "priority": priority, "component": component, "metric": "latency_p95_ms",
        "current_value": 2250.0, "baseline_value": 1000.0, "description": "p95 latency above target",
        "timestamp": int(time.time() * 1000), "labels": {"problem": "LATENCY"},
    }


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


def metric(svc, name, labels=None):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in requests.get(svc.url("/metrics"), timeout=5).text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if labels and not all(f'{k}="{v}"' in line for k, v in labels.items()):
            continue
        total += float(line.rsplit(" ", 1)[1])
    return total


def result(req, status="COMPLETED", decision="ACCEPT", improvement=0.12, started=None, ended=None):
    now = int(time.time() * 1000)
    return {
        "schema_version": 1, "experiment_id": req["experiment_id"], "optimization_id": req["optimization_id"],
        "experiment_type": req["experiment_type"], "target": req["target"], "candidate_version": None,
        "status": status, "decision": decision, "variants": [], "primary_metric": "latency_p95_ms",
        "improvement": improvement, "p_value": 0.01, "guardrail_violations": [], "reason": "",
        "started_at": started if started is not None else now - 60000, "ended_at": ended if ended is not None else now,
    }


def event(req, cmd, event_type, reason=""):
    return {
        "schema_version": 1, "event_id": "evt-" + uuid.uuid4().hex[:8], "optimization_id": req["optimization_id"],
        "optimization_type": cmd["optimization_type"], "event_type": event_type, "target": req["target"],
        "applied_by": "slo-adjuster",
        "causal_analysis": {"insight_id": "i", "experiment_id": req["experiment_id"], "summary": "s",
                            "evidence": {}, "confidence": 0.9},
        "adjustments": [], "rollback_plan": {"revision": 1, "values": {}, "triggers": []},
        "revision": 2, "reason": reason, "timestamp": int(time.time() * 1000), "hash": ""}


def next_request(topics, seen):
    """The first ExperimentRequest not in `seen` (a list of experiment ids)."""
    for m in read_committed(topics["experiments_requests"], expected=len(seen) + 1, timeout=60):
        req = hive_avro.decode("ExperimentRequest", m.value())
        if req["experiment_id"] not in seen:
            seen.append(req["experiment_id"])
            return req
    raise AssertionError("no new ExperimentRequest")


@pytest.fixture
def learner(optimizer):
    """Greedy, fast-learning, no approval: every number below is exact."""
    optimizer.env.update({"EXPLORATION_RATE": "0", "EPSILON_MIN": "0", "POLICY_SEED": "42",
                          "APPROVAL_RISK_THRESHOLD": "1", "LEARNING_RATE": str(ALPHA), "DISCOUNT_FACTOR": "0.5"})
    return optimizer


def test_aborted_experiment_with_a_gain_is_punished(topics, learner, mongo):
    """Item 1: ABORTED with +8 % on the primary metric: reward < 0, Q < 0."""
    learner.start()
    db = mongo[learner.env["MONGODB_DATABASE"]]
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    req = next_request(topics, [])
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"],
         result(req, status="ABORTED", decision="REJECT", improvement=0.08))
    hyp = wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "REJECTED")
    expected = -hyp["risk"] * PENALTY - MIN_IMPROVEMENT
    assert hyp["reward"] == pytest.approx(expected, rel=1e-9), hyp
    entry = wait_doc(db.q_table, {"key": f'{hyp["state_key"]}|{hyp["action"]}'})
    assert entry["value"] == pytest.approx(ALPHA * expected, rel=1e-9)
    assert entry["value"] < 0
    assert not read_committed(topics["commands"], expected=1, timeout=3), "an aborted experiment applies nothing"


def test_update_bootstraps_from_the_state_after_the_experiment(topics, learner, mongo):
    """Items 3 and 6: the second result of (s, a) is learned with gamma from the
    degraded telemetry seen at its end; the next decision reports the observed
    mean improvement."""
    learner.start()
    db = mongo[learner.env["MONGODB_DATABASE"]]
    seen = []
    # 1. s = orchestrator|LATENCY|sev3|load0; terminal (no telemetry): Q1 = alpha r1.
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    req = next_request(topics, seen)
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], result(req, improvement=0.12))
    hyp = wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "APPROVED")
    key = f'{hyp["state_key"]}|{hyp["action"]}'
    r1 = 0.12 - hyp["risk"] * PENALTY
    q1 = wait_doc(db.q_table, {"key": key})["value"]
    assert q1 == pytest.approx(ALPHA * r1, rel=1e-9)
    cmd = hive_avro.decode("OptimizationCommand",
                           read_committed(topics["commands"], expected=1, timeout=60)[0].value())
    send(topics["applied"], "OptimizationEvent", req["optimization_id"], event(req, cmd, "APPLIED"))
    wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "APPLIED")

    # 2. The same state again; greedy picks the same action, and reports the
    # observed 12 % as its expected improvement (not alpha-shrunk Q + penalty).
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    req2 = next_request(topics, seen)
    hyp2 = wait_doc(db.optimizations, {"_id": req2["optimization_id"]})
    assert hyp2["state_key"] == hyp["state_key"] and hyp2["action"] == hyp["action"]
    assert hyp2["expected_improvement"] == pytest.approx(0.12, rel=1e-9)

    # The telemetry at the experiment's end still shows the component degraded
    # the same way: p95 2250 ms against 1000 (severity 1.25: sev3, CRITICAL).
    now = int(time.time() * 1000)
    send(topics["telemetry"], "TelemetryAggregated", "orchestrator", {
        "schema_version": 1, "service": "orchestrator", "window_start": now - 60000, "window_end": now,
        "request_count": 1000, "error_count": 1, "error_rate": 0.001, "latency_p50_ms": 80.0,
        "latency_p95_ms": 2250.0, "latency_p99_ms": 3000.0, "slo_compliance": 0.999, "availability": 0.9999,
        "variant": None, "experiment_id": None, "metrics": {}})
    wait_doc(db.telemetry_observations, {"service": "orchestrator"})
    send(topics["experiments_results"], "ExperimentResult", req2["experiment_id"],
         result(req2, improvement=0.12, started=now - 120000, ended=now + 1000))
    wait_doc(db.optimizations, {"_id": req2["optimization_id"]}, lambda d: d["status"] == "APPROVED")
    entry = wait_doc(db.q_table, {"key": key, "result_id": req2["experiment_id"]})
    # s' = s, whose best value is Q1 (the other actions are 0 < Q1).
    gamma = 0.5
    assert entry["value"] == pytest.approx(q1 + ALPHA * (r1 + gamma * q1 - q1), rel=1e-9), entry
    assert entry["value"] != pytest.approx(q1 + ALPHA * (r1 - q1), rel=1e-9), "gamma must change the value"
    assert entry["improvement"] == pytest.approx(0.12) and entry["improvement_n"] == 2


def test_applier_refusal_is_a_failure_not_a_rollback(topics, learner, mongo):
    """Item 7: FAILED from the applier: status FAILED, no rollback counted, not a success."""
    learner.start()
    db = mongo[learner.env["MONGODB_DATABASE"]]
    send(topics["insights"], "Insight", "gateway", insight("gateway"))
    req = next_request(topics, [])
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], result(req))
    cmd = hive_avro.decode("OptimizationCommand",
                           read_committed(topics["commands"], expected=1, timeout=60)[0].value())
    send(topics["applied"], "OptimizationEvent", req["optimization_id"],
         event(req, cmd, "FAILED", reason="weights out of bounds"))
    hyp = wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "FAILED")
    assert hyp["reason"] == "weights out of bounds"
    assert metric(learner, "rollbacks_total") == 0
    assert metric(learner, "optimizations_failed_total") == 1
    stats = requests.get(learner.url("/api/v1/optimizations/statistics/summary"), timeout=5).json()
    assert stats["rollbacks"] == 0, stats
    assert stats["application_failures"] == 1, stats
    assert stats["succeeded"] == 0 and stats["success_rate"] == 0, stats
    assert stats["by_status"].get("FAILED") == 1, stats
    listed = requests.get(learner.url("/api/v1/optimizations?status=FAILED"), timeout=5)
    assert listed.status_code == 200 and listed.json()["total"] == 1, listed.text
    # Item 9: experiment_duration_seconds saw the 60 s experiment; the
    # submitted counter is labelled with the experiment type.
    assert metric(learner, "experiment_duration_seconds_count") == 1
    assert metric(learner, "experiment_duration_seconds_sum") == pytest.approx(60.0)
    assert metric(learner, "experiments_submitted_total", {"type": req["experiment_type"]}) == 1
    assert metric(learner, "experiments_submitted_total", {"type": cmd["optimization_type"]}) == 0


def test_unanswered_hypothesis_expires_and_frees_its_component(topics, optimizer, mongo):
    """Item 8: no approval response within HYPOTHESIS_TIMEOUT_SECONDS: EXPIRED
    with its reason, counted, and the next insight makes a new hypothesis."""
    optimizer.env.update({"APPROVAL_RISK_THRESHOLD": "0", "POLICY_SEED": "7", "HYPOTHESIS_TIMEOUT_SECONDS": "10"})
    optimizer.start()
    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    ask = hive_avro.decode("ApprovalRequest",
                           read_committed(topics["approvals_requests"], expected=1, timeout=60)[0].value())
    hyp = wait_doc(db.optimizations, {"_id": ask["optimization_id"]})
    assert hyp["status"] == "AWAITING_APPROVAL"
    assert hyp["expires_at_ms"] == hyp["created_at_ms"] + 10000
    # Meanwhile the pair is held: a second insight is debounced.
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    deadline = time.time() + 30
    while time.time() < deadline and metric(optimizer, "hypotheses_suppressed_total") < 1:
        time.sleep(0.3)
    assert metric(optimizer, "hypotheses_suppressed_total") == 1
    hyp = wait_doc(db.optimizations, {"_id": ask["optimization_id"]}, lambda d: d["status"] == "EXPIRED",
                   timeout=60)
    assert hyp["reason"] == "no approval response within 10 s: expired"
    assert metric(optimizer, "hypotheses_expired_total", {"status": "AWAITING_APPROVAL"}) == 1
    # A late approval changes nothing.
    send(topics["approvals_responses"], "ApprovalResponse", ask["optimization_id"], {
        "schema_version": 1, "optimization_id": ask["optimization_id"], "decision": "APPROVED",
        "approver": "queen-agent", "reason": "late", "responded_at": int(time.time() * 1000)})
    # The component and problem are free again.
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    asks = read_committed(topics["approvals_requests"], expected=2, timeout=60)
    assert len(asks) == 2, "a new hypothesis must be proposed once the old one expired"
    assert db.optimizations.find_one({"_id": ask["optimization_id"]})["status"] == "EXPIRED"
    assert not read_committed(topics["experiments_requests"], expected=1, timeout=3)


def test_rest_accepts_the_no_op_type_filter(topics, optimizer):
    """Item 9: REST takes type=NO_OP, as gRPC does."""
    optimizer.start()
    r = requests.get(optimizer.url("/api/v1/optimizations?type=NO_OP"), timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0
    r = requests.get(optimizer.url("/api/v1/optimizations?type=NOPE"), timeout=5)
    assert r.status_code == 400 and "NO_OP" in r.text


def test_a_result_learned_by_one_replica_steers_the_other(topics, learner, mongo):
    """Item 4: two replicas over one MongoDB database. Replica A learns from a
    result; replica B, started before that and never restarted, chooses from
    what A saved."""
    from conftest import Service, create_topics, free_port

    tag = uuid.uuid4().hex[:10]
    other = {k: f"{v}.b{tag}" for k, v in topics.items() if k not in ("tag", "dlq")}
    create_topics(list(other.values()) + [other[k] + ".dlq" for k in
                                          ("insights", "approvals_responses", "experiments_results", "applied")])
    env = dict(learner.env)
    env.update({
        "KAFKA_TELEMETRY_TOPIC": other["telemetry"], "KAFKA_INSIGHTS_TOPIC": other["insights"],
        "KAFKA_APPROVALS_REQUESTS_TOPIC": other["approvals_requests"],
        "KAFKA_APPROVALS_RESPONSES_TOPIC": other["approvals_responses"],
        "KAFKA_EXPERIMENT_REQUESTS_TOPIC": other["experiments_requests"],
        "KAFKA_EXPERIMENTS_TOPIC": other["experiments_results"], "KAFKA_COMMANDS_TOPIC": other["commands"],
        "KAFKA_OPTIMIZATION_TOPIC": other["applied"], "KAFKA_CONSUMER_GROUP": "optimizer-b" + tag,
        "KAFKA_TRANSACTIONAL_ID": "optimizer-b" + tag, "HTTP_PORT": str(free_port()), "GRPC_PORT": str(free_port()),
    })
    replica_b = Service(learner.binary, env, "optimizer-b" + tag)
    learner.start()
    replica_b.start()
    try:
        db = mongo[learner.env["MONGODB_DATABASE"]]
        # Replica A: an experiment in s succeeds; Q(s, a) > 0 is saved.
        send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
        req = next_request(topics, [])
        send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], result(req))
        hyp = wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "APPROVED")
        saved = wait_doc(db.q_table, {"key": f'{hyp["state_key"]}|{hyp["action"]}'})
        assert saved["value"] > 0
        cmd = hive_avro.decode("OptimizationCommand",
                               read_committed(topics["commands"], expected=1, timeout=60)[0].value())
        send(topics["applied"], "OptimizationEvent", req["optimization_id"], event(req, cmd, "APPLIED"))
        wait_doc(db.optimizations, {"_id": req["optimization_id"]}, lambda d: d["status"] == "APPLIED")
        # Replica B, the same state: greedy, it must pick the action A
        # learned, with A's value, although its own memory never saw it.
        send(other["insights"], "Insight", "orchestrator", insight("orchestrator"))
        got = read_committed(other["experiments_requests"], expected=1, timeout=60)
        assert len(got) == 1
        req_b = hive_avro.decode("ExperimentRequest", got[0].value())
        hyp_b = wait_doc(db.optimizations, {"_id": req_b["optimization_id"]})
        assert hyp_b["state_key"] == hyp["state_key"]
        assert hyp_b["action"] == hyp["action"], "replica B must choose from what replica A learned"
        assert hyp_b["q_value"] == pytest.approx(saved["value"], rel=1e-12)
        assert hyp_b["expected_improvement"] == pytest.approx(0.12, rel=1e-9)
    finally:
        assert replica_b.stop() == 0


def test_each_replica_saves_its_own_epsilon(topics, optimizer, mongo):
    """Item 9: epsilon decays with each replica's own decisions, so each replica
    saves its policy state under its own id (<policy>|<transactional id>) and
    none overwrites another's in one shared document."""
    optimizer.env.update({"EXPLORATION_RATE": "0.3", "APPROVAL_RISK_THRESHOLD": "1"})
    optimizer.start()
    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    send(topics["insights"], "Insight", "orchestrator", insight("orchestrator"))
    next_request(topics, [])  # the first decision saves the policy state
    own = "qlearning|" + optimizer.env["KAFKA_TRANSACTIONAL_ID"]
    doc = wait_doc(db.policy_state, {"_id": own})
    assert doc["replica"] == own and doc["decisions"] == 1, doc
    assert 0 < doc["epsilon"] <= 0.3, doc
    assert db.policy_state.find_one({"_id": "qlearning"}) is None, "no shared document"
