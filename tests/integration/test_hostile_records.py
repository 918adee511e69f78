"""Hostile records: valid Avro whose values are out of the declared ranges.

1,000 TelemetryAggregated and Insight records of 33 kinds (infinities, NaN,
negative counts, rates outside [0, 1], windows at -2^62 or ending before they
start, strings with a NUL byte, invalid UTF-8, control characters, empty or
oversized names, too many map entries...), produced with fastavro and
confluent-kafka, interleaved with good degraded windows. Every hostile record
must land in its topic's DLQ with a reason naming the field (common/avro_validate.c,
rules in the hive.* attributes of schemas/avro), none may become an insight, an
observation or a hypothesis, and each good window must give exactly one insight.
"""
import math
import re

import requests

import hive_avro
from conftest import producer, read_committed

BASE_MS = 1_700_000_000_000
WINDOW_MS = 60_000


def telemetry(i, service=None):
    """A degraded window (p95 above 1000 ms): accepted, it would become an insight."""
    return {
        "schema_version": 1,
        "service": f"svc-{i % 5}" if service is None else service,
        "window_start": BASE_MS + i * WINDOW_MS,
        "window_end": BASE_MS + (i + 1) * WINDOW_MS,
        "request_count": 1000,
        "error_count": 2,
        "error_rate": 0.002,
        "latency_p50_ms": 90.0,
        "latency_p95_ms": 1500.0,
        "latency_p99_ms": 2500.0,
        "slo_compliance": 0.995,
        "availability": 1.0,
        "variant": None,
        "experiment_id": None,
        "metrics": {"cpu": 0.5},
    }


def insight(i):
    """A CRITICAL insight: accepted, it would become a hypothesis."""
    return {
        "schema_version": 1,
        "insight_id": f"ins-hostile-{i}",
        "source": "analyst-agents",
        "type": "DEGRADATION",
        "priority": "CRITICAL",
        "component": f"comp-{i}",
        "metric": "latency_p95_ms",
        "current_value": 1800.0,
        "baseline_value": 800.0,
        "description": "p95 latency above target",
        "timestamp": BASE_MS + i,
        "labels": {"problem": "LATENCY"},
    }


def with_(rec, **fields):
    out = dict(rec)
    out.update(fields)
    return out


def bad_utf8(name, rec, field, placeholder):
    """`rec` encoded with `placeholder` in `field`, then its bytes replaced by
    invalid UTF-8 of the same length (fastavro only writes valid strings)."""
    data = hive_avro.encode(name, dict(rec, **{field: placeholder}))
    assert data.count(placeholder.encode()) == 1
    return data.replace(placeholder.encode(), b"svc-\xc3\x28")


# (kind, record type, field the reason must name, builder(i) -> bytes)
TELEMETRY_KINDS = [
    ("p95 +Infinity", "latency_p95_ms", lambda i: with_(telemetry(i), latency_p95_ms=math.inf)),
    ("p99 -Infinity", "latency_p99_ms", lambda i: with_(telemetry(i), latency_p99_ms=-math.inf)),
    ("p50 NaN", "latency_p50_ms", lambda i: with_(telemetry(i), latency_p50_ms=math.nan)),
    ("p95 above an hour", "latency_p95_ms", lambda i: with_(telemetry(i), latency_p95_ms=4e6)),
    ("error rate above 1", "error_rate", lambda i: with_(telemetry(i), error_rate=1.5)),
    ("error rate negative", "error_rate", lambda i: with_(telemetry(i), error_rate=-0.1)),
    ("slo NaN", "slo_compliance", lambda i: with_(telemetry(i), slo_compliance=math.nan)),
    ("slo above 1", "slo_compliance", lambda i: with_(telemetry(i), slo_compliance=2.0)),
    ("availability negative", "availability", lambda i: with_(telemetry(i), availability=-1.0)),
    ("negative request count", "request_count", lambda i: with_(telemetry(i), request_count=-1, error_count=-2)),
    ("negative error count", "error_count", lambda i: with_(telemetry(i), error_count=-5)),
    # The record-level rule error_count <= request_count names both fields.
    ("more errors than requests", "request_count", lambda i: with_(telemetry(i), error_count=1001)),
    ("window at -2^62", "window_start", lambda i: with_(telemetry(i), window_start=-(2 ** 62))),
    ("window ends before it starts", "window_end",
     lambda i: with_(telemetry(i), window_end=BASE_MS + i * WINDOW_MS - 1)),
    ("window in 2200", "window_end", lambda i: with_(telemetry(i), window_end=7_258_118_400_000)),
    ("service with a NUL byte", "service", lambda i: telemetry(i, service=f"svc-{i % 5}\x00evil")),
    ("service empty", "service", lambda i: telemetry(i, service="")),
    ("service of 300 bytes", "service", lambda i: telemetry(i, service="s" * 300)),
    ("service with a space", "service", lambda i: telemetry(i, service="svc 1")),
    ("service not UTF-8", "service", lambda i: ("raw", bad_utf8("TelemetryAggregated", telemetry(i), "service", "svc-XX"))),
    ("metric +Infinity", "metrics", lambda i: with_(telemetry(i), metrics={"cpu": math.inf})),
    ("metric key with a space", "metrics", lambda i: with_(telemetry(i), metrics={"cpu load": 0.5})),
    ("300 metrics", "metrics", lambda i: with_(telemetry(i), metrics={f"m{k}": 1.0 for k in range(300)})),
    ("variant with a control character", "variant", lambda i: with_(telemetry(i), variant="exp\x1b[0m")),
    ("experiment id empty", "experiment_id", lambda i: with_(telemetry(i), experiment_id="")),
    ("schema version 0", "schema_version", lambda i: with_(telemetry(i), schema_version=0)),
]
INSIGHT_KINDS = [
    ("current value +Infinity", "current_value", lambda i: with_(insight(i), current_value=math.inf)),
    ("baseline NaN", "baseline_value", lambda i: with_(insight(i), baseline_value=math.nan)),
    ("component with a NUL byte", "component", lambda i: with_(insight(i), component="orchestrator\x00x")),
    ("insight id empty", "insight_id", lambda i: with_(insight(i), insight_id="")),
    ("description with a bell", "description", lambda i: with_(insight(i), description="ring\x07")),
    ("timestamp -1", "timestamp", lambda i: with_(insight(i), timestamp=-1)),
    ("label value on two lines", "labels", lambda i: with_(insight(i), labels={"problem": "LATENCY\nx"})),
    ("metric name with a space", "metric", lambda i: with_(insight(i), metric="p95 latency")),
]


