#!/usr/bin/env python3
"""FerretDB 1.24 on SQLite against FerretDB 1.24 on PostgreSQL, under the batched
store work of the services (pymongo, one run, the same documents for both).

Each backend gets a private FerretDB (and, for PostgreSQL, a private cluster made
with initdb) on free ports under a temporary directory; the shared stack is not
touched. At each size N (default 10^3, 10^4, 10^5 documents), on a fresh collection:

    fill        N documents as unordered insert_many of 500 (documents per second)
    upsert      up to 1,000 new documents as unordered bulk upserts of 500 keyed by
                _id (documents per second)
    find _id    find_one({_id}) of up to 500 random stored ids, one round trip each
    $in 500     up to 10 find({_id: {$in: 500 random stored ids}}) (documents per second)
    insert-if-absent  up to 1,000 documents in unordered insert_many of 500, half of
                them stored already, duplicate key errors ignored (documents per second)

Prints one table (operations or documents per second, higher is faster) and writes
it as JSON to .hive/bench-mongo-backends.json. Figures only: nothing is asserted.

    python3 scripts/bench_mongo_backends.py [--sizes 1000,10000,100000]
"""
import argparse
import glob
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pymongo
from pymongo.errors import BulkWriteError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FERRETDB = os.path.join(ROOT, ".hive", "bin", "ferretdb")
BATCH = 500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name):
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        raise SystemExit("PostgreSQL is not installed (./hive setup installs Debian's postgresql)")
    return os.path.join(dirs[-1], name)


def as_postgres(cmd):
    """PostgreSQL refuses to run as root: drop to Debian's postgres user."""
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + cmd
    return cmd


