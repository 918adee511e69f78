#!/usr/bin/env python3
"""Lookup time against the stack's MongoDB (FerretDB) as a collection grows.

For 10^3, 10^4 and 10^5 documents shaped like the optimizer's, prints the
median and p95 time of the lookups the optimizer makes on its hot path:
  - find by _id                        (repo_hyp_get, open_hypotheses, policy_state)
  - find {experiment_id}               (repo_hyp_by_experiment)
  - find {key, result_id} limit 1      (learner_learn's "counted already?")
  - find {key} sort {revision: -1} limit 1 (store_find_latest on q_table)
each first without secondary indexes, then with the indexes the optimizer
creates at start (optimizer/repo.c, repo_indexes), and how the backend ran
each lookup (explain: filter pushed down or not, the plan's scan or index).
Uses its own database, bench_lookup_<pid>, dropped at the end. The fill goes
in insert_many batches of 10,000; the lookups before the indexes exist are
fewer (--plain-lookups), since on a scanning backend each reads everything.

    .hive/venv/bin/python scripts/bench_lookup.py [--uri mongodb://127.0.0.1:27017] [--sizes 1000,10000,100000] [--lookups 200] [--plain-lookups 20]
"""
import argparse
import os
import random
import statistics
import time

import pymongo

LOOKUPS = 200
FILL_BATCH = 10_000

INDEXES = [  # the same table as optimizer/repo.c repo_indexes
    ("optimizations", [("experiment_id", 1)], False),
    ("q_table", [("key", 1), ("revision", -1)], False),
    ("q_table", [("key", 1), ("result_id", 1)], False),
]


def fill(db, n):
    opt, qt = db.optimizations, db.q_table
    batch_o, batch_q = [], []
    for i in range(n):
        batch_o.append({"_id": f"opt-{i:07d}", "experiment_id": f"exp-{i:07d}", "component": f"svc-{i % 50}",
                        "status": "APPLIED", "created_at_ms": 1_700_000_000_000 + i, "rationale": "x" * 200})
        batch_q.append({"_id": f"k{i % (n // 4 or 1)}@{i}", "key": f"k{i % (n // 4 or 1)}", "revision": i,
                        "result_id": f"res-{i:07d}", "value": 0.5, "visits": i})
        if len(batch_o) == FILL_BATCH:
            opt.insert_many(batch_o, ordered=False)
            qt.insert_many(batch_q, ordered=False)
            batch_o, batch_q = [], []
    if batch_o:
        opt.insert_many(batch_o, ordered=False)
        qt.insert_many(batch_q, ordered=False)


def timed(fn, n, lookups):
    rng = random.Random(7)
    samples = []
    for _ in range(lookups):
        i = rng.randrange(n)
        t0 = time.perf_counter()
        doc = fn(i)
        samples.append((time.perf_counter() - t0) * 1000)
        assert doc is not None, "lookup found nothing"
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def plan_nodes(plan):
    """The scans and indexes of an explained plan: SQLite's detail lines or
    PostgreSQL's node tree."""
    if isinstance(plan, list):
        return [str(p).split("detail=")[-1] for p in plan]
    if isinstance(plan, dict):
        here = plan.get("Node Type", "")
        if plan.get("Index Name"):
            here += " " + plan["Index Name"]
        out = [here] if here and here not in ("Limit",) else []
        for sub in plan.get("Plans", []):
            out += plan_nodes(sub)
        return out
    return [str(plan)[:80]]


def explain(db, coll, flt, sort=None):
    cmd = {"find": coll, "filter": flt, "limit": 1}
    if sort:
        cmd["sort"] = sort
    try:
        r = db.command("explain", cmd)
    except pymongo.errors.PyMongoError as e:
        return f"explain failed: {e}"
    plan = r.get("queryPlanner", {})
    plan = plan.get("Plan") or plan.get("plan") or plan
    return f"pushdown={r.get('filterPushdown')} " + "; ".join(plan_nodes(plan))


def measure(db, n, lookups):
    q = n // 4 or 1
    cases = {
        "_id": lambda i: db.optimizations.find_one({"_id": f"opt-{i:07d}"}),
        "experiment_id": lambda i: db.optimizations.find_one({"experiment_id": f"exp-{i:07d}"}),
        "key+result_id": lambda i: db.q_table.find_one({"key": f"k{i % q}", "result_id": f"res-{i:07d}"}),
        "key latest": lambda i: db.q_table.find_one({"key": f"k{i % q}"}, sort=[("revision", -1)]),
    }
    return {name: timed(fn, n, lookups) for name, fn in cases.items()}


EXPLAINED = [
    ("_id", "optimizations", {"_id": "opt-0000001"}, None),
    ("experiment_id", "optimizations", {"experiment_id": "exp-0000001"}, None),
    ("key+result_id", "q_table", {"key": "k1", "result_id": "res-0000001"}, None),
    ("key latest", "q_table", {"key": "k1"}, {"revision": -1}),
]


def backend(db):
    """sqlite or postgresql, told by the shape of FerretDB's explain."""
    try:
        plan = db.command("explain", {"find": "optimizations", "filter": {}}).get("queryPlanner", {})
    except pymongo.errors.PyMongoError:
        return "?"
    plan = plan.get("Plan") or plan.get("plan")
    return "sqlite" if isinstance(plan, list) else "postgresql" if isinstance(plan, dict) else "?"


def main():
    global LOOKUPS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uri", default=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017"))
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--lookups", type=int, default=LOOKUPS, help="lookups per figure")
    ap.add_argument("--plain-lookups", type=int, default=20, help="lookups per figure before the indexes exist")
    args = ap.parse_args()
    LOOKUPS = args.lookups
    client = pymongo.MongoClient(args.uri, serverSelectionTimeoutMS=5000, socketTimeoutMS=600_000)
    build = client.admin.command("buildInfo")
    print(f"server {build.get('version')} ferretdb={build.get('ferretdb', {}).get('version', '-')} "
          f"{args.plain_lookups}/{LOOKUPS} lookups per figure "
          "(no index/with indexes), ms median / p95")
    name = f"bench_lookup_{os.getpid()}"
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            client.drop_database(name)
            db = client[name]
            t0 = time.perf_counter()
            fill(db, n)
            fill_s = time.perf_counter() - t0
            plain = measure(db, n, args.plain_lookups)
            for coll, keys, unique in INDEXES:
                db[coll].create_index(keys, unique=unique)
            indexed = measure(db, n, LOOKUPS)
            print(f"\n{n} documents per collection on {backend(db)} (filled in {fill_s:.1f} s)")
            print(f"  {'lookup':<16} {'no index':>18} {'with indexes':>18}")
            for k in plain:
                a, b = plain[k], indexed[k]
                print(f"  {k:<16} {a[0]:8.2f} / {a[1]:7.2f} {b[0]:8.2f} / {b[1]:7.2f}")
            for what, coll, flt, sort in EXPLAINED:
                print(f"  explain {what + ':':<15} {explain(db, coll, flt, sort)}")
    finally:
        client.drop_database(name)


if __name__ == "__main__":
    main()
