#!/usr/bin/env python3
"""Lookup time against the stack's MongoDB (FerretDB) as a collection grows.

For 10^3, 10^4 and 10^5 documents shaped like the optimizer's, prints the
median and p95 time of the lookups the optimizer makes on its hot path:
  - find by _id                        (repo_hyp_get, open_hypotheses, policy_state)
  - find {experiment_id}               (repo_hyp_by_experiment)
  - find {key, result_id} limit 1      (learner_learn's "counted already?")
  - find {key} sort {revision: -1} limit 1 (store_find_latest on q_table)
each first without secondary indexes, then with the indexes the optimizer
creates at start (optimizer/repo.c, repo_indexes), and whether FerretDB
pushed the filter down to its backend (explain). Uses its own database,
bench_lookup_<pid>, dropped at the end.

    .hive/venv/bin/python scripts/bench_lookup.py [--uri mongodb://127.0.0.1:27017] [--sizes 1000,10000,100000] [--lookups 200]
"""
import argparse
import os
import random
import statistics
import time

import pymongo

LOOKUPS = 200

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
        if len(batch_o) == 1000:
            opt.insert_many(batch_o, ordered=False)
            qt.insert_many(batch_q, ordered=False)
            batch_o, batch_q = [], []
    if batch_o:
        opt.insert_many(batch_o, ordered=False)
        qt.insert_many(batch_q, ordered=False)


def timed(fn, n):
    rng = random.Random(7)
    samples = []
    for _ in range(LOOKUPS):
        i = rng.randrange(n)
        t0 = time.perf_counter()
        doc = fn(i)
        samples.append((time.perf_counter() - t0) * 1000)
        assert doc is not None, "lookup found nothing"
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def pushdown(db, coll, flt):
    try:
        r = db.command("explain", {"find": coll, "filter": flt, "limit": 1})
    except pymongo.errors.PyMongoError as e:
        return f"explain failed: {e}"
    keys = ("filterPushdown", "sortPushdown", "limitPushdown")
    flags = ",".join(f"{k}={r[k]}" for k in keys if k in r)
    plan = r.get("queryPlanner", {})
    detail = plan.get("Plan") or plan.get("plan") or plan
    return f"{flags} {str(detail)[:160]}"


def measure(db, n):
    q = n // 4 or 1
    cases = {
        "_id": lambda i: db.optimizations.find_one({"_id": f"opt-{i:07d}"}),
        "experiment_id": lambda i: db.optimizations.find_one({"experiment_id": f"exp-{i:07d}"}),
        "key+result_id": lambda i: db.q_table.find_one({"key": f"k{i % q}", "result_id": f"res-{i:07d}"}),
        "key latest": lambda i: db.q_table.find_one({"key": f"k{i % q}"}, sort=[("revision", -1)]),
    }
    return {name: timed(fn, n) for name, fn in cases.items()}


def main():
    global LOOKUPS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uri", default=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017"))
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--lookups", type=int, default=LOOKUPS, help="lookups per figure")
    args = ap.parse_args()
    LOOKUPS = args.lookups
    client = pymongo.MongoClient(args.uri, serverSelectionTimeoutMS=5000)
    build = client.admin.command("buildInfo")
    print(f"server {build.get('version')} ferretdb={build.get('ferretdb', {}).get('version', '-')} "
          f"backend={build.get('ferretdb', {}).get('package', '')} {LOOKUPS} lookups per figure, ms median / p95")
    name = f"bench_lookup_{os.getpid()}"
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            client.drop_database(name)
            db = client[name]
            t0 = time.perf_counter()
            fill(db, n)
            fill_s = time.perf_counter() - t0
            plain = measure(db, n)
            for coll, keys, unique in INDEXES:
                db[coll].create_index(keys, unique=unique)
            indexed = measure(db, n)
            print(f"\n{n} documents per collection (filled in {fill_s:.1f} s)")
            print(f"  {'lookup':<16} {'no index':>18} {'with indexes':>18}")
            for k in plain:
                a, b = plain[k], indexed[k]
                print(f"  {k:<16} {a[0]:8.2f} / {a[1]:7.2f} {b[0]:8.2f} / {b[1]:7.2f}")
            print("  explain _id:          ", pushdown(db, "optimizations", {"_id": "opt-0000001"}))
            print("  explain experiment_id:", pushdown(db, "optimizations", {"experiment_id": "exp-0000001"}))
    finally:
        client.drop_database(name)


if __name__ == "__main__":
    main()
