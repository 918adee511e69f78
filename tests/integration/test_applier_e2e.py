"""The closed loop on the real stack: the real optimizer's APPLY command reaches
the applier that owns its type, which applies it and publishes
optimization.applied; the optimizer then marks the hypothesis APPLIED.

Binaries under test: optimizer, weight-recalibrator and slo-adjuster, wired to
one test's topics. The insight and the experiment's result come from an
independent producer (confluent-kafka + fastavro); the hypothesis is read back
through the optimizer's REST API and its MongoDB (pymongo)."""
import time

import pytest
import requests

import hive_avro
from applier_fixture import Applier, assert_event_hash, new_values, old_values
from conftest import create_topics, producer, read_committed
from hive_client import insight

OWNER = {"WEIGHT_RECALIBRATION": "weight-recalibrator", "SLO_ADJUSTMENT": "slo-adjuster"}


def send(topic, name, key, record):
    p = producer()
    p.produce(topic, key=key.encode(), value=hive_avro.encode(name, record))
    assert p.flush(30) == 0


def wait_status(optimizer, optimization_id, status, timeout=90):
    """The hypothesis as the optimizer's REST API serves it, once it has `status`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = requests.get(optimizer.url(f"/api/v1/optimizations/{optimization_id}"), timeout=5)
        if r.status_code == 200:
            last = r.json()
            if last.get("status") == status:
                return last
        time.sleep(0.3)
    raise AssertionError(f"{optimization_id} never reached {status} (last seen: {last})")


@pytest.fixture
def loop(topics, optimizer):
    """The optimizer (greedy, no approval step) and both appliers on the same topics."""
    optimizer.env.update({"EXPLORATION_RATE": "0", "EPSILON_MIN": "0", "POLICY_SEED": "42",
                          "APPROVAL_RISK_THRESHOLD": "1"})
    create_topics([topics["commands"] + ".dlq"])
    appliers = {name: Applier(name, tag=topics["tag"] + name[0], commands=topics["commands"],
                              applied=topics["applied"], telemetry=topics["telemetry"])
                for name in ("weight-recalibrator", "slo-adjuster")}
    for a in appliers.values():
        a.start()
    optimizer.start()
    yield optimizer, appliers
    for a in appliers.values():
        a.check_clean_exit(a.close())


OWNER.update({"HEURISTIC_UPDATE": "slo-adjuster", "POLICY_CHANGE": "slo-adjuster"})
ROUNDS = 12


def wait_hypothesis(mongo, optimizer, insight_id, timeout=60):
    coll = mongo[optimizer.env["MONGODB_DATABASE"]].optimizations
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = coll.find_one({"insight_id": insight_id})
        if doc:
            return doc
        time.sleep(0.3)
    raise AssertionError(f"no hypothesis for insight {insight_id}")


def one_round(topics, optimizer, appliers, mongo, r, i, component, problem):
    """Insight -> experiment accepted -> the optimizer's APPLY -> its owner
    applies it -> APPLIED in the optimizer. Returns the command, or None when
    the optimizer decided to change nothing (NO_OP: no experiment, no command);
    `r` numbers the round, `i` counts the commands issued before it."""
    target = f"{component}-{topics['tag']}-{r}"
    ins = insight(target, problem=problem)
    send(topics["insights"], "Insight", target, ins)
    if wait_hypothesis(mongo, optimizer, ins["insight_id"])["action"] == "noop":
        return None
    reqs = [hive_avro.decode("ExperimentRequest", m.value())
            for m in read_committed(topics["experiments_requests"], expected=i + 1, timeout=60)]
    assert len(reqs) == i + 1, f"expected {i + 1} ExperimentRequests, got {len(reqs)}"
    req = next(r for r in reqs if r["target"] == target)
    now = int(time.time() * 1000)
    send(topics["experiments_results"], "ExperimentResult", req["experiment_id"], {
        "schema_version": 1, "experiment_id": req["experiment_id"], "optimization_id": req["optimization_id"],
        "experiment_type": req["experiment_type"], "target": target, "candidate_version": None,
        "status": "COMPLETED", "decision": "ACCEPT", "variants": [], "primary_metric": req["success_criteria"][0]["metric"],
        "improvement": 0.12, "p_value": 0.01, "guardrail_violations": [], "reason": "",
        "started_at": now - 60000, "ended_at": now})

    # The optimizer's own APPLY command, as it wrote it.
    cmds = [hive_avro.decode("OptimizationCommand", m.value())
            for m in read_committed(topics["commands"], expected=i + 1, timeout=60)]
    assert len(cmds) == i + 1, f"expected {i + 1} commands, got {len(cmds)}"
    cmd = next(c for c in cmds if c["target"] == target)
    assert cmd["command"] == "APPLY" and cmd["optimization_id"] == req["optimization_id"], cmd
    assert cmd["optimization_type"] in OWNER, cmd
    assert len(cmd["adjustments"]) == 1, cmd
    (param, step), = cmd["adjustments"].items()
    owner = OWNER[cmd["optimization_type"]]

    # Its owner applied it: one APPLIED event, from it, for this optimization.
    evs = [hive_avro.decode("OptimizationEvent", m.value())
           for m in read_committed(topics["applied"], expected=i + 1, timeout=60, settle=2.0)]
    mine = [e for e in evs if e["optimization_id"] == cmd["optimization_id"]]
    assert [e["event_type"] for e in mine] == ["APPLIED"], mine
    e = mine[0]
    assert e["applied_by"] == owner and e["target"] == target and e["revision"] == 2, e
    assert e["optimization_type"] == cmd["optimization_type"]
    assert_event_hash(e)
    old, new = old_values(e), new_values(e)
    kind = cmd["optimization_type"]
    if kind == "WEIGHT_RECALIBRATION":
        # DELTA on one weight from the initial 0.2 each, then the exact projection
        # onto sum 1: the step is shared evenly, 4/5 of it stays on the weight moved.
        assert cmd["adjustment_mode"] == "DELTA"
        assert old == {s: 0.2 for s in old} and len(old) == 5
        assert new[param] == pytest.approx(0.2 + 0.8 * step, abs=1e-12)
        assert sum(new.values()) == pytest.approx(1.0, abs=1e-9)
    elif kind == "SLO_ADJUSTMENT":
        # RELATIVE: -0.10 is 10 % off the current target (latency_p95_ms is the latency target).
        assert cmd["adjustment_mode"] == "RELATIVE"
        name = "latency_ms" if param.startswith("latency") else param
        assert new[name] == pytest.approx(old[name] * (1 + step), rel=1e-12)
    elif kind == "HEURISTIC_UPDATE":
        # DELTA from the Orchestrator's default (POLICY_DEFAULTS), within +-30 %.
        assert cmd["adjustment_mode"] == "DELTA"
        assert param in new and new[param] != 0
    else:
        assert cmd["adjustment_mode"] == "ABSOLUTE" and new == {param: step}
    coll = "policies" if kind in ("HEURISTIC_UPDATE", "POLICY_CHANGE") else None
    db = appliers[owner].db + ("_policies" if coll else "")
    revs = sorted(mongo[db][coll or appliers[owner].coll].find({"key": target}), key=lambda d: d["revision"])
    assert [d["revision"] for d in revs] == [1, 2]

    # The optimizer read optimization.applied: APPLIED, through its REST and its MongoDB.
    hyp = wait_status(optimizer, cmd["optimization_id"], "APPLIED")
    assert hyp["type"] == kind and hyp["component"] == target, hyp
    doc = mongo[optimizer.env["MONGODB_DATABASE"]].optimizations.find_one({"_id": cmd["optimization_id"]})
    assert doc["status"] == "APPLIED", doc
    return cmd


def test_every_optimizer_apply_ends_applied_through_its_applier(topics, loop, mongo):
    """Rounds on fresh components (a consensus-accuracy problem, then an SLO
    compliance one, alternately) until the optimizer has issued both a weight
    recalibration and an SLO adjustment; every APPLY it issues on the way ends
    APPLIED through the applier that owns its type."""
    optimizer, appliers = loop
    seen = []
    for r in range(ROUNDS):
        component, problem = [("consensus-engine", "CONSENSUS_ACCURACY"), ("orchestrator", "SLO_COMPLIANCE")][r % 2]
        cmd = one_round(topics, optimizer, appliers, mongo, r, len(seen), component, problem)
        if cmd:
            seen.append(cmd["optimization_type"])
        if {"WEIGHT_RECALIBRATION", "SLO_ADJUSTMENT"} <= set(seen):
            break
    assert {"WEIGHT_RECALIBRATION", "SLO_ADJUSTMENT"} <= set(seen), f"types issued: {seen}"