def metric_total(svc, name):
    total = 0.0
    for line in requests.get(svc.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_hostile_records_go_to_the_dlq_naming_the_field(topics, optimizer, mongo):
    kinds = [("TelemetryAggregated", topics["telemetry"]) + k for k in TELEMETRY_KINDS] + \
            [("Insight", topics["insights"]) + k for k in INSIGHT_KINDS]
    assert len(kinds) >= 20
    hostile = {}  # key -> (topic, kind, field)
    good = set()  # (service, window_end) of the good degraded windows
    p = producer()
    n_hostile, n_good = 1000, 100
    for i in range(n_hostile):
        name, topic, kind, field, build = kinds[i % len(kinds)]
        rec = build(i)
        data = rec[1] if isinstance(rec, tuple) else hive_avro.encode(name, rec)
        key = f"hostile-{i}"
        hostile[key] = (topic, kind, field)
        p.produce(topic, key=key.encode(), value=data)
        if i % 10 == 0:
            # A good degraded window between the hostile ones, on a window no hostile record uses.
            j = n_hostile + i
            rec = telemetry(j)
            good.add((rec["service"], rec["window_end"]))
            p.produce(topics["telemetry"], key=rec["service"].encode(),
                      value=hive_avro.encode("TelemetryAggregated", rec))
    assert p.flush(60) == 0, "the producer could not deliver every record"
    assert len(good) == n_good
    optimizer.start()

    n_tel = sum(1 for t, _, _ in hostile.values() if t == topics["telemetry"])
    dlq = read_committed(topics["telemetry"] + ".dlq", expected=n_tel, timeout=180)
    dlq += read_committed(topics["insights"] + ".dlq", expected=n_hostile - n_tel, timeout=120)
    got = {}
    for m in dlq:
        key = m.key().decode()
        assert key in hostile, f"a record that is not hostile went to the DLQ: {key} {dict(m.headers() or [])}"
        assert key not in got, f"{key} is twice in the DLQ"
        got[key] = dict(m.headers() or []).get("dlq.error.reason", b"").decode()
    missing = sorted(set(hostile) - set(got), key=lambda k: int(k.split("-")[1]))
    assert not missing, (f"{len(missing)} hostile records are not in the DLQ, e.g. "
                         f"{[(k, hostile[k][1]) for k in missing[:5]]}")
    # The validator's reasons start with the field; the decoder's (invalid UTF-8) name it in parentheses.
    wrong = [(hostile[k][1], hostile[k][2], r) for k, r in got.items()
             if not re.search(r"\b%s\b" % re.escape(hostile[k][2]), r)]
    assert not wrong, f"{len(wrong)} DLQ reasons do not name the field, e.g. {wrong[:5]}"
    # The reason says what was accepted, not only which field.
    examples = {hostile[k][1]: r for k, r in got.items()}
    assert examples["p95 +Infinity"] == "latency_p95_ms: +Infinity outside [0, 3600000]", examples["p95 +Infinity"]
    assert "NUL" in examples["service with a NUL byte"], examples["service with a NUL byte"]
    assert "[0, 1]" in examples["error rate above 1"], examples["error rate above 1"]
    assert "window_start" in examples["window ends before it starts"]
    assert "error_count" in examples["more errors than requests"]

    # Exactly one insight per good window, and none from a hostile record.
    msgs = read_committed(topics["insights"], expected=n_good + (n_hostile - n_tel), timeout=120, settle=5)
    produced = [m for m in msgs if not (m.key() or b"").startswith(b"hostile-")]
    windows = [(ins["component"], ins["timestamp"]) for ins in
               (hive_avro.decode("Insight", m.value()) for m in produced)]
    assert len(windows) == len(set(windows)), "a good window produced two insights"
    assert set(windows) == good, (f"insights do not match the good windows: missing {list(good - set(windows))[:3]}, "
                                  f"extra {list(set(windows) - good)[:3]}")

    db = mongo[optimizer.env["MONGODB_DATABASE"]]
    assert db.telemetry_observations.count_documents({}) == n_good
    hostile_insights = [f"ins-hostile-{i}" for i in range(n_hostile)]
    assert db.optimizations.count_documents({"insight_id": {"$in": hostile_insights}}) == 0
    assert metric_total(optimizer, "dlq_messages_total") == n_hostile
