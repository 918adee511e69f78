"""The appliers against the real stack: weight-recalibrator (and its shared
applier, common/applier.c) fed OptimizationCommands by an independent
producer (confluent-kafka + fastavro), read back with read_committed
consumers and pymongo. Bounded: each test waits at most ~60 s."""
import io
import json
import os
import struct
import time

import fastavro
import pytest
import requests

import applier_fixture as af
import hive_avro
from applier_fixture import assert_event_hash, command, events, send
from conftest import ROOT

SPECIALISTS = ("technical", "safety", "business", "ethical", "legal")

wr = af.applier_fixture("weight-recalibrator")


def weights_records(a, expected, timeout=60, settle=2.0):
    return af.state_records(a.state, "ConsensusWeights", expected, timeout=timeout, settle=settle)


def revisions(a, engine):
    return a.revisions(engine)


def assert_feasible(w):
    assert set(w) == set(SPECIALISTS)
    assert abs(sum(w.values()) - 1.0) < 1e-9, w
    assert all(0.1 <= x <= 0.4 for x in w.values()), w


def test_apply_publishes_weights_and_one_event_across_sigkill(wr):
    svc = wr.replica().start()
    engine = "consensus-engine-" + wr.tag
    send(wr.commands, [(engine, command(engine, "opt-a", {"technical": 0.05}))])
    ev = events(wr, 1)
    assert [e["event_type"] for e in ev] == ["APPLIED"]
    e = ev[0]
    assert_event_hash(e)
    assert e["applied_by"] == "weight-recalibrator" and e["revision"] == 2
    new = {x["parameter"]: x["new_value"] for x in e["adjustments"]}
    old = {x["parameter"]: x["old_value"] for x in e["adjustments"]}
    assert_feasible(new)
    assert old == {s: 0.2 for s in SPECIALISTS}
    # DELTA: +0.05 on technical; the Euclidean projection onto sum 1 takes the
    # excess 0.05 back evenly from all five: technical 0.24, the others 0.19.
    assert new["technical"] == pytest.approx(0.24, abs=1e-12)
    assert all(new[s] == pytest.approx(0.19, abs=1e-12) for s in SPECIALISTS[1:])
    assert e["rollback_plan"]["revision"] == 1 and e["rollback_plan"]["values"] == old
    w = weights_records(wr, 1)
    assert len(w) == 1 and w[0]["engine"] == engine and w[0]["revision"] == 2
    assert w[0]["weights"] == pytest.approx(new)

    # SIGKILL with commands in flight, restart: every command applied once.
    cmds = [(engine, command(engine, f"opt-k{i}", {SPECIALISTS[i % 5]: 0.004})) for i in range(12)]
    send(wr.commands, cmds[:6])
    time.sleep(0.5)
    svc.kill9()
    # The same command again (a producer retry) is not applied twice.
    send(wr.commands, [(engine, command(engine, "opt-a", {"technical": 0.05}))] + cmds[6:])
    svc.start()
    ev = events(wr, 13, settle=5.0)
    assert sorted(e["optimization_id"] for e in ev) == sorted(["opt-a"] + [f"opt-k{i}" for i in range(12)])
    assert all(e["event_type"] == "APPLIED" for e in ev)
    revs = revisions(wr, engine)
    assert [d["revision"] for d in revs] == list(range(1, 15))
    # No lost update: each event's old values are the revision before it.
    by_rev = {d["revision"]: d["values"] for d in revs}
    for e in ev:
        old = {x["parameter"]: x["old_value"] for x in e["adjustments"]}
        assert old == pytest.approx(by_rev[e["revision"] - 1])
        assert_feasible({x["parameter"]: x["new_value"] for x in e["adjustments"]})
        assert_event_hash(e)


def test_two_replicas_racing_on_one_engine_lose_no_update(wr):
    for _ in range(2):
        wr.replica(LOCK_TTL_MS=5000)
    for svc in wr.replicas:
        svc.start()
    engine = "engine-race-" + wr.tag
    n = 30
    # One engine, its commands spread over the three partitions: both replicas race on it.
    recs = [(engine, command(engine, f"opt-r{i}", {"technical": 0.001})) for i in range(n)]
    send(wr.commands, recs, partitions=[i % 3 for i in range(n)])
    ev = events(wr, n, settle=4.0)
    assert len(ev) == n and all(e["event_type"] == "APPLIED" for e in ev)
    assert sorted(e["revision"] for e in ev) == list(range(2, n + 2))
    revs = revisions(wr, engine)
    assert [d["revision"] for d in revs] == list(range(1, n + 2))
    # Every +0.001 landed (0.0008 net of the projection's even share): none was
    # computed from a stale revision.
    assert revs[-1]["values"]["technical"] == pytest.approx(0.2 + n * 0.0008, abs=1e-9)
    assert_feasible(revs[-1]["values"])


