"""The optimizer's batch paths on the real stack: the telemetry intake and the
insight path take the valid records of a transaction together and do their
MongoDB work as one bulk operation per collection.

  - one batch holding a record the validation rejects (+Infinity) and one whose
    observation FerretDB refuses sends only those two to the DLQ, each with its
    own reason, and commits the rest once;
  - SIGKILL again and again while large batches are being written, restart:
    every document and every record exactly once (pymongo counts, a
    read_committed consumer);
  - insights of one batch for the same component and problem make one
    hypothesis; the others are suppressed, across kills too.
"""
import random
import time
import uuid

import hive_avro
from conftest import producer, read_committed
from test_optimizer_flow import insight
from test_telemetry_intake import high_watermark, insights_by_window, metric_value, telemetry


def produce(topic, records, name="TelemetryAggregated", key="service"):
    p = producer()
    for rec in records:
        while True:
            try:
                p.produce(topic, key=rec[key].encode(), value=hive_avro.encode(name, rec))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0, "producer could not deliver every record"


def dlq_reasons(topic, expected, timeout=90):
    msgs = read_committed(topic, expected=expected, timeout=timeout)
    return {m.key().decode(): dict(m.headers() or []).get("dlq.error.reason", b"").decode() for m in msgs}, msgs


def test_one_batch_rejects_only_its_bad_records_and_commits_the_rest_once(topics, optimizer, mongo):
    # SLO_COMPLIANCE_THRESHOLD=1 leaves no error budget: a window below 100 %
    # compliance gets an infinite severity, which passes the record's
    # validation but which FerretDB refuses to store (a non-finite double).
    optimizer.env["SLO_COMPLIANCE_THRESHOLD"] = "1"
    good = []
    for i in range(60):
        rec = telemetry(i, degraded=False, service=f"svc-{i % 5}")
        rec["slo_compliance"] = 1.0
        if i % 2 == 0:
            rec["latency_p95_ms"] = 1500.0  # degraded, finite severity
        good.append(rec)
    refused = telemetry(100, degraded=False, service="refused")
    refused["slo_compliance"] = 0.999  # degraded with severity +inf
    invalid = telemetry(101, degraded=True, service="invalid")
    invalid["latency_p95_ms"] = float("inf")  # outside the schema's declared range
    records = good[:30] + [refused] + good[30:45] + [invalid] + good[45:]
    want = {(r["service"], r["window_end"]) for r in good if r["latency_p95_ms"] > 1000}
    assert len(want) == 30

    # Everything is in the topic before the service starts: its first
    # transaction takes all 62 records (KAFKA_MAX_BATCH 500).
    produce(topics["telemetry"], records)
    optimizer.start()

    reasons, dlq = dlq_reasons(topics["dlq"], expected=2)
    assert set(reasons) == {"refused", "invalid"}, reasons
    assert "latency_p95_ms" in reasons["invalid"] and "Infinity" in reasons["invalid"], reasons["invalid"]
    assert reasons["refused"].startswith("storing the observation"), reasons["refused"]
    assert "EREJECTED" in reasons["refused"], reasons["refused"]

    msgs = read_committed(topics["insights"], expected=len(want), timeout=90, settle=5)
    got = insights_by_window(msgs)
    assert set(got) == want
    assert all(len(v) == 1 for v in got.values())
    assert len(msgs) == len(want)
    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    ids = {hive_avro.decode("Insight", m.value())["insight_id"] for m in msgs}
    assert {d["_id"] for d in db.telemetry_observations.find({}, {"_id": 1})} == ids
    assert db.telemetry_observations.count_documents({"service": {"$in": ["refused", "invalid"]}}) == 0
    assert metric_value(optimizer, "telemetry_records_total") == len(good) + 1  # the refused one was read
    assert metric_value(optimizer, "dlq_messages_total") == 2


