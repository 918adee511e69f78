#!/usr/bin/env python3
"""./hive chaos: the closed loop of demo_loop.py on a PRIVATE stack (its own Kafka, FerretDB
and Redis on free ports, data under .hive/tmp, removed at the end; the shared stack is never
touched) while a fault injector SIGKILLs a random service 20 times, restarts Kafka once and
stops MongoDB and Redis for 30 s each (at the same time). At the end it checks, by id, that no event was lost
or duplicated on the services' output topics, that no change was applied twice (revisions
consecutive), that every experiment old enough has exactly one result, that every service
is ready again, and prints the summary table.

    chaos.py [--duration S] [--kills N] [--outage S] [--json FILE] [--bin-dir DIR]
"""
import argparse
import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pymongo
from confluent_kafka.admin import AdminClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_loop  # noqa: E402

ROOT = demo_loop.ROOT
HIVE = os.path.join(ROOT, ".hive")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A stack process of the private stack, stoppable and restartable on the same port and data."""

    def __init__(self, name, argv, base, ready):
        self.name, self.argv, self.base, self.ready_fn = name, argv, base, ready
        self.proc, self.starts = None, 0

    def start(self, timeout=120):
        self.starts += 1
        log = open(os.path.join(self.base, f"{self.name}.{self.starts}.log"), "wb")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private {self.name} exited with {self.proc.returncode} (see {self.base})")
            if self.ready_fn():
                return
            time.sleep(0.3)
        raise RuntimeError(f"private {self.name} not ready within {timeout} s (see {self.base})")

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PrivateStack:
    """Kafka (KRaft, the stack's jars and configuration), FerretDB (SQLite) and Redis on free ports."""

    def __init__(self):
        self.base = os.path.join(HIVE, "tmp", "chaos-" + uuid.uuid4().hex[:8])
        os.makedirs(self.base, exist_ok=True)
        self.kport, self.cport, self.mport, self.rport = free_port(), free_port(), free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.kport}"
        self.mongodb_uri = f"mongodb://127.0.0.1:{self.mport}"
        kdir = os.path.join(self.base, "kafka")
        os.makedirs(kdir, exist_ok=True)
        with open(os.path.join(ROOT, "stack", "kafka", "server.properties"), encoding="utf-8") as f:
            text = f.read().replace("@DATA@", kdir)
        text = re.sub(r"127\.0\.0\.1:9092\b", f"127.0.0.1:{self.kport}", text)
        text = re.sub(r"127\.0\.0\.1:9093\b", f"127.0.0.1:{self.cport}", text)
        props = os.path.join(kdir, "server.properties")
        with open(props, "w", encoding="utf-8") as f:
            f.write(text)
        jvm = ["java", "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               f"-Dkafka.logs.dir={kdir}/logs", f"-Dlog4j.configuration=file:{ROOT}/stack/kafka/log4j.properties",
               "-cp", os.path.join(HIVE, "kafka", "libs", "*")]
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        out = subprocess.run(jvm + ["kafka.tools.StorageTool", "format", "-t", cluster, "-c", props,
                                    "--ignore-formatted"], capture_output=True, timeout=180)
        if out.returncode != 0:
            raise RuntimeError("kafka storage format failed: " + out.stderr.decode()[-1000:])
        self.kafka = Proc("kafka", jvm + ["kafka.Kafka", props], self.base, self._kafka_up)
        mdir = os.path.join(self.base, "ferretdb")
        os.makedirs(os.path.join(mdir, "data"), exist_ok=True)
        os.makedirs(os.path.join(mdir, "state"), exist_ok=True)
        self.mongo = Proc("ferretdb", [os.path.join(HIVE, "bin", "ferretdb"), "--handler=sqlite",
                                       f"--sqlite-url=file:{mdir}/data/", f"--listen-addr=127.0.0.1:{self.mport}",
                                       f"--state-dir={mdir}/state", "--debug-addr=-", "--telemetry=disable",
                                       "--log-level=warn"], self.base, self._mongo_up)
        self.redis = Proc("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.rport), "--dir",
                                    self.base, "--save", "", "--appendonly", "no", "--daemonize", "no"],
                          self.base, self._redis_up)

    def _kafka_up(self):
        try:
            socket.create_connection(("127.0.0.1", self.kport), timeout=1).close()
            return bool(AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
                        .list_topics(timeout=5).brokers)
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def _mongo_up(self):
        try:
            pymongo.MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=1000).admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False

    def _redis_up(self):
        try:
            with socket.create_connection(("127.0.0.1", self.rport), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self):
        for p in (self.kafka, self.mongo, self.redis):
            p.start()

    def destroy(self):
        for p in (self.redis, self.mongo, self.kafka):
            try:
                p.stop(30)
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
        shutil.rmtree(self.base, ignore_errors=True)


