#!/usr/bin/env python3
"""The figures of ./hive bench, in one run, on the same records (the machine is
noisy: the ratios count more than the absolute rates).

  pass-through  build-release/bench/bench_passthrough: common/kafka's transactional
                pipeline copying each record to an output topic (the ceiling)
  reference     bench/reference_intake.py: the telemetry -> insight job in Python
                (confluent-kafka transactions, fastavro, one pymongo write per
                degraded window)
  ours          the optimizer's telemetry intake (release build)
  insights      insight -> hypothesis through the optimizer, distinct components

The three intake contenders each read their own copy of the same encoded records
(N TelemetryAggregated, half degraded) from a topic filled before they start, and
each is timed from its first record to its last one committed. Idle RSS: the
optimizer ready with nothing to do; peak RSS: its high-water mark over the intake.

    bench_figures.py --binary build-release/optimizer/optimizer --passthrough build-release/bench/bench_passthrough
"""
import argparse
import json
import os
import subprocess
import sys
import time

import pymongo

import hive_avro
from hive_client import BOOTSTRAP, MONGODB_URI, ROOT, create_topics, producer, telemetry
from skeleton_driver import bench_insights, metric, rss_kib, service


def fill(topic, encoded):
    p = producer()
    for k, v in encoded:
        while True:
            try:
                p.produce(topic, key=k, value=v)
                break
            except BufferError:
                p.poll(0.05)
    if p.flush(120) != 0:
        raise SystemExit(f"bench: could not produce every record to {topic}")


def run_json(cmd, timeout=900):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-2000:])
        raise SystemExit(f"bench: {cmd[0]} exited with {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ours(binary, tag, topic, n):
    """The optimizer's intake over the pre-filled `topic`; returns rate and RSS."""
    # Idle: ready, on empty topics, nothing to do.
    idle_svc = service(binary, tag + "idle")
    idle_svc.start()
    time.sleep(2)
    idle = rss_kib(idle_svc.proc.pid)
    idle_svc.stop()
    pymongo.MongoClient(MONGODB_URI).drop_database(idle_svc.env["MONGODB_DATABASE"])

    svc = service(binary, tag)
    svc.env["KAFKA_TELEMETRY_TOPIC"] = topic
    svc.start()
    t0 = t1 = None
    peak = idle
    deadline = time.time() + 900
    while time.time() < deadline:
        done = metric(svc, "telemetry_records_total")
        peak = max(peak, rss_kib(svc.proc.pid))
        if done > 0 and t0 is None:
            t0 = time.perf_counter()
        if done >= n:
            t1 = time.perf_counter()
            break
        time.sleep(0.02)
    hwm = rss_kib(svc.proc.pid, "VmHWM")
    svc.stop()
    pymongo.MongoClient(MONGODB_URI).drop_database(svc.env["MONGODB_DATABASE"])
    if t1 is None:
        raise SystemExit("bench: the optimizer did not consume every record within 900 s")
    return {"records": n, "seconds": round(t1 - t0, 3), "records_per_second": round(n / (t1 - t0)),
            "rss_idle_kib": idle, "rss_peak_kib": max(peak, hwm)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--passthrough", required=True)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--insights", type=int, default=2000)
    a = ap.parse_args()
    n = a.records
    tag = f"fig{int(time.time())}"
    topics = {k: f"bench.{k}.{tag}" for k in ("pass", "ref", "ours")}
    create_topics([t + s for t in topics.values() for s in ("", ".out")] + [topics["ours"] + ".dlq",
                                                                            topics["pass"] + ".dlq",
                                                                            topics["ref"] + ".dlq"])
    encoded = [(r["service"].encode(), hive_avro.encode("TelemetryAggregated", r))
               for r in (telemetry(i, degraded=i % 2 == 0) for i in range(n))]
    for t in topics.values():
        fill(t, encoded)
    print(f"* {n} TelemetryAggregated records ({sum(len(v) for _, v in encoded) // n} bytes each, half "
          f"degraded) in three topics", flush=True)

    res = {}
    res["pass"] = run_json([a.passthrough, BOOTSTRAP, topics["pass"], topics["pass"] + ".out", "g-pass-" + tag,
                            str(n)])
    print(f"  pass-through  {res['pass']['records_per_second']:>8} records/s", flush=True)
    ref_db = f"bench_ref_{tag}"
    res["ref"] = run_json([sys.executable, os.path.join(ROOT, "bench", "reference_intake.py"), BOOTSTRAP,
                           topics["ref"], topics["ref"] + ".out", "g-ref-" + tag, MONGODB_URI, ref_db, str(n)])
    pymongo.MongoClient(MONGODB_URI).drop_database(ref_db)
    print(f"  reference     {res['ref']['records_per_second']:>8} records/s", flush=True)
    res["ours"] = ours(a.binary, tag, topics["ours"], n)
    print(f"  ours          {res['ours']['records_per_second']:>8} records/s", flush=True)
    res["insights"] = bench_insights(a.binary, a.insights)
    if res["insights"] is None:
        raise SystemExit("bench: insight -> hypothesis did not finish")

    p, r, o = (res[k]["records_per_second"] for k in ("pass", "ref", "ours"))
    rows = [
        ("pass-through (Kafka transactions, identity)", f"{p:,} records/s", "ceiling"),
        ("reference (Python: confluent-kafka, fastavro, pymongo)", f"{r:,} records/s", ""),
        ("ours: telemetry -> insight", f"{o:,} records/s",
         f"{100 * o / p:.0f} % of pass-through (target >= 50 %), {o / r:.1f}x reference (target >= 10x)"),
        ("ours: insight -> hypothesis", f"{res['insights']['insights_per_second']:,} insights/s",
         "target >= 1,000/s"),
        ("optimizer idle RSS", f"{res['ours']['rss_idle_kib'] / 1024:.1f} MB", "target <= 16 MB"),
        ("optimizer peak RSS (intake)", f"{res['ours']['rss_peak_kib'] / 1024:.1f} MB", ""),
        ("optimizer peak RSS (insights)", f"{res['insights']['rss_peak_kib'] / 1024:.1f} MB", ""),
    ]
    print()
    print(f"== ./hive bench: {n} records, one run")
    w = max(len(x[0]) for x in rows)
    for name, fig, note in rows:
        print(f"  {name:<{w}}  {fig:>18}  {note}")
    with open(os.path.join(ROOT, ".hive", "bench-figures.json"), "w") as f:
        json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
