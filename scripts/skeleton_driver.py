#!/usr/bin/env python3
"""Drives the optimizer's telemetry intake for ./hive demo and ./hive bench.

  demo:  starts the optimizer, feeds it healthy and degraded windows plus one
         malformed record, and shows what came out: insights, DLQ, MongoDB,
         /ready, /metrics; then stops it with SIGTERM.
  bench: measures records per second through real Kafka and the RSS of the
         service idle and under load.
"""
import argparse
import json
import os
import sys
import time

import requests

import hive_avro
from hive_client import (MONGODB_URI, ROOT, Service, create_topics, free_port, insight, producer,
                         read_committed, telemetry)


def service(binary, tag, port=None):
    env = {
        "KAFKA_TELEMETRY_TOPIC": f"telemetry.aggregated.{tag}",
        "KAFKA_INSIGHTS_TOPIC": f"insights.generated.{tag}",
        "KAFKA_CONSUMER_GROUP": f"optimizer-{tag}",
        "KAFKA_TRANSACTIONAL_ID": f"optimizer-{tag}",
        "MONGODB_URI": MONGODB_URI,
        "MONGODB_DATABASE": f"optimizer_{tag}".replace("-", "_"),
        "HTTP_PORT": str(port or free_port()),
        "GRPC_PORT": str(free_port()),
        "LOG_LEVEL": "warn",
        "POLICY_SEED": "1",
        "KAFKA_APPROVALS_REQUESTS_TOPIC": f"approvals.requests.{tag}",
        "KAFKA_APPROVALS_RESPONSES_TOPIC": f"approvals.responses.{tag}",
        "KAFKA_EXPERIMENT_REQUESTS_TOPIC": f"experiments.requests.{tag}",
        "KAFKA_EXPERIMENTS_TOPIC": f"experiments.results.{tag}",
        "KAFKA_COMMANDS_TOPIC": f"optimization.commands.{tag}",
        "KAFKA_OPTIMIZATION_TOPIC": f"optimization.applied.{tag}",
    }
    topics = [v for k, v in env.items() if k.endswith("_TOPIC")]
    create_topics(topics + [env["KAFKA_TELEMETRY_TOPIC"] + ".dlq"])
    return Service(binary, env, f"optimizer-{tag}")


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def metric(svc, name):
    total = 0.0
    for line in requests.get(svc.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def demo(binary):
    tag = f"demo{int(time.time())}"
    svc = service(binary, tag, port=8000)
    svc.env["LOG_LEVEL"] = "info"
    print(f"* starting the optimizer (HTTP on :{svc.port}, topics *.{tag})")
    svc.start()
    print(f"  /health -> {requests.get(svc.url('/health')).text.strip()}")
    print(f"  /ready  -> {requests.get(svc.url('/ready')).text.strip()}")

    base = int(time.time() * 1000) // 60000 * 60000
    records = []
    for i in range(12):
        rec = telemetry(i, degraded=i % 3 != 0, service=["orchestrator", "consensus-engine", "gateway"][i % 3])
        rec["window_start"], rec["window_end"] = base + i * 60000, base + (i + 1) * 60000
        records.append(rec)
    p = producer()
    for r in records:
        p.produce(svc.env["KAFKA_TELEMETRY_TOPIC"], key=r["service"].encode(),
                  value=hive_avro.encode("TelemetryAggregated", r))
    p.produce(svc.env["KAFKA_TELEMETRY_TOPIC"], key=b"broken", value=b"{not avro}")
    p.flush(30)
    print(f"* produced {len(records)} telemetry windows (8 degraded) and 1 malformed record")

    msgs = read_committed(svc.env["KAFKA_INSIGHTS_TOPIC"], expected=8, timeout=60)
    print(f"* {len(msgs)} insights read back (read_committed, decoded with fastavro):")
    for m in msgs:
        ins = hive_avro.decode("Insight", m.value())
        print(f"  {ins['insight_id']}  {ins['priority']:<8} {ins['component']:<17} {ins['description']}")
    dlq = read_committed(svc.env["KAFKA_TELEMETRY_TOPIC"] + ".dlq", expected=1, timeout=30)
    for m in dlq:
        print(f"* DLQ: key={m.key().decode()} reason={dict(m.headers())['dlq.error.reason'].decode()}")
    import pymongo
    db = pymongo.MongoClient(MONGODB_URI)[svc.env["MONGODB_DATABASE"]]
    print(f"* MongoDB {svc.env['MONGODB_DATABASE']}.telemetry_observations: "
          f"{db.telemetry_observations.count_documents({})} documents")
    print("* /metrics (excerpt):")
    for line in requests.get(svc.url("/metrics")).text.splitlines():
        if line.startswith(("telemetry_", "insights_", "dlq_messages_total", "kafka_transactions_total",
                            "hypotheses_", "experiments_submitted")):
            print("  " + line)
    # The degraded windows' insights went back into the optimizer: one hypothesis
    # per component and problem, the rest debounced.
    deadline = time.time() + 30
    body = {}
    while time.time() < deadline:
        body = requests.get(svc.url("/api/v1/optimizations"), timeout=5).json()
        if body.get("total", 0) >= 2:
            break
        time.sleep(0.5)
    print(f"* hypotheses (GET /api/v1/optimizations): {body.get('total', 0)}")
    for h in body.get("items", []):
        print(f"  {h['optimization_id'] if 'optimization_id' in h else h.get('id')}  {h['status']:<17} "
              f"{h['component']:<17} {h['action']}")
        print(f"    why: {h['rationale']}")
    reqs = read_committed(svc.env["KAFKA_EXPERIMENT_REQUESTS_TOPIC"], expected=1, timeout=10)
    print(f"* {len(reqs)} ExperimentRequest(s) on {svc.env['KAFKA_EXPERIMENT_REQUESTS_TOPIC']}, "
          f"{len(read_committed(svc.env['KAFKA_APPROVALS_REQUESTS_TOPIC'], expected=1, timeout=3))} "
          f"ApprovalRequest(s) waiting for the Queen Agent")
    stats = requests.get(svc.url("/api/v1/optimizations/statistics/summary"), timeout=5).json()
    print(f"* statistics: total {stats['total']}, epsilon {stats['epsilon']:.4f}, Q-table states {stats['q_table_size']}")
    code = svc.stop()
    print(f"* SIGTERM -> the optimizer drained and exited with status {code}")
    db.client.drop_database(svc.env["MONGODB_DATABASE"])
    return 0 if len(msgs) == 8 and len(dlq) == 1 and code == 0 and body.get("total", 0) >= 2 else 1


def bench(binary, n):
    tag = f"bench{int(time.time())}"
    svc = service(binary, tag)
    svc.start()
    time.sleep(2)
    idle = rss_kib(svc.proc.pid)
    records = [telemetry(i, degraded=i % 2 == 0) for i in range(n)]
    encoded = [(r["service"].encode(), hive_avro.encode("TelemetryAggregated", r)) for r in records]
    p = producer()
    t_produce = time.time()
    for k, v in encoded:
        while True:
            try:
                p.produce(svc.env["KAFKA_TELEMETRY_TOPIC"], key=k, value=v)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    t_produced = time.time()
    t0 = t1 = None
    peak = idle
    deadline = time.time() + 600
    while time.time() < deadline:
        done = metric(svc, "telemetry_records_total")
        peak = max(peak, rss_kib(svc.proc.pid))
        if done > 0 and t0 is None:
            t0 = time.time()
        if done >= n:
            t1 = time.time()
            break
        time.sleep(0.05)
    hwm = rss_kib(svc.proc.pid, "VmHWM")
    svc.stop()
    import pymongo
    pymongo.MongoClient(MONGODB_URI).drop_database(svc.env["MONGODB_DATABASE"])
    if t1 is None:
        print("bench: the service did not consume every record within 600 s")
        return 1
    # The clock starts when the producer starts; the service consumes while it produces.
    elapsed = t1 - t_produce
    result = {
        "records": n,
        "degraded_share": 0.5,
        "producer_seconds": round(t_produced - t_produce, 3),
        "end_to_end_seconds": round(elapsed, 3),
        "records_per_second": round(n / elapsed),
        "rss_idle_kib": idle,
        "rss_peak_kib": max(peak, hwm),
    }
    print("optimizer telemetry intake through real Kafka (exactly-once, MongoDB write per degraded window):")
    for k, v in result.items():
        print(f"  {k:<22} {v}")
    with open(os.path.join(ROOT, ".hive", "bench-skeleton.json"), "w") as f:
        json.dump(result, f, indent=2)
    return 0


def bench_insights(binary, n):
    """Insights per second through the hypothesis engine: each insight (a
    distinct component, so none is debounced) becomes a decision, a stored
    hypothesis and an ExperimentRequest, exactly once."""
    tag = f"benchins{int(time.time())}"
    svc = service(binary, tag)
    svc.env["APPROVAL_RISK_THRESHOLD"] = "1"
    svc.start()
    p = producer()
    t0 = time.time()
    for i in range(n):
        rec = insight(f"component-{i}")
        while True:
            try:
                p.produce(svc.env["KAFKA_INSIGHTS_TOPIC"], key=rec["component"].encode(),
                          value=hive_avro.encode("Insight", rec))
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    peak = 0
    done = 0
    deadline = time.time() + 600
    while time.time() < deadline:
        done = sum(metric(svc, m) for m in ("hypotheses_generated_total", "decisions_noop_total"))
        peak = max(peak, rss_kib(svc.proc.pid))
        if done >= n:
            break
        time.sleep(0.1)
    t1 = time.time()
    hwm = rss_kib(svc.proc.pid, "VmHWM")
    svc.stop()
    import pymongo
    pymongo.MongoClient(MONGODB_URI).drop_database(svc.env["MONGODB_DATABASE"])
    if done < n:
        print(f"bench: only {done} of {n} insights processed within 600 s")
        return None
    print("optimizer hypothesis engine through real Kafka (insight -> decision -> hypothesis in MongoDB -> "
          "ExperimentRequest, exactly once):")
    print(f"  insights               {n}")
    print(f"  end_to_end_seconds     {t1 - t0:.3f}")
    print(f"  insights_per_second    {n / (t1 - t0):.0f}")
    print(f"  rss_peak_kib           {max(peak, hwm)}")
    return {"insights": n, "seconds": round(t1 - t0, 3), "insights_per_second": round(n / (t1 - t0)),
            "rss_peak_kib": max(peak, hwm)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["demo", "bench", "bench-insights"])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--records", type=int, default=20000)
    a = ap.parse_args()
    if a.mode == "demo":
        return demo(a.binary)
    if a.mode == "bench-insights":
        return 0 if bench_insights(a.binary, a.records) else 1
    return bench(a.binary, a.records)


if __name__ == "__main__":
    sys.exit(main())