class Chaos:
    """The fault schedule: SIGKILLs on one thread, the stack faults (Kafka restart, then
    MongoDB, then Redis) on another, so that a slow broker restart delays no kill."""

    def __init__(self, stack, duration, kills, outage, seed, log):
        self.stack, self.log, self.duration, self.outage = stack, log, duration, outage
        self.rng = random.Random(seed)
        # Faults in the first part of the run; the rest (at least 60 s) lets the loop settle.
        quiet_end = max(20.0, duration - 70)
        self.kill_times = sorted(self.rng.uniform(5, quiet_end) for _ in range(kills))
        self.kafka_at = 8.0
        self.kills = []
        self.events = []
        self.threads = []

    def note(self, loop, msg):
        self.events.append({"t": round(loop.t(), 1), "fault": msg})
        self.log(f"  [{loop.t():6.1f}s] CHAOS: {msg}")

    def _wait_until(self, loop, t):
        while loop.t() < t and not self.stopping:
            time.sleep(0.2)
        return not self.stopping

    def _kills(self, loop):
        for k, at in enumerate(self.kill_times):
            if not self._wait_until(loop, at):
                return
            with loop.lock:
                name = self.rng.choice(sorted(loop.svcs))
                svc = loop.svcs[name]
                svc.kill9()
                svc.start()
            self.kills.append(name)
            self.note(loop, f"SIGKILL {name} (#{k + 1}), restarted")

    def _stack(self, loop):
        if not self._wait_until(loop, self.kafka_at):
            return
        self.note(loop, "Kafka restart: stopping the broker")
        t = time.time()
        self.stack.kafka.stop(timeout=20)
        time.sleep(2)
        self.stack.kafka.start()
        self.note(loop, f"Kafka restart: the broker answers again ({time.time() - t:.0f} s)")
        # MongoDB and Redis: both stopped for `outage` seconds, at the same time (each its 30 s).
        if not self._wait_until(loop, loop.t() + 3):
            return
        t = time.time()
        for proc, label in ((self.stack.mongo, "MongoDB"), (self.stack.redis, "Redis")):
            proc.stop()
            self.note(loop, f"{label} stopped for {self.outage:.0f} s")
        while time.time() - t < self.outage:
            time.sleep(0.2)
        for proc, label in ((self.stack.mongo, "MongoDB"), (self.stack.redis, "Redis")):
            proc.start()
            self.note(loop, f"{label} started again after {time.time() - t:.0f} s")

    def step(self, loop):
        if not self.threads:
            self.stopping = False
            import threading
            self.threads = [threading.Thread(target=f, args=(loop,), daemon=True) for f in (self._kills, self._stack)]
            for th in self.threads:
                th.start()

    def finish(self):
        """Waits for the stack faults to end (the stack must be whole for the checks)."""
        self.stopping = True
        for th in self.threads:
            th.join(180)


def _ready_body(svc):
    try:
        import requests
        return requests.get(svc.url("/ready"), timeout=3).text[:300]
    except Exception as e:  # noqa: BLE001
        return str(e)[:200]


