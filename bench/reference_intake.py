#!/usr/bin/env python3
"""The telemetry -> insight job as a user would otherwise write it in Python: the
reference that ./hive bench measures the optimizer's intake against.

confluent-kafka with transactions (read_committed consumer, transactional
producer, offsets committed in the transaction), fastavro to decode each
TelemetryAggregated and encode each Insight (Confluent framing, via
scripts/hive_avro.py), the degradation rule of optimizer/degradation.c, and one
pymongo write per degraded window (insert keyed by the insight id; a duplicate
means a replay and is skipped), then the Insight is produced, keyed by component.

    reference_intake.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP MONGODB_URI DATABASE RECORDS

Prints one JSON line when RECORDS records are done: records, the seconds from
the first record consumed to the last transaction committed, records per second.
"""
import hashlib
import json
import os
import sys
import time

import pymongo
from confluent_kafka import Consumer, KafkaException, Producer
from pymongo.errors import DuplicateKeyError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import hive_avro  # noqa: E402

# The seed's thresholds (optimizer/degradation.h).
SLO_MIN, P95_MAX_MS, ERROR_RATE_MAX = 0.99, 1000.0, 0.01
BATCH = 500


def degradation(t):
    """optimizer/degradation.c: the broken rules, the worst one, its severity and priority."""
    v = []
    if t["slo_compliance"] < SLO_MIN:
        v.append(("slo_compliance", t["slo_compliance"], SLO_MIN, (SLO_MIN - t["slo_compliance"]) / (1 - SLO_MIN)))
    if t["latency_p95_ms"] > P95_MAX_MS:
        v.append(("latency_p95_ms", t["latency_p95_ms"], P95_MAX_MS, t["latency_p95_ms"] / P95_MAX_MS - 1))
    if t["error_rate"] > ERROR_RATE_MAX:
        v.append(("error_rate", t["error_rate"], ERROR_RATE_MAX, t["error_rate"] / ERROR_RATE_MAX - 1))
    if not v:
        return None
    worst = max(v, key=lambda x: x[3])
    priority = "CRITICAL" if len(v) >= 2 or worst[3] >= 1 else "HIGH"
    h = hashlib.blake2b(f"{t['service']}\0{t['window_start']}\0{t['window_end']}".encode(), digest_size=8)
    return {
        "insight_id": "ins-" + h.hexdigest(),
        "metric": worst[0], "current_value": worst[1], "baseline_value": worst[2], "severity": worst[3],
        "priority": priority, "violations": ",".join(x[0] for x in v),
    }


def main():
    bootstrap, in_topic, out_topic, group, uri, database, want = sys.argv[1:8]
    want = int(want)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"reference-{group}",
                         "linger.ms": 10, "compression.type": "snappy"})
    producer.init_transactions(30)
    observations = pymongo.MongoClient(uri)[database]["telemetry_observations"]
    consumer.subscribe([in_topic])
    done, first = 0, None
    while done < want:
        msgs = consumer.consume(num_messages=BATCH, timeout=1.0)
        if not msgs:
            continue
        first = first or time.perf_counter()
        producer.begin_transaction()
        for m in msgs:
            if m.error():
                raise KafkaException(m.error())
            t = hive_avro.decode("TelemetryAggregated", m.value())
            d = degradation(t)
            if d is not None:
                try:
                    observations.insert_one({"_id": d["insight_id"], "service": t["service"],
                                             "window_start": t["window_start"], "window_end": t["window_end"],
                                             "metric": d["metric"], "severity": d["severity"],
                                             "priority": d["priority"], "violations": d["violations"],
                                             "topic": m.topic(), "partition": m.partition(), "offset": m.offset()})
                except DuplicateKeyError:
                    pass  # a replay: stored before
                insight = {
                    "schema_version": 1, "insight_id": d["insight_id"], "source": "optimizer.telemetry",
                    "type": "DEGRADATION", "priority": d["priority"], "component": t["service"],
                    "metric": d["metric"], "current_value": d["current_value"],
                    "baseline_value": d["baseline_value"],
                    "description": f"{d['metric']} {d['current_value']} against {d['baseline_value']}",
                    "timestamp": t["window_end"], "labels": {"violations": d["violations"]},
                }
                producer.produce(out_topic, key=t["service"].encode(), value=hive_avro.encode("Insight", insight))
            producer.poll(0)
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata())
        producer.commit_transaction()
        done += len(msgs)
    seconds = time.perf_counter() - first
    consumer.close()
    print(json.dumps({"records": done, "seconds": round(seconds, 3), "records_per_second": round(done / seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
