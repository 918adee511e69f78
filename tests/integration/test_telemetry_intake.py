"""The walking skeleton: the optimizer's telemetry intake on the real stack.

An independent producer (confluent-kafka + fastavro, Confluent framing) writes
TelemetryAggregated records; the C optimizer decodes them, detects the seed's
degradations, stores each observation in MongoDB and produces one Insight per
degraded window inside a Kafka transaction; an independent read_committed
consumer decodes what it produced.
"""
import random
import subprocess
import time

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

import hive_avro
from conftest import BOOTSTRAP, producer, read_committed
from hive_client import telemetry
from private_ferretdb import PrivateFerretDB



def expected_rule(rec):
    if rec["latency_p95_ms"] > 1000:
        return "latency_p95_ms"
    if rec["error_rate"] > 0.01:
        return "error_rate"
    return "slo_compliance"


def produce(topic, records, raw=()):
    p = producer()
    for rec in records:
        p.produce(topic, key=rec["service"].encode(), value=hive_avro.encode("TelemetryAggregated", rec))
    for key, value in raw:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0, "producer could not deliver every record"


def insights_by_window(msgs):
    out = {}
    for m in msgs:
        ins = hive_avro.decode("Insight", m.value())
        out.setdefault((ins["component"], ins["timestamp"]), []).append(ins)
    return out


def test_independent_producer_and_consumer_interoperate(topics, optimizer, mongo):
    records = [telemetry(i, degraded=(i % 2 == 0)) for i in range(40)]
    degraded = [r for r in records if (r["latency_p95_ms"] > 1000 or
                r["error_rate"] > 0.01 or r["slo_compliance"] < 0.99)]
    assert len(degraded) == 20
    optimizer.start()
    produce(topics["telemetry"], records)

    msgs = read_committed(topics["insights"], expected=len(degraded), timeout=90)
    got = insights_by_window(msgs)
    assert len(msgs) == len(degraded), f"expected {len(degraded)} insights, got {len(msgs)}"
    for rec in degraded:
        ins = got[(rec["service"], rec["window_end"])]
        assert len(ins) == 1
        ins = ins[0]
        assert ins["type"] == "DEGRADATION"
        # p95 1500 ms is 0.5 over its limit (HIGH); error rate 0.05 and SLO 0.97 are
        # 4 and 2 times over theirs (CRITICAL).
        assert ins["priority"] == ("HIGH" if expected_rule(rec) == "latency_p95_ms" else "CRITICAL")
        assert ins["metric"] == expected_rule(rec)
        assert ins["insight_id"].startswith("ins-")
        assert ins["source"]
        assert ins["description"]
    # The Insight is keyed by component (DESIGN.md topic table).
    assert all(m.key().decode() == hive_avro.decode("Insight", m.value())["component"] for m in msgs)
    # One observation per degraded window in MongoDB, keyed by the insight id.
    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    ids = {hive_avro.decode("Insight", m.value())["insight_id"] for m in msgs}
    stored = {d["_id"] for d in db.telemetry_observations.find({}, {"_id": 1})}
    assert stored == ids