def check_topics(loop, s, settle_s):
    """No event lost or duplicated (by id), no change applied twice, one result per experiment."""
    out = {}

    def ids(base, schema, field, keep=lambda r: True):
        recs = [r for _, r in loop.read_topic(base, schema) if keep(r)]
        seen, dup = {}, 0
        for r in recs:
            k = r[field]
            if k in seen and seen[k] != r:
                dup += 1
            seen[k] = r
        return recs, seen, dup

    _, ins, d1 = ids("insights.generated", "Insight", "insight_id", lambda r: r["source"] != "analyst-agent")
    reqs, req_by, d2 = ids("experiments.requests", "ExperimentRequest", "experiment_id")
    res, res_by, d3 = ids("experiments.results", "ExperimentResult", "experiment_id")
    cmds, cmd_by, d4 = ids("optimization.commands", "OptimizationCommand", "command_id")
    evs, ev_by, d5 = ids("optimization.applied", "OptimizationEvent", "event_id")
    # Exactly-once delivery rewrites nothing: a record seen twice with different content is a duplicate;
    # the same id twice with identical content would be an at-least-once replay.
    raw_dups = {}
    for base, schema, field in (("experiments.results", "ExperimentResult", "experiment_id"),
                                ("optimization.applied", "OptimizationEvent", "event_id"),
                                ("experiments.requests", "ExperimentRequest", "experiment_id"),
                                ("optimization.commands", "OptimizationCommand", "command_id")):
        recs = [r[field] for _, r in loop.read_topic(base, schema)]
        raw_dups[base] = len(recs) - len(set(recs))
    cutoff = (time.time() - settle_s) * 1000
    old_reqs = [e for e, r in req_by.items() if r["requested_at"] < cutoff]
    missing_results = [e for e in old_reqs if e not in res_by]
    applies = [c for c in cmds if c["command"] == "APPLY" and c["issued_at"] < cutoff]
    answered = {e["optimization_id"] for e in evs}
    missing_events = [c["optimization_id"] for c in applies if c["optimization_id"] not in answered]
    applied_twice = {}
    for e in evs:
        if e["event_type"] == "APPLIED":
            applied_twice[e["optimization_id"]] = applied_twice.get(e["optimization_id"], 0) + 1
    applied_twice = {k: v for k, v in applied_twice.items() if v > 1}
    revs = {}
    for base, schema, key in (("consensus.weights", "ConsensusWeights", "engine"),
                              ("orchestrator.policies", "OrchestratorPolicy", "policy"),
                              ("orchestrator.slos", "ServiceSLO", "service")):
        for _, r in loop.read_topic(base, schema):
            revs.setdefault(f"{base}:{r[key]}", set()).add(r["revision"])
    gaps = {k: sorted(v) for k, v in revs.items() if sorted(v) != list(range(min(v), min(v) + len(v)))}
    out.update({
        "insights": len(ins), "experiment_requests": len(req_by), "experiment_results": len(res_by),
        "commands": len(cmd_by), "applied_events": len(ev_by),
        "duplicates_by_id": {"insights.generated": d1, "experiments.requests": d2, "experiments.results": d3,
                             "optimization.commands": d4, "optimization.applied": d5},
        "same_id_twice": raw_dups,
        "experiments_without_result": missing_results, "apply_without_event": missing_events,
        "applied_twice": applied_twice, "revision_gaps": gaps,
    })
    out["ok"] = (not any(out["duplicates_by_id"].values()) and not any(raw_dups.values()) and not missing_results
                 and not missing_events and not applied_twice and not gaps)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=240)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--outage", type=float, default=30)
    p.add_argument("--settle", type=float, default=75, help="requests younger than this need no result yet")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--mlflow", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    p.add_argument("--json", default="")
    p.add_argument("--quiet", action="store_true")
    opts = p.parse_args(argv)
    say = (lambda m: None) if opts.quiet else (lambda m: print(m, flush=True))
    stack = PrivateStack()
    say(f"Private stack under {stack.base}: Kafka {stack.bootstrap}, FerretDB {stack.mongodb_uri}, "
        f"Redis 127.0.0.1:{stack.rport} (the shared stack is not touched)")
    loop = None
    try:
        stack.start()
        lo = argparse.Namespace(duration=opts.duration, regression_at=15, drift_at=45, seed=opts.seed, tag="",
                                bin_dir=opts.bin_dir, bootstrap=stack.bootstrap, mongodb_uri=stack.mongodb_uri,
                                redis_host="127.0.0.1", redis_port=stack.rport, mlflow=opts.mlflow, plot="",
                                json="", quiet=opts.quiet, chaos=None)
        loop = demo_loop.Loop(lo)
        lo.chaos = Chaos(stack, opts.duration, opts.kills, opts.outage, opts.seed, say)
        s = loop.run()
        lo.chaos.finish()
        # Every service ready again (give the last restarted ones their time).
        deadline = time.time() + 60
        while time.time() < deadline and not all(sv.ready() for sv in loop.svcs.values()):
            time.sleep(1)
        s["ready_at_end"] = {n: sv.ready() for n, sv in loop.svcs.items()}
        s["chaos"] = {"kills": lo.chaos.kills, "events": lo.chaos.events}
        s["not_ready_why"] = {n: _ready_body(sv) for n, sv in loop.svcs.items() if not sv.ready()}
        s["checks"] = check_topics(loop, s, opts.settle)
        s["exit_codes"] = loop.stop()
    finally:
        if loop is not None:
            loop.stop()
        stack.destroy()
    demo_loop.print_summary(s, lo)
    c = s["checks"]
    print()
    print("Fault injection")
    print(f"  SIGKILLs: {len(s['chaos']['kills'])} ({', '.join(sorted(set(s['chaos']['kills'])))}); Kafka restarted "
          f"once; MongoDB and Redis stopped {opts.outage:.0f} s each")
    print(f"  records by id: insights {c['insights']}, experiment requests {c['experiment_requests']}, results "
          f"{c['experiment_results']}, commands {c['commands']}, applier events {c['applied_events']}")
    print(f"  duplicated ids: {sum(c['duplicates_by_id'].values()) + sum(c['same_id_twice'].values())}; "
          f"experiments without a result: {len(c['experiments_without_result'])}; APPLY without an event: "
          f"{len(c['apply_without_event'])}; applied twice: {len(c['applied_twice'])}; revision gaps: "
          f"{len(c['revision_gaps'])}")
    print(f"  services ready at the end: {sum(s['ready_at_end'].values())}/{len(s['ready_at_end'])}"
          + (f"; not ready: {s['not_ready_why']}" if s.get("not_ready_why") else ""))
    print(f"  services that stopped by themselves and were started again (as a pod would be): "
          f"{len(s['supervisor_restarts'])} {[(r['service'], r['exit']) for r in s['supervisor_restarts']]}")
    print(f"  verdict: {'PASS' if c['ok'] and all(s['ready_at_end'].values()) else 'FAIL'}")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump(s, f, indent=1, default=str)
    return 0 if c["ok"] and all(s["ready_at_end"].values()) and s["constraint_violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
