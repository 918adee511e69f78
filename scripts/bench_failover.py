#!/usr/bin/env python3
"""Failover time of the optimizer, for ./hive bench.

Each run: the service processes telemetry, is killed with SIGKILL, more
telemetry arrives, and the service is restarted with the same transactional id
(so the same static group member). The figure is the time from the restart to
the first new output a read_committed consumer sees: process start, MongoDB,
init_transactions (which fences the killed incarnation), the group join and the
first transaction. Without static membership the group would first wait for the
killed member's session timeout.

    scripts/bench_failover.py --binary build-release/optimizer/optimizer --runs 5
"""
import argparse
import os
import statistics
import sys
import time
import uuid

import pymongo
from confluent_kafka import Consumer, TopicPartition

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import hive_avro  # noqa: E402
from conftest import BOOTSTRAP, MONGODB_URI, Service, create_topics, free_port, producer  # noqa: E402

ROLES = {
    "KAFKA_TELEMETRY_TOPIC": "telemetry.aggregated",
    "KAFKA_INSIGHTS_TOPIC": "insights.generated",
    "KAFKA_APPROVALS_REQUESTS_TOPIC": "approvals.requests",
    "KAFKA_APPROVALS_RESPONSES_TOPIC": "approvals.responses",
    "KAFKA_EXPERIMENT_REQUESTS_TOPIC": "experiments.requests",
    "KAFKA_EXPERIMENTS_TOPIC": "experiments.results",
    "KAFKA_COMMANDS_TOPIC": "optimization.commands",
    "KAFKA_OPTIMIZATION_TOPIC": "optimization.applied",
}


def degraded(service, i):
    """A window over the latency rule: one insight each."""
    return {"schema_version": 1, "service": service, "window_start": 1_700_000_000_000 + i * 60_000,
            "window_end": 1_700_000_000_000 + (i + 1) * 60_000, "request_count": 1000, "error_count": 1,
            "error_rate": 0.001, "latency_p50_ms": 80.0, "latency_p95_ms": 1500.0, "latency_p99_ms": 2000.0,
            "slo_compliance": 0.999, "availability": 0.9999, "variant": None, "experiment_id": None,
            "metrics": {}}


def send(topic, service, n):
    p = producer()
    for i in range(n):
        rec = degraded(service, i)
        p.produce(topic, key=service.encode(), value=hive_avro.encode("TelemetryAggregated", rec))
    assert p.flush(30) == 0


def wait_for(consumer, service, n, timeout, t0=None):
    """Polls until `n` insights of `service` came; returns the delay from `t0`
    to the first one (or None)."""
    got, first = 0, None
    deadline = time.time() + timeout
    while got < n and time.time() < deadline:
        m = consumer.poll(0.05)
        if m is None or m.error():
            continue
        if hive_avro.decode("Insight", m.value())["component"] == service:
            got += 1
            if first is None and t0 is not None:
                first = time.time() - t0
    if got < n:
        raise RuntimeError(f"{got} of {n} insights of {service} within {timeout} s")
    return first


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("OPTIMIZER_BIN",
                                                      os.path.join(ROOT, "build-release", "optimizer", "optimizer")))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--records", type=int, default=20, help="records per phase")
    args = ap.parse_args()

    tag = "fo" + uuid.uuid4().hex[:8]
    env = {k: f"{v}.{tag}" for k, v in ROLES.items()}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "KAFKA_CONSUMER_GROUP": f"optimizer-{tag}",
                "KAFKA_TRANSACTIONAL_ID": f"optimizer-{tag}", "MONGODB_URI": MONGODB_URI,
                "MONGODB_DATABASE": f"bench_{tag}", "HTTP_PORT": str(free_port()), "GRPC_PORT": str(free_port()),
                "POLICY_SEED": "7", "LOG_LEVEL": "warn"})
    topics = [v for k, v in env.items() if k in ROLES]
    create_topics(topics + [env["KAFKA_TELEMETRY_TOPIC"] + ".dlq"])
    svc = Service(args.binary, env, f"optimizer-{tag}")
    telemetry, insights = env["KAFKA_TELEMETRY_TOPIC"], env["KAFKA_INSIGHTS_TOPIC"]
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench-" + tag, "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(insights, p, 0) for p in range(3)])
    times = []
    try:
        svc.start()
        for run in range(args.runs):
            send(telemetry, f"warm-{run}", args.records)
            wait_for(c, f"warm-{run}", args.records, timeout=120)
            svc.kill9()
            send(telemetry, f"after-{run}", args.records)
            t0 = time.time()
            svc.start(wait_ready=False)
            first = wait_for(c, f"after-{run}", args.records, timeout=120, t0=t0)
            times.append(first)
            print(f"run {run + 1}: first output {first:.2f} s after the restart", flush=True)
    finally:
        c.close()
        svc.stop()
        pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(env["MONGODB_DATABASE"])
    print(f"failover after SIGKILL (restart to first output, {len(times)} runs): "
          f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