class Backend:
    def __init__(self, name, work):
        self.name, self.work = name, work
        self.procs = []
        self.port = free_port()
        self.logs = open(os.path.join(work, name + ".log"), "ab")

    def spawn(self, cmd):
        p = subprocess.Popen(cmd, stdout=self.logs, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start(self):
        state = os.path.join(self.work, self.name + "-state")
        os.makedirs(state)
        if self.name == "sqlite":
            data = os.path.join(self.work, "sqlite")
            os.makedirs(data)
            storage = ["--handler=sqlite", f"--sqlite-url=file:{data}/"]
        else:
            storage = ["--handler=postgresql", f"--postgresql-url={self.start_postgres()}"]
        self.spawn([FERRETDB, *storage, f"--listen-addr=127.0.0.1:{self.port}", f"--state-dir={state}",
                    "--debug-addr=-", "--telemetry=disable", "--log-level=error"])
        self.client = pymongo.MongoClient(f"mongodb://127.0.0.1:{self.port}/", serverSelectionTimeoutMS=30000)
        self.client.admin.command("ping")
        return self

    def start_postgres(self):
        pgdata, sock = os.path.join(self.work, "pgdata"), os.path.join(self.work, "pgsock")
        os.makedirs(pgdata, mode=0o700)
        os.makedirs(sock)
        if os.geteuid() == 0:
            for d in (self.work, pgdata, sock):
                shutil.chown(d, "postgres", "postgres")
        pgport = free_port()
        subprocess.run(as_postgres([pg_bin("initdb"), "-D", pgdata, "-U", "postgres", "--encoding=UTF8",
                                    "--locale=C", "--auth=trust"]),
                       stdout=self.logs, stderr=subprocess.STDOUT, check=True)
        self.spawn(as_postgres([pg_bin("postgres"), "-D", pgdata, "-k", sock, "-p", str(pgport),
                                "-c", "listen_addresses=", "-c", "shared_buffers=128MB"]))
        deadline = time.time() + 60
        while subprocess.run([pg_bin("pg_isready"), "-q", "-h", sock, "-p", str(pgport)]).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("postgres did not start (see " + self.logs.name + ")")
            time.sleep(0.3)
        subprocess.run(as_postgres([pg_bin("createdb"), "-h", sock, "-p", str(pgport), "-U", "postgres",
                                    "ferretdb"]), check=True)
        return f"postgres://postgres@/ferretdb?host={sock}&port={pgport}"

    def stop(self):
        self.client.close()
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.logs.close()


def document(i):
    """A stored telemetry observation, the shape the optimizer's intake writes."""
    return {
        "_id": f"ins-{i:016x}",
        "service": f"svc-{i % 7}",
        "window_start": 1_700_000_000_000 + i * 60_000,
        "window_end": 1_700_000_000_000 + (i + 1) * 60_000,
        "slo_compliance": 0.97,
        "latency_p95_ms": 1500.0,
        "error_rate": 0.001,
        "metric": "latency_p95_ms",
        "severity": 0.5,
        "priority": "HIGH",
        "violations": "latency_p95_ms",
        "topic": "telemetry.aggregated",
        "partition": i % 3,
        "offset": i,
    }


def batches(seq, n=BATCH):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def measure(coll, n, rng):
    """The collection is filled with n documents first (timed as "fill", unordered
    insert_many of 500); each operation then runs a bounded number of batches
    against it, so the figures at 10^5 documents take minutes, not hours."""
    out = {}
    docs = [document(i) for i in range(n)]
    ids = [d["_id"] for d in docs]
    t = time.perf_counter()
    for chunk in batches(docs):
        coll.insert_many(chunk, ordered=False)
    out["fill"] = n / (time.perf_counter() - t)

    # Upserts of new ids, 500 per unordered bulk. (Upserts of stored ids are left
    # out: FerretDB 1.24 stalls for minutes on one bulk of 50-100 of them, on
    # either backend; see README, "The local MongoDB".)
    fresh = iter(range(n, 10 * n + 10**6))
    k = min(n, 1000)
    work = [document(next(fresh)) for _ in range(k)]
    t = time.perf_counter()
    for chunk in batches(work):
        coll.bulk_write([pymongo.UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=True) for d in chunk],
                        ordered=False)
    out["upsert"] = k / (time.perf_counter() - t)

    probes = [rng.choice(ids) for _ in range(min(n, 500))]
    t = time.perf_counter()
    for i in probes:
        if coll.find_one({"_id": i}) is None:
            raise AssertionError(f"{i} not found")
    out["find _id"] = len(probes) / (time.perf_counter() - t)

    rounds = max(1, min(n // BATCH, 10))
    sets = [rng.sample(ids, min(BATCH, n)) for _ in range(rounds)]
    t = time.perf_counter()
    got = 0
    for s in sets:
        got += len(list(coll.find({"_id": {"$in": s}})))
    out["$in 500"] = got / (time.perf_counter() - t)

    # Inserts if absent: half already stored, half new; duplicate key errors ignored.
    work = [document(int(i[4:], 16)) for i in rng.sample(ids, k // 2)] + [document(next(fresh))
                                                                         for _ in range(k - k // 2)]
    rng.shuffle(work)
    t = time.perf_counter()
    for chunk in batches(work):
        try:
            coll.insert_many(chunk, ordered=False)
        except BulkWriteError as e:
            if any(err["code"] != 11000 for err in e.details["writeErrors"]):
                raise
    out["insert-if-absent"] = k / (time.perf_counter() - t)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    if not os.access(FERRETDB, os.X_OK):
        raise SystemExit(f"{FERRETDB} missing: run ./hive setup")
    work = tempfile.mkdtemp(prefix="hive-bench-mongo-")
    os.chmod(work, 0o755)
    rng = random.Random(1)
    results = {}
    backends = []
    try:
        for name in ("sqlite", "postgresql"):
            bdir = os.path.join(work, name)
            os.makedirs(bdir)
            os.chmod(bdir, 0o755)
            backends.append(Backend(name, bdir).start())
        for n in sizes:
            # Both backends at one size before the next size: the machine's drift
            # lands on both alike.
            for b in backends:
                coll = b.client["bench"][f"observations_{n}"]
                results.setdefault(b.name, {})[n] = measure(coll, n, rng)
                b.client.drop_database("bench")
                print(f"  {b.name:<10} N={n:<7} " + "  ".join(
                    f"{k} {v:,.0f}/s" for k, v in results[b.name][n].items()), flush=True)
    finally:
        for b in backends:
            b.stop()
        shutil.rmtree(work, ignore_errors=True)

    ops = ["fill", "upsert", "find _id", "$in 500", "insert-if-absent"]
    print()
    print("FerretDB 1.24: SQLite vs PostgreSQL (per second; find _id counts round trips, the rest documents)")
    print(f"{'N':>7}  {'operation':<17} {'sqlite':>10} {'postgresql':>11} {'pg/sqlite':>10}")
    for n in sizes:
        for op in ops:
            s, p = results["sqlite"][n][op], results["postgresql"][n][op]
            print(f"{n:>7}  {op:<17} {s:>10,.0f} {p:>11,.0f} {p / s:>9.2f}x")
    with open(os.path.join(ROOT, ".hive", "bench-mongo-backends.json"), "w") as f:
        json.dump({"postgresql_version": subprocess.run([pg_bin("postgres"), "--version"], capture_output=True,
                                                        text=True).stdout.strip(),
                   "results": {b: {str(n): r for n, r in v.items()} for b, v in results.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
