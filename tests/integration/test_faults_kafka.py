"""Kafka faults, on a private broker (private_kafka.py): the shared broker of the
stack is never stopped. The optimizer is the service under test; MongoDB is the
stack's, with one database per test.

- a 1 MiB malformed record among 1,000 good ones is dead-lettered (truncated,
  with its reason, coordinates and size) and every good record's output
  appears exactly once;
- /ready goes false within 5 s of the broker stopping and comes back by
  itself when it restarts, with the same service process;
- a replica killed with SIGKILL and restarted with the same transactional id
  resumes within 10 s (static membership: it need not wait for the session
  timeout of its previous incarnation);
- a static member fenced by the coordinator (FENCED_INSTANCE_ID, a fatal
  consumer error in librdkafka) is replaced inside the same process, and
  every record's output appears exactly once.
"""
import os
import random
import signal
import time
import uuid

import pymongo
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition

import hive_avro
from conftest import LOGS, MONGODB_URI, ROOT, Service, free_port
from private_kafka import PrivateKafka
from test_telemetry_intake import telemetry

ONE_MIB = 1 << 20
DLQ_PREFIX = 65536  # KAFKA_DLQ_PREFIX_BYTES


@pytest.fixture(scope="module")
def kafka():
    broker = PrivateKafka()
    broker.start()
    yield broker
    broker.destroy()


@pytest.fixture
def svc(kafka):
    """The optimizer on the private broker, with this test's topics, group,
    transactional id and database (not started). Its `.topics` maps roles to names."""
    tag = uuid.uuid4().hex[:10]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TELEMETRY_TOPIC": f"telemetry.aggregated.f{tag}",
        "KAFKA_INSIGHTS_TOPIC": f"insights.generated.f{tag}",
        "KAFKA_APPROVALS_REQUESTS_TOPIC": f"approvals.requests.f{tag}",
        "KAFKA_APPROVALS_RESPONSES_TOPIC": f"approvals.responses.f{tag}",
        "KAFKA_EXPERIMENT_REQUESTS_TOPIC": f"experiments.requests.f{tag}",
        "KAFKA_EXPERIMENTS_TOPIC": f"experiments.results.f{tag}",
        "KAFKA_COMMANDS_TOPIC": f"optimization.commands.f{tag}",
        "KAFKA_OPTIMIZATION_TOPIC": f"optimization.applied.f{tag}",
        "KAFKA_CONSUMER_GROUP": f"optimizer-f{tag}",
        "KAFKA_TRANSACTIONAL_ID": f"optimizer-f{tag}",
        "MONGODB_URI": MONGODB_URI,
        "MONGODB_DATABASE": f"ftest_{tag}",
        "HTTP_PORT": str(free_port()),
        "GRPC_PORT": str(free_port()),
        "POLICY_SEED": "7",
        "LOG_LEVEL": "info",
    }
    topics = [v for k, v in env.items() if k.endswith("_TOPIC")]
    kafka.create_topics(topics + [env["KAFKA_TELEMETRY_TOPIC"] + ".dlq"])
    binary = os.environ.get("OPTIMIZER_BIN", os.path.join(ROOT, "build", "optimizer", "optimizer"))
    s = Service(binary, env, f"optimizer-f{tag}")
    s.bootstrap = kafka.bootstrap
    s.telemetry = env["KAFKA_TELEMETRY_TOPIC"]
    s.insights = env["KAFKA_INSIGHTS_TOPIC"]
    s.dlq = s.telemetry + ".dlq"
    s.group = env["KAFKA_CONSUMER_GROUP"]
    s.txn_id = env["KAFKA_TRANSACTIONAL_ID"]
    yield s
    kafka.thaw()
    if kafka.proc.poll() is not None:
        kafka.start()  # a test that failed with the broker down: the service needs it to drain
    code = s.stop(timeout=30)
    pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(env["MONGODB_DATABASE"])
    if s.starts and code is not None and code != -signal.SIGKILL:
        assert code == 0, f"optimizer exited with {code} on SIGTERM"


def produce(bootstrap, topic, records=(), raw=()):
    """Produces Avro TelemetryAggregated `records` then (key, value) `raw`
    pairs; returns {key: (partition, offset)} of the raw ones."""
    where = {}

    def delivered(err, msg):
        assert err is None, f"delivery failed: {err}"
        where[msg.key()] = (msg.partition(), msg.offset())

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "message.max.bytes": 2 * ONE_MIB})
    for rec in records:
        p.produce(topic, key=rec["service"].encode(), value=hive_avro.encode("TelemetryAggregated", rec))
    for key, value in raw:
        p.produce(topic, key=key, value=value, on_delivery=delivered)
    assert p.flush(60) == 0, "producer could not deliver every record"
    return where