def high_watermark(topic, partitions=3):
    """Sum of the partitions' end offsets: a cheap progress signal (it counts
    transaction markers and aborted records too, so it is no result)."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "wm-" + topic})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in range(partitions))
    finally:
        c.close()


def test_sigkill_twice_mid_stream_loses_and_duplicates_nothing(topics, optimizer, mongo):
    n = 10_000
    rnd = random.Random(7)
    records = [telemetry(i, degraded=rnd.random() < 0.5) for i in range(n)]
    want = {(r["service"], r["window_end"]) for r in records
            if r["latency_p95_ms"] > 1000 or r["error_rate"] > 0.01 or r["slo_compliance"] < 0.99}
    produce(topics["telemetry"], records)

    # Small transactions, so that a kill often lands inside one.
    optimizer.env["KAFKA_MAX_BATCH"] = "50"
    optimizer.start()
    kills = 0
    # Kill the service with SIGKILL twice while it is mid-stream, restart it each time.
    for threshold in (len(want) // 4, len(want) // 2):
        deadline = time.time() + 120
        while time.time() < deadline and high_watermark(topics["insights"]) < threshold:
            time.sleep(0.05)
        optimizer.kill9()
        kills += 1
        optimizer.start()
    assert kills == 2
    at_kill = high_watermark(topics["insights"])
    assert at_kill < len(want) * 1.05, "the stream finished before the second kill: nothing was tested mid-stream"

    msgs = read_committed(topics["insights"], expected=len(want), timeout=240, settle=5)
    got = insights_by_window(msgs)
    dupes = {k: len(v) for k, v in got.items() if len(v) > 1}
    missing = want - set(got)
    extra = set(got) - want
    assert not dupes, f"{len(dupes)} windows produced more than one insight, e.g. {list(dupes.items())[:3]}"
    assert not missing, f"{len(missing)} degraded windows produced no insight, e.g. {list(missing)[:3]}"
    assert not extra, f"insights for healthy windows: {list(extra)[:3]}"
    assert len(msgs) == len(want)
    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    assert db.telemetry_observations.count_documents({}) == len(want)


def test_malformed_records_go_to_dlq_and_the_stream_goes_on(topics, optimizer):
    good_before = telemetry(0, degraded=True)
    good_after = telemetry(3, degraded=True)
    invalid_window = telemetry(6, degraded=True)
    invalid_window["window_end"] = invalid_window["window_start"] - 1
    raw = [
        (b"garbage", b"this is not avro"),
        (b"badmagic", b"\x07\x00\x00\x03\xe9" + b"\x00" * 20),
        (b"unknown-id", b"\x00\x7f\xff\xff\xf0" + b"\x02"),
        (b"truncated", hive_avro.encode("TelemetryAggregated", telemetry(9, True))[:12]),
        (b"wrong-record", hive_avro.encode("Insight", {
            "schema_version": 1, "insight_id": "x", "source": "t", "type": "ANOMALY", "priority": "HIGH",
            "component": "c", "metric": "m", "current_value": 1.0, "baseline_value": 0.0,
            "description": "d", "timestamp": 1, "labels": {}})),
        (invalid_window["service"].encode(), hive_avro.encode("TelemetryAggregated", invalid_window)),
    ]
    optimizer.start()
    produce(topics["telemetry"], [good_before])
    produce(topics["telemetry"], [], raw=raw)
    produce(topics["telemetry"], [good_after])

    dlq = read_committed(topics["dlq"], expected=len(raw), timeout=90)
    assert len(dlq) == len(raw), f"expected {len(raw)} records in the DLQ, got {len(dlq)}"
    by_key = {m.key(): m for m in dlq}
    for key, value in raw:
        m = by_key[key]
        assert m.value() == value, "the DLQ must carry the original bytes"
        headers = dict(m.headers() or [])
        reason = headers.get("dlq.error.reason", b"").decode()
        assert reason, f"no reason header on the DLQ record for {key}"
        assert headers.get("dlq.original.topic", b"").decode() == topics["telemetry"]
    reason = dict(by_key[b"badmagic"].headers())["dlq.error.reason"].decode()
    assert "magic" in reason, reason
    reason = dict(by_key[b"unknown-id"].headers())["dlq.error.reason"].decode()
    assert "schema id" in reason, reason

    msgs = read_committed(topics["insights"], expected=2, timeout=60)
    assert len(msgs) == 2, f"the good records around the bad ones must both produce insights, got {len(msgs)}"
    dlq_count = metric_value(optimizer, "dlq_messages_total")
    assert dlq_count == len(raw), f"dlq_messages_total = {dlq_count}, expected {len(raw)}"


def metric_value(svc, name):
    text = requests.get(svc.url("/metrics"), timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def private_mongo(topics, optimizer):
    """A private FerretDB the optimizer uses, so that killing it leaves the
    shared stack alone."""
    db = PrivateFerretDB(topics["tag"])
    try:
        db.start()
        optimizer.env["MONGODB_URI"] = db.uri
        yield db
    finally:
        db.close()


def test_metrics_pass_promtool_and_ready_follows_mongodb(topics, optimizer, private_mongo):
    optimizer.start()
    produce(topics["telemetry"], [telemetry(1, True)])
    assert len(read_committed(topics["insights"], expected=1, timeout=60)) == 1

    text = requests.get(optimizer.url("/metrics"), timeout=5).text
    for name in ("kafka_consumer_lag", "dlq_messages_total", "optimization_processing_duration_seconds"):
        assert name in text, f"{name} missing from /metrics"
    check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert check.returncode == 0, f"promtool check metrics failed: {check.stdout!r} {check.stderr!r}"

    # Stop MongoDB: /ready turns false, records produced meanwhile wait.
    private_mongo.kill()
    try:
        records = [telemetry(100 + i, True) for i in range(50)]
        produce(topics["telemetry"], records)
        optimizer.wait_ready(False, timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline:
            body = requests.get(optimizer.url("/ready"), timeout=5).json()
            if body["checks"]["mongodb"]["ok"] is False:
                break
            time.sleep(0.2)
        assert body["checks"]["mongodb"]["ok"] is False, body
        assert metric_value(optimizer, "mongodb_up") == 0
    finally:
        private_mongo.start()
    optimizer.wait_ready(True, timeout=90)

    msgs = read_committed(topics["insights"], expected=51, timeout=120)
    got = insights_by_window(msgs)
    assert len(msgs) == 51, f"expected 51 insights after MongoDB returned, got {len(msgs)}"
    assert all(len(v) == 1 for v in got.values())