def test_sigkill_during_bulk_writes_keeps_every_document_and_record_once(topics, optimizer, mongo):
    n = 20_000
    rnd = random.Random(11)
    records = [telemetry(i, degraded=rnd.random() < 0.5) for i in range(n)]
    want = {(r["service"], r["window_end"]) for r in records
            if r["latency_p95_ms"] > 1000 or r["error_rate"] > 0.01 or r["slo_compliance"] < 0.99}
    produce(topics["telemetry"], records)
    db = mongo[optimizer.env["MONGODB_DATABASE"]]

    optimizer.start()
    kills = 0
    last = 0
    mid_stream = 0
    # Kill as soon as the restarted service has written something more, so
    # the kills land while batches of up to 500 are being stored and produced.
    for _ in range(4):
        deadline = time.time() + 180
        while time.time() < deadline and db.telemetry_observations.count_documents({}) <= last:
            time.sleep(0.1)
        time.sleep(rnd.random() * 0.3)
        optimizer.kill9()
        kills += 1
        stored = db.telemetry_observations.count_documents({})
        assert stored >= last
        mid_stream += stored < len(want)
        last = stored
        optimizer.start()
    assert kills == 4
    assert mid_stream >= 2, "the backlog was done before the kills: nothing was tested mid-stream"

    msgs = read_committed(topics["insights"], expected=len(want), timeout=300, settle=5)
    got = insights_by_window(msgs)
    dupes = {k: len(v) for k, v in got.items() if len(v) > 1}
    missing = want - set(got)
    assert not dupes, f"{len(dupes)} windows produced more than one insight, e.g. {list(dupes.items())[:3]}"
    assert not missing, f"{len(missing)} degraded windows produced no insight, e.g. {list(missing)[:3]}"
    assert set(got) == want and len(msgs) == len(want)
    assert db.telemetry_observations.count_documents({}) == len(want)
    ids = {hive_avro.decode("Insight", m.value())["insight_id"] for m in msgs}
    assert {d["_id"] for d in db.telemetry_observations.find({}, {"_id": 1})} == ids


def test_insight_batches_debounce_inside_the_batch_and_survive_sigkill(topics, optimizer, mongo):
    """Insights for 600 distinct components, each sent three times with
    distinct insight ids (same component and problem), all in the topic
    before the start: one hypothesis and one ExperimentRequest per component,
    the two others suppressed, also across SIGKILLs mid-batch."""
    # Greedy and without approvals, as in test_optimizer_flow.
    optimizer.env.update({"EXPLORATION_RATE": "0", "EPSILON_MIN": "0", "POLICY_SEED": "42",
                          "APPROVAL_RISK_THRESHOLD": "1"})
    tag = uuid.uuid4().hex[:6]
    components = [f"comp-{tag}-{i}" for i in range(600)]
    records = [insight(c) for _ in range(3) for c in components]
    random.Random(3).shuffle(records)
    produce(topics["insights"], records, name="Insight", key="component")
    db = mongo[optimizer.env["MONGODB_DATABASE"]]

    optimizer.start()
    for k in (1, 2):
        deadline = time.time() + 180
        while time.time() < deadline and db.optimizations.estimated_document_count() < len(components) * k // 3:
            time.sleep(0.05)
        optimizer.kill9()
        optimizer.start()
    assert db.optimizations.estimated_document_count() < len(components), "done before the last kill"

    def settled():
        """Per component: its hypotheses; done when one is open or all three
        insights made a hypothesis (the policy may choose no change, which is
        REJECTED at once and does not debounce the next insight)."""
        by = {}
        for h in db.optimizations.find({}, {"component": 1, "status": 1}):
            by.setdefault(h["component"], []).append(h)
        done = all(any(h["status"] != "REJECTED" for h in by.get(c, [])) or len(by.get(c, [])) == 3
                   for c in components)
        return done, by

    deadline = time.time() + 300
    done, by_component = settled()
    while time.time() < deadline and not done:
        time.sleep(0.5)
        done, by_component = settled()
    assert done, "not every insight was handled within 300 s"
    assert set(by_component) == set(components)
    opened = []
    for c, hs in by_component.items():
        live = [h for h in hs if h["status"] != "REJECTED"]
        assert len(live) <= 1, f"{c} has {len(live)} open hypotheses"
        assert len(hs) <= 3
        opened += live
    assert opened, "the policy changed nothing at all: the debounce was not exercised"
    assert sum(len(hs) for hs in by_component.values()) < len(records), "nothing was suppressed"
    assert {h["status"] for h in opened} == {"EXPERIMENTING"}

    reqs = read_committed(topics["experiments_requests"], expected=len(opened), timeout=120, settle=5)
    ids = [hive_avro.decode("ExperimentRequest", m.value())["optimization_id"] for m in reqs]
    assert len(ids) == len(set(ids)), "an ExperimentRequest was produced twice"
    assert set(ids) == {h["_id"] for h in opened}