def reader(bootstrap, topic, partitions=3):
    """A read_committed consumer assigned to every partition from the start."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader-" + uuid.uuid4().hex,
                  "isolation.level": "read_committed", "enable.auto.commit": False, "log_level": 0})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    return c


def read_committed(bootstrap, topic, expected, timeout=120, settle=3.0):
    c = reader(bootstrap, topic)
    out, deadline, settle_until = [], time.time() + timeout, None
    try:
        while time.time() < deadline and (settle_until is None or time.time() < settle_until):
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m)
            if len(out) >= expected and settle_until is None:
                settle_until = time.time() + settle
    finally:
        c.close()
    return out


def windows(msgs):
    """(component, timestamp) of each Insight; the intake makes one per degraded window."""
    return [(i["component"], i["timestamp"]) for i in (hive_avro.decode("Insight", m.value()) for m in msgs)]


def metric_value(s, name):
    total = 0.0
    for line in requests.get(s.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_one_mib_malformed_record_is_dead_lettered_truncated(svc):
    good = [telemetry(i, degraded=True) for i in range(1000)]
    huge = b"\x07" + random.Random(11).randbytes(ONE_MIB - 1)  # not Confluent framing: bad magic byte
    svc.start()
    produce(svc.bootstrap, svc.telemetry, good[:500])
    where = produce(svc.bootstrap, svc.telemetry, raw=[(b"huge", huge)])
    produce(svc.bootstrap, svc.telemetry, good[500:])

    dlq = read_committed(svc.bootstrap, svc.dlq, expected=1, timeout=120)
    assert len(dlq) == 1, f"expected the 1 MiB record in the DLQ once, got {len(dlq)} records"
    m = dlq[0]
    headers = dict(m.headers() or [])
    assert m.key() == b"huge"
    assert headers.get("dlq.truncated") == b"true"
    assert headers.get("dlq.original.size") == str(ONE_MIB).encode()
    assert len(m.value()) == DLQ_PREFIX, f"expected a {DLQ_PREFIX}-byte prefix, got {len(m.value())} bytes"
    assert m.value() == huge[:DLQ_PREFIX], "the DLQ prefix must be the original's first bytes"
    partition, offset = where[b"huge"]
    assert headers.get("dlq.original.topic") == svc.telemetry.encode()
    assert headers.get("dlq.original.partition") == str(partition).encode()
    assert headers.get("dlq.original.offset") == str(offset).encode()
    reason = headers.get("dlq.error.reason", b"").decode()
    assert "magic" in reason, f"expected the decoder's reason, got {reason!r}"

    msgs = read_committed(svc.bootstrap, svc.insights, expected=len(good), timeout=180, settle=5)
    got = windows(msgs)
    want = {(r["service"], r["window_end"]) for r in good}
    dupes = len(got) - len(set(got))
    assert dupes == 0, f"{dupes} good records produced more than one insight"
    assert set(got) == want, f"{len(want - set(got))} good records produced no insight"
    assert metric_value(svc, "dlq_messages_total") == 1


def ready_body(s):
    try:
        r = requests.get(s.url("/ready"), timeout=2)
        return r.status_code, r.json()
    except (requests.RequestException, ValueError):
        return None, None


def kafka_ok(body):
    return bool(body and body.get("checks", {}).get("kafka", {}).get("ok"))


def test_ready_follows_the_broker_without_restarting_the_service(svc, kafka):
    svc.start()
    produce(svc.bootstrap, svc.telemetry, [telemetry(0, degraded=True)])
    assert len(read_committed(svc.bootstrap, svc.insights, expected=1, timeout=60, settle=0.5)) == 1
    pid = svc.proc.pid

    kafka.stop()
    stopped = time.time()
    status, body = ready_body(svc)
    while kafka_ok(body) and time.time() - stopped < 30:
        time.sleep(0.1)
        status, body = ready_body(svc)
    took = time.time() - stopped
    print(f"/ready's kafka check false {took:.1f} s after the broker stopped: {body}")
    assert status == 503 and not kafka_ok(body), f"/ready still says Kafka is fine 30 s after it stopped: {body}"
    assert took <= 5, f"/ready went false {took:.1f} s after the broker stopped; the bound is 5 s"
    assert "broker" in body["checks"]["kafka"].get("detail", ""), body
    # Still down a while later (not a flap), and the service lives on.
    time.sleep(3)
    status, body = ready_body(svc)
    assert status == 503 and not kafka_ok(body), body
    assert svc.proc.poll() is None, "the service exited while the broker was down"

    kafka.start()
    svc.wait_ready(True, timeout=120)
    assert svc.proc.pid == pid and svc.proc.poll() is None
    produce(svc.bootstrap, svc.telemetry, [telemetry(1, degraded=True)])
    msgs = read_committed(svc.bootstrap, svc.insights, expected=2, timeout=90)
    assert sorted(windows(msgs)) == sorted({(r["service"], r["window_end"])
                                            for r in (telemetry(0, True), telemetry(1, True))})


def test_sigkill_and_restart_with_the_same_transactional_id_resumes_within_10_s(svc):
    before = [telemetry(i, degraded=True) for i in range(50)]
    after = [telemetry(i, degraded=True, service=f"after-{i % 5}") for i in range(50, 100)]
    svc.start()
    produce(svc.bootstrap, svc.telemetry, before)
    c = reader(svc.bootstrap, svc.insights)
    seen = []
    try:
        deadline = time.time() + 120
        while len(seen) < len(before) and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.append(m)
        assert len(seen) == len(before), f"{len(seen)} of {len(before)} outputs before the kill"

        svc.kill9()
        produce(svc.bootstrap, svc.telemetry, after)
        restarted = time.time()
        svc.start(wait_ready=False)
        first = None
        deadline = time.time() + 120
        while time.time() < deadline and sum(1 for w in windows(seen) if w[0].startswith("after-")) < len(after):
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen.append(m)
                if first is None and windows([m])[0][0].startswith("after-"):
                    first = time.time() - restarted
        assert first is not None, "no output within 120 s of the restart"
        print(f"failover: first output {first:.2f} s after the restart")
        assert first <= 10, f"processing resumed {first:.1f} s after the restart; the bound is 10 s"
        end = time.time() + 3
        while time.time() < end:  # anything extra (a duplicate) shows up now
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen.append(m)
    finally:
        c.close()
    got = windows(seen)
    want = {(r["service"], r["window_end"]) for r in before + after}
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicated outputs"
    assert set(got) == want


def test_ready_goes_false_while_the_broker_is_frozen(svc, kafka):
    """SIGSTOP: the connections stay open and nothing answers; no client error
    comes, only the silence of the broker tells."""
    svc.start()
    kafka.freeze()
    frozen = time.time()
    try:
        status, body = ready_body(svc)
        while kafka_ok(body) and time.time() - frozen < 60:
            time.sleep(0.2)
            status, body = ready_body(svc)
        print(f"/ready's kafka check false {time.time() - frozen:.1f} s after the broker froze: {body}")
        assert not kafka_ok(body), f"/ready still says Kafka is fine 60 s after the broker froze: {body}"
        assert "broker" in body["checks"]["kafka"].get("detail", ""), body
    finally:
        kafka.thaw()
    svc.wait_ready(True, timeout=120)
    assert svc.proc.poll() is None


def service_log(s):
    with open(os.path.join(LOGS, f"{s.name}.{s.starts}.log"), "rb") as f:
        return f.read().decode(errors="replace")


def wait_for_log(s, text, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in service_log(s):
            return True
        time.sleep(0.2)
    return False


def test_a_fenced_static_member_is_replaced_and_nothing_is_lost_or_doubled(svc):
    """Another consumer joins the group with the service's group.instance.id:
    the coordinator gives it the static member's place and fences the service's
    consumer (FENCED_INSTANCE_ID) at its next heartbeat, the fatal consumer
    error of a coordinator failover. The service must replace its consumer and
    go on, in the same process, with every output exactly once."""
    before = [telemetry(i, degraded=True) for i in range(300)]
    after = [telemetry(i, degraded=True, service=f"fenced-{i % 5}") for i in range(300, 400)]
    svc.start()
    pid = svc.proc.pid
    produce(svc.bootstrap, svc.telemetry, before)  # in flight while the member is fenced

    assigned = []
    intruder = Consumer({"bootstrap.servers": svc.bootstrap, "group.id": svc.group,
                         "group.instance.id": svc.txn_id, "session.timeout.ms": 6000,
                         "partition.assignment.strategy": "range,roundrobin", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "log_level": 0})
    try:
        intruder.subscribe([svc.telemetry], on_assign=lambda c, parts: assigned.append(parts))
        deadline = time.time() + 60
        while not assigned and time.time() < deadline:
            intruder.poll(0.2)
        assert assigned, "the second member with the same group.instance.id never joined"
        assert wait_for_log(svc, "FENCED_INSTANCE_ID", 30), "the service's consumer was not fenced"
    finally:
        intruder.close()  # a static member does not leave: the service's new consumer takes its place

    assert wait_for_log(svc, "kafka consumer replaced", 30), "the fenced consumer was not replaced"
    produce(svc.bootstrap, svc.telemetry, after)
    want = {(r["service"], r["window_end"]) for r in before + after}
    msgs = read_committed(svc.bootstrap, svc.insights, expected=len(want), timeout=180, settle=5)
    got = windows(msgs)
    assert svc.proc.poll() is None and svc.proc.pid == pid, "the service did not survive the fencing"
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicated outputs"
    assert set(got) == want, f"{len(want - set(got))} records produced no output"
    svc.wait_ready(True, timeout=30)
