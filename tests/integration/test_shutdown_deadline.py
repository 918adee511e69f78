"""SIGTERM while MongoDB is frozen with a transaction in flight: the shutdown
deadline ends the process cleanly.

The optimizer runs against a PRIVATE FerretDB (its own port and data directory
under .hive/tmp; the shared one is never touched) and the shared Kafka with this
test's topics. Once it has processed telemetry, FerretDB is frozen with SIGSTOP,
more degraded telemetry is produced, and as soon as the optimizer has taken that
batch (its worker thread is then blocked on the frozen store) it gets SIGTERM.
The "kafka" stage cannot finish, so at the 10 s deadline the process must exit
with status 75 (common/lifecycle.h, LIFECYCLE_EXIT_DEADLINE): not killed by a
signal, no libuv assertion, no sanitizer report, and a log line naming the stage
that did not finish. FerretDB is resumed and stopped at the end.
"""
import json
import os
import signal
import subprocess
import time

import pymongo
import pytest
import requests

import hive_avro
from conftest import ROOT, producer, read_committed
from private_ferretdb import PrivateFerretDB

@pytest.fixture
def private_ferretdb(topics):
    """A FerretDB of its own (private_ferretdb.py): (process, uri)."""
    db = PrivateFerretDB(topics["tag"])
    try:
        db.start()
        yield db.proc, db.uri
    finally:
        db.close()


def telemetry(i):
    """A degraded window (p95 above 1000 ms): the intake stores it in MongoDB."""
    return {
        "schema_version": 1, "service": f"svc-{i % 3}",
        "window_start": 1_700_000_000_000 + i * 60_000, "window_end": 1_700_000_000_000 + (i + 1) * 60_000,
        "request_count": 1000, "error_count": 1, "error_rate": 0.001, "latency_p50_ms": 80.0,
        "latency_p95_ms": 1500.0, "latency_p99_ms": 2000.0, "slo_compliance": 0.999, "availability": 1.0,
        "variant": None, "experiment_id": None, "metrics": {},
    }


def produce(topic, records):
    p = producer()
    for rec in records:
        p.produce(topic, key=rec["service"].encode(), value=hive_avro.encode("TelemetryAggregated", rec))
    assert p.flush(30) == 0


def consumed(svc, topic):
    for line in requests.get(svc.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith("kafka_messages_consumed_total{") and f'topic="{topic}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigterm_with_frozen_mongodb_exits_at_the_deadline_without_abort(topics, optimizer, private_ferretdb):
    ferret, uri = private_ferretdb
    # A store call to the frozen server blocks longer than the shutdown deadline.
    optimizer.env["MONGODB_URI"] = uri + "/?socketTimeoutMS=60000"
    optimizer.start()
    produce(topics["telemetry"], [telemetry(i) for i in range(5)])
    assert len(read_committed(topics["insights"], expected=5, timeout=90, settle=1)) == 5
    before = consumed(optimizer, topics["telemetry"])
    assert before >= 5

    ferret.send_signal(signal.SIGSTOP)
    try:
        produce(topics["telemetry"], [telemetry(100 + i) for i in range(5)])
        # Wait until the optimizer took the new batch: its worker is now blocked on the store.
        deadline = time.time() + 60
        while consumed(optimizer, topics["telemetry"]) <= before:
            assert time.time() < deadline, "the optimizer did not consume the records produced after the freeze"
            time.sleep(0.2)
        optimizer.proc.send_signal(signal.SIGTERM)
        try:
            code = optimizer.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            optimizer.proc.kill()
            optimizer.proc.wait()
            raise AssertionError("the optimizer did not exit after SIGTERM with MongoDB frozen")
    finally:
        ferret.send_signal(signal.SIGCONT)

    log_path = os.path.join(ROOT, ".hive", "test-results", "service-logs", f"{optimizer.name}.{optimizer.starts}.log")
    with open(log_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    assert code == 75, f"exit status {code} (negative: killed by a signal); log tail:\n{log[-3000:]}"
    for bad in ("Assertion", "AddressSanitizer", "LeakSanitizer", "runtime error:", "core dumped"):
        assert bad not in log, f"{bad!r} in the optimizer's output:\n{log[-3000:]}"
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    stopping = [e for e in lines if e.get("msg") == "kafka pipeline stopping"]
    assert stopping and stopping[0]["in_flight"] == "true", "SIGTERM did not find a transaction in flight"
    deadline_lines = [e for e in lines if e.get("msg", "").startswith("shutdown deadline passed")]
    assert len(deadline_lines) == 1, f"no deadline line in the log:\n{log[-3000:]}"
    assert deadline_lines[0]["level"] == "error"
    assert deadline_lines[0]["stage"] == "kafka", deadline_lines[0]
    assert deadline_lines[0]["requests_in_flight"] != "0", deadline_lines[0]
    # The fixture must not SIGTERM it again: it has exited.
    optimizer.starts = 0
