#!/usr/bin/env python3
"""Figures of the two appliers (weight-recalibrator, slo-adjuster) on the real
stack: OptimizationCommands applied per second end to end, and RSS.

For each applier: fresh topics and database, `--replicas` replicas in one
consumer group; `--commands` APPLY commands over `--targets` targets (keyed by
target, as the optimizer sends them) produced at once by an independent
producer; timed from the first command produced to the last OptimizationEvent
committed (read_committed). Each run is checked before its figure is printed:
every command APPLIED exactly once, each target's revisions in MongoDB
consecutive from 1, and each event's old values those of the revision before
it (no lost update).
RSS: replica 0 ready and idle, and its high-water mark (VmHWM) at the end.

Usage: bench/bench_appliers.py [--bin-dir build-release] [--commands 1000]
       [--targets 8] [--replicas 2] [--json out.json]
"""
import argparse
import json
import os
import sys
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import pymongo  # noqa: E402
import requests  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

import hive_avro  # noqa: E402
from hive_client import BOOTSTRAP, MONGODB_URI, Service, create_topics, free_port, producer  # noqa: E402

SPECIALISTS = ("technical", "safety", "business", "ethical", "legal")
KINDS = {
    "weight-recalibrator": {"type": "WEIGHT_RECALIBRATION", "mode": "DELTA", "coll": "weights",
                            "state": {"KAFKA_WEIGHTS_TOPIC": "consensus.weights"}},
    "slo-adjuster": {"type": "SLO_ADJUSTMENT", "mode": "RELATIVE", "coll": "slos",
                     "state": {"KAFKA_SLOS_TOPIC": "orchestrator.slos",
                               "KAFKA_POLICIES_TOPIC": "orchestrator.policies"}},
}


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def step(name, i):
    """Command i's one adjustment: small alternating steps that no bound refuses."""
    sign = 1 if i % 2 == 0 else -1
    if name == "weight-recalibrator":
        return {SPECIALISTS[(i // 2) % 5]: sign * 0.001}
    return {"latency_ms": sign * 0.01}


def wait_ready(svc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(svc.url("/ready"), timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{svc.name} not ready within {timeout} s")


def run(name, binary, commands, targets, replicas):
    kind = KINDS[name]
    tag = uuid.uuid4().hex[:10]
    cmd_topic, applied = f"optimization.commands.b{tag}", f"optimization.applied.b{tag}"
    telemetry = f"telemetry.aggregated.b{tag}"
    state = {k: f"{v}.b{tag}" for k, v in kind["state"].items()}
    create_topics([cmd_topic, applied, telemetry, cmd_topic + ".dlq", telemetry + ".dlq", *state.values()])
    db = f"bench_{name.split('-')[0]}_{tag}"
    svcs = []
    for i in range(replicas):
        env = {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "KAFKA_COMMANDS_TOPIC": cmd_topic,
               "KAFKA_APPLIED_TOPIC": applied, "KAFKA_TELEMETRY_TOPIC": telemetry,
               "KAFKA_TIMERS_TOPIC": f"{name}.timers.b{tag}", "KAFKA_CONSUMER_GROUP": f"bench-{name}-{tag}",
               "KAFKA_TRANSACTIONAL_ID": f"bench-{name}-{tag}-{i}", "MONGODB_URI": MONGODB_URI,
               "MONGODB_DATABASE": db, "HTTP_PORT": str(free_port()), "LOG_LEVEL": "warn", **state}
        svcs.append(Service(binary, env, f"bench-{name}-{tag}-{i}"))
    try:
        for s in svcs:
            s.start()
        for s in svcs:
            wait_ready(s)
        time.sleep(3)  # the group settled on its members
        idle = rss_kib(svcs[0].proc.pid)

        reader = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench-reader-" + tag,
                           "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                           "enable.auto.commit": False})
        reader.subscribe([applied])
        reader.poll(1.0)  # joins before the clock starts
        names = [f"bench-{name}-{tag}-t{t}" for t in range(targets)]
        p = producer()
        t0 = time.time()
        for i in range(commands):
            target = names[i % targets]
            rec = {"command_id": f"cmd-b{i}", "command": "APPLY", "optimization_id": f"opt-b{i}",
                   "optimization_type": kind["type"], "target": target, "adjustments": step(name, i),
                   "adjustment_mode": kind["mode"], "reason": "bench", "issued_at": int(t0 * 1000)}
            p.produce(cmd_topic, key=target.encode(), value=hive_avro.encode("OptimizationCommand", rec))
        p.flush(60)
        events, peak = [], 0
        deadline = time.time() + max(300, commands)
        while len(events) < commands and time.time() < deadline:
            m = reader.poll(0.5)
            if m is not None and not m.error():
                events.append(hive_avro.decode("OptimizationEvent", m.value()))
            peak = max(peak, rss_kib(svcs[0].proc.pid))
        elapsed = time.time() - t0
        reader.close()
        hwm = rss_kib(svcs[0].proc.pid, "VmHWM")

        # The figure counts only if the run was right.
        kinds = {e["event_type"] for e in events}
        ids = [e["optimization_id"] for e in events]
        assert len(events) == commands and kinds == {"APPLIED"}, (len(events), kinds)
        assert len(set(ids)) == commands, "a command applied twice"
        coll = pymongo.MongoClient(MONGODB_URI)[db][kind["coll"]]
        by_rev = {}
        for t in names:
            docs = list(coll.find({"key": t}, {"revision": 1, "values": 1}))
            revs = sorted(d["revision"] for d in docs)
            n = len(range(names.index(t), commands, targets))
            assert revs == list(range(1, n + 2)), f"{t}: revisions {revs[:5]}... not 1..{n + 1}"
            by_rev.update({(t, d["revision"]): d["values"] for d in docs})
        for e in events:  # no lost update: each change starts from the revision before it
            old = {x["parameter"]: x["old_value"] for x in e["adjustments"]}
            prev = by_rev[(e["target"], e["revision"] - 1)]
            assert all(abs(old[k] - prev[k]) <= 1e-12 * max(1.0, abs(prev[k])) for k in prev), (e, prev)
        return {"applier": name, "replicas": replicas, "commands": commands, "targets": targets,
                "seconds": elapsed, "per_second": commands / elapsed, "rss_idle_kib": idle,
                "rss_peak_kib": max(peak, hwm)}
    finally:
        for s in svcs:
            s.stop()
        client = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)
        client.drop_database(db)
        client.drop_database(db + "_policies")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--commands", type=int, default=1000)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--only", choices=sorted(KINDS), help="one applier only")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    results = []
    for name in KINDS:
        if a.only and name != a.only:
            continue
        results.append(run(name, os.path.join(a.bin_dir, name, name), a.commands, a.targets, a.replicas))
    print(f"{'applier':<22}{'replicas':>9}{'commands':>10}{'targets':>9}{'cmd/s e2e':>11}"
          f"{'idle RSS':>10}{'peak RSS':>10}")
    for r in results:
        print(f"{r['applier']:<22}{r['replicas']:>9}{r['commands']:>10}{r['targets']:>9}"
              f"{r['per_second']:>11.1f}{r['rss_idle_kib'] / 1024:>8.1f}MB{r['rss_peak_kib'] / 1024:>8.1f}MB")
    print("checked: every command APPLIED exactly once; revisions consecutive from 1; no lost update")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
