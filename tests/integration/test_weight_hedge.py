"""The weight-recalibrator's own proposal: decisions with outcomes on
consensus.decisions (an independent producer, confluent-kafka + fastavro), then
a WEIGHT_RECALIBRATION command with no adjustments applies one Hedge step from
the specialists' accuracy. Bounded: each wait at most ~60 s."""
import math
import time

import pymongo
import pytest
import requests

import applier_fixture as af
import hive_avro
from applier_fixture import command, events, send
from conftest import MONGODB_URI

SPECIALISTS = ("technical", "safety", "business", "ethical", "legal")

wr = af.applier_fixture("weight-recalibrator")


def decision(engine, i, outcome, good="safety"):
    """Decision i: `good` scores on the outcome's side of 0.5, the others on the wrong side."""
    right, wrong = (0.9, 0.1) if outcome else (0.1, 0.9)
    return hive_avro.encode("ConsensusDecision", {
        "decision_id": f"d-{engine}-{i}",
        "engine": engine,
        "timestamp": int(time.time() * 1000),
        "opinions": [{"specialist": s, "score": right if s == good else wrong, "confidence": 0.8}
                     for s in SPECIALISTS],
        "final_score": 0.5,
        "outcome": outcome,
        "weights": {s: 0.2 for s in SPECIALISTS},
    })


def stored(a, engine, expected, timeout=60):
    c = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)[a.db]["decisions"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = c.count_documents({"engine": engine})
        if n >= expected:
            return n
        time.sleep(0.5)
    return c.count_documents({"engine": engine})


def test_empty_adjustments_apply_a_hedge_step_toward_the_accurate_specialist(wr):
    wr.replica(HEDGE_ETA=2.0).start()
    engine = "engine-hedge-" + wr.tag
    recs = [(f"d-{engine}-{i}", decision(engine, i, i % 3 != 0)) for i in range(12)]
    # A decision without an outcome counts for nothing; a replayed one counts once.
    pending = hive_avro.encode("ConsensusDecision", {
        "decision_id": f"d-{engine}-pending", "engine": engine, "timestamp": 0, "opinions": [],
        "final_score": 0.5, "outcome": None, "weights": {}})
    send(wr.decisions, recs + recs[:4] + [(f"d-{engine}-pending", pending)])
    assert stored(wr, engine, 12) == 12
    send(wr.commands, [(engine, command(engine, "opt-hedge", {}))])
    ev = events(wr, 1)
    assert ev[0]["event_type"] == "APPLIED", ev[0]
    new = af.new_values(ev[0])
    old = af.old_values(ev[0])
    assert old == {s: 0.2 for s in SPECIALISTS}
    assert abs(sum(new.values()) - 1.0) < 1e-9 and all(0.1 <= x <= 0.4 for x in new.values()), new
    assert new["safety"] > 0.2 and all(new[s] < new["safety"] for s in SPECIALISTS if s != "safety")
    # loss: safety 1 - 13/14, the others 1 - 1/14; one step with eta 2, then capped and projected.
    ls = 1 - 13 / 14
    lo = 1 - 1 / 14
    e = math.exp(-2 * (ls - lo))
    assert new["safety"] == pytest.approx(min(0.4, e / (e + 4)), abs=1e-9)
    assert stored(wr, engine, 12) == 12  # the replay did not add any


def test_empty_adjustments_without_outcomes_are_rejected(wr):
    wr.replica().start()
    engine = "engine-nohedge-" + wr.tag
    send(wr.commands, [(engine, command(engine, "opt-none", {}))])
    ev = events(wr, 1)
    assert ev[0]["event_type"] == "REJECTED" and "no adjustments" in ev[0]["reason"]


def test_rest_recalibrate_queues_an_empty_apply(wr):
    svc = wr.replica().start()
    engine = "engine-rest-" + wr.tag
    recs = [(f"d-{engine}-{i}", decision(engine, i, True, good="legal")) for i in range(6)]
    send(wr.decisions, recs)
    assert stored(wr, engine, 6) == 6
    bad = requests.post(svc.url(f"/api/v1/weights/{engine}/recalibrate"), json={"eta": 3}, timeout=10)
    assert bad.status_code == 400
    r = requests.post(svc.url(f"/api/v1/weights/{engine}/recalibrate"), json={"reason": "weekly"}, timeout=10)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    ev = events(wr, 1)
    assert ev[0]["event_type"] == "APPLIED", ev[0]
    new = af.new_values(ev[0])
    assert abs(sum(new.values()) - 1.0) < 1e-9 and all(0.1 <= x <= 0.4 for x in new.values()), new
    assert new["legal"] > 0.2 and all(new[s] < new["legal"] for s in SPECIALISTS if s != "legal")