def test_rollback_restores_and_bad_commands_are_rejected(wr):
    svc = wr.replica().start()
    engine = "engine-rb-" + wr.tag
    send(wr.commands, [(engine, command(engine, "opt-1", {"safety": 0.3}, mode="ABSOLUTE"))])
    ev = events(wr, 1)
    assert ev[0]["event_type"] == "APPLIED"
    applied = {x["parameter"]: x["new_value"] for x in ev[0]["adjustments"]}
    # ABSOLUTE target 0.3, projected onto sum 1: the excess 0.1 comes back evenly.
    assert applied["safety"] == pytest.approx(0.28, abs=1e-12) and abs(sum(applied.values()) - 1) < 1e-9
    before = revisions(wr, engine)
    bad = [
        (engine, command(engine, "opt-bad", {"creativity": 0.1}, command_id="c-bad-1")),
        (engine, command(engine, "opt-empty", {}, command_id="c-bad-2")),
        (engine, command(engine, "opt-stale", {"legal": 0.01}, command_id="c-bad-3", expected_revision=1)),
        (engine, command(engine, "opt-none", cmd="ROLLBACK", command_id="c-bad-4")),
    ]
    send(wr.commands, bad)
    ev = events(wr, 5)
    rej = {e["optimization_id"]: e for e in ev if e["event_type"] == "REJECTED"}
    assert set(rej) == {"opt-bad", "opt-empty", "opt-stale", "opt-none"}
    assert "no adjustments" in rej["opt-empty"]["reason"]
    assert "creativity" in rej["opt-bad"]["reason"]
    assert "stale revision" in rej["opt-stale"]["reason"]
    assert "nothing to roll back" in rej["opt-none"]["reason"]
    for e in rej.values():
        assert_event_hash(e)
    assert revisions(wr, engine) == before  # no state change
    # Roll opt-1 back over REST: the exact previous weights come back.
    r = requests.post(svc.url(f"/api/v1/weights/{engine}/rollback"), json={"optimization_id": "opt-1"}, timeout=10)
    assert r.status_code == 202, r.text
    ev = events(wr, 6)
    rb = [e for e in ev if e["event_type"] == "ROLLED_BACK"]
    assert len(rb) == 1 and rb[0]["revision"] == 3
    revs = revisions(wr, engine)
    assert revs[-1]["values"] == revs[0]["values"] == {s: 0.2 for s in SPECIALISTS}
    w = weights_records(wr, 2)
    assert w[-1]["revision"] == 3 and w[-1]["weights"] == revs[0]["values"]
    cur = requests.get(svc.url(f"/api/v1/weights/{engine}"), timeout=10).json()
    assert cur["revision"] == 3 and cur["values"] == revs[0]["values"]
    hist = requests.get(svc.url(f"/api/v1/weights/{engine}/history?limit=10"), timeout=10).json()
    assert [h["revision"] for h in hist["revisions"]] == [3, 2, 1]
    # A second rollback of the same optimization is refused.
    send(wr.commands, [(engine, command(engine, "opt-1", cmd="ROLLBACK", command_id="c-rb-2"))])
    ev = events(wr, 7)
    again = [e for e in ev if e["event_id"] == "rej-c-rb-2"]
    assert len(again) == 1 and "already rolled back" in again[0]["reason"]


def test_old_writer_commands_read_as_absolute_targets(wr):
    """A command written with the schema before adjustment_mode (id 1010) means target values."""
    wr.replica().start()
    engine = "engine-old-" + wr.tag
    path = os.path.join(ROOT, "schemas", "avro", "history", "OptimizationCommand.1010.avsc")
    old = fastavro.parse_schema(json.load(open(path)))
    rec = {"command_id": "c-old", "command": "APPLY", "optimization_id": "opt-old",
           "optimization_type": "WEIGHT_RECALIBRATION", "target": engine, "adjustments": {"ethical": 0.3},
           "reason": "old writer", "issued_at": int(time.time() * 1000)}
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, 1010))
    fastavro.schemaless_writer(buf, old, rec)
    send(wr.commands, [(engine, buf.getvalue())])
    ev = events(wr, 1)
    new = {x["parameter"]: x["new_value"] for x in ev[0]["adjustments"]}
    # Read as a target (0.3, projected: 0.28); as a delta it would have been capped at +0.2 (0.36).
    assert ev[0]["event_type"] == "APPLIED" and new["ethical"] == pytest.approx(0.28, abs=1e-12)


def telemetry(service, error_rate, start_ms, end_ms):
    return hive_avro.encode("TelemetryAggregated", {
        "service": service, "window_start": start_ms, "window_end": end_ms, "request_count": 1000,
        "error_count": int(error_rate * 1000), "error_rate": error_rate, "latency_p50_ms": 100.0,
        "latency_p95_ms": 200.0, "latency_p99_ms": 300.0, "slo_compliance": 0.99, "availability": 0.999,
        "variant": None, "experiment_id": None, "metrics": {}})


def test_impact_watch_rolls_a_degrading_change_back_once(wr):
    wr.replica(IMPACT_WATCH_WINDOW_SECONDS=600, IMPACT_WATCH_THRESHOLD=0.2).start()
    engine = "engine-watch-" + wr.tag
    now = int(time.time() * 1000)
    send(wr.telemetry, [(engine, telemetry(engine, 0.01, now - 120000, now - 60000))])
    time.sleep(3)
    send(wr.commands, [(engine, command(engine, "opt-w", {"business": 0.05}))])
    ev = events(wr, 1)
    assert ev[0]["event_type"] == "APPLIED"
    after = int(time.time() * 1000) + 1000
    send(wr.telemetry, [(engine, telemetry(engine, 0.05, after, after + 1000))])
    ev = events(wr, 2, timeout=60, settle=12.0)  # two watch ticks after the rollback
    rb = [e for e in ev if e["event_type"] == "ROLLED_BACK"]
    assert len(rb) == 1, ev
    assert "impact watch" in rb[0]["reason"] and "error_rate" in rb[0]["reason"]
    revs = revisions(wr, engine)
    assert revs[-1]["values"] == revs[0]["values"]
