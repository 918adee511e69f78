#!/usr/bin/env python3
"""The closed loop of ./hive demo, ./hive chaos and tests/e2e: the six services on their
own topics, groups and databases (a run tag), the Hive simulator (tests/sim/hive_sim.py)
around them, a narration read from the services' REST APIs, and the summary table checked
against the simulator's ground truth.

    demo_loop.py [--duration S] [--plot FILE.html] [--json FILE] [--bin-dir DIR] [--quiet]

Time is compressed by the services' configuration (TIME_CONFIG below), never by skipping
steps: experiments of 60 s, looks every 2 s, drift checks every 6 s, impact watches of 30 s.
"""
import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SERVICES = ("optimizer", "experiment-manager", "weight-recalibrator", "slo-adjuster", "model-monitor", "retrainer")
BASE_TOPICS = ("telemetry.aggregated", "insights.generated", "consensus.decisions", "ml.features",
               "approvals.requests", "approvals.responses", "experiments.requests", "experiments.assignments",
               "experiments.results", "optimization.commands", "optimization.applied", "consensus.weights",
               "orchestrator.slos", "orchestrator.policies", "models.health", "models.degraded", "models.lifecycle")
COMPACTED = ("experiments.assignments", "consensus.weights", "orchestrator.slos", "orchestrator.policies")

# Time compressed by configuration (each key is a documented setting of the service).
TIME_CONFIG = {
    "optimizer": {"EXPERIMENT_DURATION_SECONDS": "600", "HYPOTHESIS_TIMEOUT_SECONDS": "240",
                  "MIN_IMPROVEMENT_THRESHOLD": "0.01", "EXPERIMENT_TRAFFIC_SPLIT": "0.5",
                  "POLICY_SEED": "7", "EXPLORATION_RATE": "0.2",
                  "APPROVAL_RISK_THRESHOLD": "0.4"},
    "experiment-manager": {"EXPERIMENT_TIME_SCALE": "0.1", "EVALUATION_INTERVAL_MS": "2000",
                           "MIN_SAMPLE_SIZE": "5", "CANARY_STEP_MIN_SECONDS": "40", "NO_DATA_INTERVALS": "20"},
    "weight-recalibrator": {"IMPACT_WATCH_WINDOW_SECONDS": "20"},
    "slo-adjuster": {"IMPACT_WATCH_WINDOW_SECONDS": "20", "ERROR_BUDGET_WINDOW_SECONDS": "600"},
    "model-monitor": {"MONITOR_INTERVAL_SECONDS": "10", "DRIFT_CHECK_INTERVAL_MINUTES": "0.1",
                      "DRIFT_WINDOW_MINUTES": "0.2", "DRIFT_REFERENCE_ROWS": "400", "DRIFT_WINDOW_ROWS": "400",
                      # 2 of the 4 features at p < 0.01: a false alarm is ~1e-3 per check, not 19 %
                      "DRIFT_THRESHOLD": "0.3", "KS_P_VALUE_THRESHOLD": "0.01"},
    # Applied only for the keys the retrainer's --help lists (it is being written).
    "retrainer": {"RETRAINING_COOLDOWN_HOURS": "0", "DRIVE_INTERVAL_MS": "1000", "DATASET_NUM_SAMPLES": "400",
                  "TRAINING_TIMEOUT_SECONDS": "300", "NOTIFICATION_CHANNELS": "", "LLM_PROVIDER": ""},
}


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(opts, msg=""):
    if not opts.quiet:
        print(msg, flush=True)


def help_env(binary):
    """KEY -> default, parsed from `<service> --help` (the runtime's config table)."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10).stdout
    env, key = {}, None
    for line in out.splitlines():
        m = re.match(r"^  ([A-Z][A-Z0-9_]+)\s", line)
        if m:
            key = m.group(1)
            continue
        m = re.match(r"^\s+default (.*?); ", line)
        if key and m:
            env[key] = m.group(1)
            key = None
    return env


def retrainer_available(bin_dir):
    b = os.path.join(bin_dir, "retrainer", "retrainer")
    try:
        return os.path.exists(b) and subprocess.run([b, "--help"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Svc:
    def __init__(self, name, binary, env, logdir):
        self.name, self.binary, self.env, self.logdir = name, binary, env, logdir
        self.port = int(env["HTTP_PORT"])
        self.proc, self.starts = None, 0

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.logdir, f"{self.name}.{self.starts}.log"), "wb")
        self.proc = subprocess.Popen([self.binary], env={**os.environ, **self.env}, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, timeout=3):
        try:
            r = requests.get(self.url(path), timeout=timeout)
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def ready(self):
        try:
            return requests.get(self.url("/ready"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} (log in {self.logdir})")
            if self.ready():
                return True
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready within {timeout} s (log in {self.logdir})")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode if self.proc else None


def metric_sum(svc, name):
    try:
        text = requests.get(svc.url("/metrics"), timeout=5).text
    except requests.RequestException:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Loop:
    """One closed-loop run: topics, services, simulator, narration, figures."""

    def __init__(self, opts):
        self.o = opts
        self.tag = opts.tag or "loop-" + time.strftime("%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.dir = os.path.join(ROOT, ".hive", "demo", self.tag)
        os.makedirs(self.dir, exist_ok=True)
        self.topic = {t: f"{t}.{self.tag}" for t in BASE_TOPICS}
        self.svcs = {}
        self.sim = None
        self.seen = set()
        self.samples = []  # per narration tick: t, figures from the APIs
        self.restarts = []  # services that exited by themselves and were started again
        self.lock = __import__("threading").Lock()  # the fault injector and the supervisor
        self.read_cache = {}
        self.t0 = None

    # -- setup ---------------------------------------------------------------------------
    def create_topics(self):
        admin = AdminClient({"bootstrap.servers": self.o.bootstrap})
        new = []
        for base, name in self.topic.items():
            cfg = {"cleanup.policy": "compact"} if base in COMPACTED else {}
            new.append(NewTopic(name, 1 if base in COMPACTED else 3, 1, config=cfg))
            if base in ("telemetry.aggregated", "insights.generated", "consensus.decisions", "ml.features",
                        "approvals.responses", "experiments.requests", "experiments.results",
                        "optimization.commands", "optimization.applied", "models.degraded"):
                new.append(NewTopic(name + ".dlq", 1, 1))
        for _, fut in admin.create_topics(new).items():
            try:
                fut.result(30)
            except Exception as e:  # noqa: BLE001 - an existing topic is fine
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    raise

    def service_env(self, name, binary):
        env = {}
        for key, default in help_env(binary).items():
            if key.endswith("_TOPIC"):
                if default in self.topic:
                    env[key] = self.topic[default]
                elif default.endswith(".timers"):
                    env[key] = f"{default}.{self.tag}"
        db = re.sub(r"[^a-z0-9_]", "_", f"{name}_{self.tag}")
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": self.o.bootstrap, "MONGODB_URI": self.o.mongodb_uri,
            "MONGODB_DATABASE": db, "REDIS_HOST": self.o.redis_host, "REDIS_PORT": str(self.o.redis_port),
            "KAFKA_CONSUMER_GROUP": f"{name}-{self.tag}", "KAFKA_TRANSACTIONAL_ID": f"{name}-{self.tag}",
            "HTTP_PORT": str(free_port()), "GRPC_PORT": str(free_port()), "LOG_LEVEL": "info",
            "MLFLOW_TRACKING_URI": self.o.mlflow, "MLFLOW_NAME_SUFFIX": f"-{self.tag}",
            "FEEDBACK_MONGODB_URI": self.o.mongodb_uri, "FEEDBACK_MONGODB_DATABASE": self.feedback_db(),
        })
        env.update(TIME_CONFIG.get(name, {}))
        if name == "retrainer":
            env["DATASET_DIR"] = os.path.join(self.dir, "datasets")
        known = help_env(binary)
        return {k: v for k, v in env.items() if k in known or k in ("HTTP_PORT",)}

    def feedback_db(self):
        return re.sub(r"[^a-z0-9_]", "_", f"neural_hive_{self.tag}")

    def start_services(self):
        self.retrainer = retrainer_available(self.o.bin_dir)
        self.retrainer_why = "build/retrainer/retrainer --help does not exit 0"
        for name in SERVICES:
            if name == "retrainer" and not self.retrainer:
                continue
            binary = os.path.join(self.o.bin_dir, name, name)
            svc = Svc(name, binary, self.service_env(name, binary), self.dir)
            svc.start()
            self.svcs[name] = svc
        for name, svc in list(self.svcs.items()):
            try:
                svc.wait_ready()
            except RuntimeError as e:
                if name != "retrainer":
                    raise
                self.retrainer = False
                self.retrainer_why = f"started but {e}"
                del self.svcs[name]

    def start_sim(self):
        args = [sys.executable, os.path.join(ROOT, "tests", "sim", "hive_sim.py"), "--tag", self.tag,
                "--bootstrap", self.o.bootstrap, "--mongodb-uri", self.o.mongodb_uri,
                "--feedback-db", self.feedback_db(), "--regression-at", str(self.o.regression_at),
                "--drift-at", str(self.o.drift_at), "--model-name", f"technical-evaluator-{self.tag}", "--out", os.path.join(self.dir, "ground_truth.json"),
                "--timeline", os.path.join(self.dir, "timeline.jsonl"), "--seed", str(self.o.seed)]
        log = open(os.path.join(self.dir, "hive_sim.log"), "wb")
        self.sim = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    # -- narration -----------------------------------------------------------------------
    def t(self):
        return time.time() - self.t0

    def note(self, key, msg):
        if key in self.seen:
            return
        self.seen.add(key)
        say(self.o, f"  [{self.t():6.1f}s] {msg}")

    def items(self, doc, *names):
        if isinstance(doc, list):
            return doc
        if isinstance(doc, dict):
            for n in names + ("items", "data", "results"):
                if isinstance(doc.get(n), list):
                    return doc[n]
        return []

    def narrate_once(self):
        opt, em = self.svcs.get("optimizer"), self.svcs.get("experiment-manager")
        wr, mm = self.svcs.get("weight-recalibrator"), self.svcs.get("model-monitor")
        sample = {"t": round(self.t(), 1)}
        if self.t() >= self.o.regression_at >= 0:
            self.note("reg", f"sim: regression injected on api-gateway (error rate 0.4 % -> 4 %)")
        if self.t() >= self.o.drift_at >= 0:
            self.note("drift", "sim: drift injected on the technical specialist's inputs (f_risk, f_amount), "
                               "its feedback ratings drop to 0.35")
        for h in self.items(opt.get("/api/v1/optimizations?limit=200") if opt else None, "optimizations"):
            oid, st = h.get("optimization_id") or h.get("id"), h.get("status") or h.get("state")
            self.note(("opt", oid, st), f"optimizer: {oid} {h.get('optimization_type', '')} on "
                                        f"{h.get('component') or h.get('target')} "
                                        f"action={h.get('action', '')} risk={fmt(h.get('risk') or h.get('risk_score'))} -> {st}")
        exps = self.items(em.get("/api/v1/experiments?limit=200") if em else None, "experiments")
        for e in exps:
            eid, st = e.get("experiment_id") or e.get("id"), e.get("status")
            dec = e.get("decision") or (e.get("result") or {}).get("decision") or ""
            key = ("exp", eid, st)
            if key in self.seen:
                continue
            stats = ""
            if st not in ("RUNNING", "PENDING", "CREATED"):
                r = em.get(f"/api/v1/experiments/{eid}/results") or {}
                r = r.get("result", r) if isinstance(r, dict) else {}
                dec = r.get("decision", dec)
                stats = (f" improvement={fmt(r.get('improvement'), 3)}"
                         f" {str(r.get('reason', ''))[:110]}")
            self.note(key, f"experiment-manager: {eid} {e.get('experiment_type', '')} "
                           f"on {e.get('target')} params={e.get('parameters', '')} -> {st} {dec}{stats}")
        sample["experiments"] = [{"id": e.get("experiment_id") or e.get("id"), "target": e.get("target"),
                                  "status": e.get("status")} for e in exps]
        wdoc = wr.get("/api/v1/weights/consensus-engine") if wr else None
        if isinstance(wdoc, dict):
            sample["weights"] = wdoc
            rev, ws = wdoc.get("revision"), wdoc.get("weights") or wdoc.get("params") or {}
            if rev is not None and ws:
                self.note(("w", rev), f"weight-recalibrator: consensus-engine weights revision {rev}: "
                                      + " ".join(f"{k}={fmt(v)}" for k, v in sorted(ws.items())))
        if mm:
            d = mm.get(f"/api/v1/models/technical-evaluator-{self.tag}/drift")
            if isinstance(d, dict):
                sample["drift"] = {"drift_score": d.get("drift_score"), "drifted": d.get("drifted")}
                if d.get("drifted"):
                    feats = [f["name"] for f in d.get("features", []) if f.get("drifted")]
                    self.note("drift-detected", f"model-monitor: technical-evaluator drifted, score {fmt(d.get('drift_score'))} "
                                                f"> {fmt(d.get('threshold'))}; features {', '.join(feats)} "
                                                f"(KS p {', '.join(fmt(f.get('ks_p_value'), 3) for f in d.get('features', []) if f.get('drifted'))})")
            model = f"technical-evaluator-{self.tag}"
            h = mm.get(f"/api/v1/models/{model}/health?limit=1")
            for rep in self.items(h, "reports", "history"):
                st = rep.get("status") or rep.get("verdict")
                self.note(("health", st), f"model-monitor: {model} {st}, feedback avg "
                                          f"{fmt(rep.get('feedback_avg'))} over {rep.get('feedback_count')} ratings "
                                          f"{'; '.join(rep.get('reasons') or [])[:100]}")
        sa = self.svcs.get("slo-adjuster")
        pdoc = sa.get("/api/v1/policies/api-gateway") if sa else None
        if isinstance(pdoc, dict) and pdoc.get("revision") is not None:
            self.note(("pol", pdoc["revision"]), f"slo-adjuster: orchestrator.policies api-gateway revision "
                                                 f"{pdoc['revision']}: {pdoc.get('values')}")
        tl = self.timeline_tail()
        if tl:
            sample["true"] = tl
            if tl.get("regressed") and tl.get("api-gateway", 1) < 0.01:
                self.note("reg-gone", f"sim: api-gateway's true error rate back to {tl['api-gateway']:.4f} "
                                      f"(tunables from orchestrator.policies)")
        self.samples.append(sample)

    def supervise(self):
        """A service that stopped by itself (e.g. on a fatal Kafka error, by design) is started
        again, as its pod would be; each such restart is counted and narrated."""
        with self.lock:
            self._supervise()

    def _supervise(self):
        for name, svc in self.svcs.items():
            if svc.proc and svc.proc.poll() is not None:
                code = svc.proc.returncode
                self.restarts.append({"t": round(self.t(), 1), "service": name, "exit": code})
                say(self.o, f"  [{self.t():6.1f}s] supervisor: {name} exited with {code}; started again "
                            f"(log {name}.{svc.starts}.log)")
                svc.start()

    def timeline_tail(self):
        try:
            with open(os.path.join(self.dir, "timeline.jsonl"), "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 4096))
                lines = f.read().decode("utf-8", "replace").splitlines()
            return json.loads(lines[-1]) if lines else None
        except (OSError, ValueError):
            return None

    def watch_topics(self):
        """Narrates, as they are committed, the records of the topics no REST API lists:
        degradations, the retrainer's lifecycle, and experiment results."""
        sys.path.insert(0, os.path.join(ROOT, "tests", "sim"))
        import avro_io
        names = {self.topic["models.degraded"]: "ModelDegradation", self.topic["models.lifecycle"]: "ModelLifecycleEvent"}
        # log_level 0: under ./hive chaos the broker goes away on purpose
        c = Consumer({"bootstrap.servers": self.o.bootstrap, "group.id": "demo-watch-" + uuid.uuid4().hex,
                      "isolation.level": "read_committed", "enable.auto.commit": False, "log_level": 0})
        md = c.list_topics(timeout=30)
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in names if t in md.topics
                  for p in md.topics[t].partitions])
        while not self.watch_stop.is_set():
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            try:
                r = avro_io.decode(names[m.topic()], m.value())
            except (ValueError, KeyError):
                continue
            if names[m.topic()] == "ModelDegradation":
                self.note(("deg", r["degradation_id"]), f"models.degraded: {r['model']} {r['reason']} "
                          f"{', '.join(r['drifted_features']) or r['details'][:100]}")
            else:
                self.note(("life", r["event_id"]), f"models.lifecycle: {r['model']} {r['event_type']} "
                          f"{r.get('from_version') or ''}->{r.get('to_version') or ''} {r['reason'][:80]}")
        c.close()

    def run(self):
        o = self.o
        say(o, f"Run tag {self.tag}: topics <name>.{self.tag}, databases *_{self.tag.replace('-', '_')}; "
               f"logs in {self.dir}")
        self.create_topics()
        self.start_services()
        say(o, "Services ready: " + ", ".join(f"{n} :{s.port}" for n, s in self.svcs.items()))
        if not self.retrainer:
            say(o, f"retrainer: not available ({self.retrainer_why}); "
                   "step 4 stops at the degradation on models.degraded")
        self.t0 = time.time()
        import threading
        self.watch_stop = threading.Event()
        watcher = threading.Thread(target=self.watch_topics, daemon=True)
        watcher.start()
        self.start_sim()
        say(o, f"Simulator started; the loop runs {o.duration:.0f} s")
        try:
            while self.t() < o.duration:
                if o.chaos is not None:
                    o.chaos.step(self)
                self.supervise()
                self.narrate_once()
                time.sleep(2.0)
        finally:
            self.watch_stop.set()
            self.sim.send_signal(signal.SIGTERM)
            try:
                self.sim.wait(60)
            except subprocess.TimeoutExpired:
                self.sim.kill()
        return self.summary()

    # -- the figures -----------------------------------------------------------------------
    def read_topic(self, base, schema, timeout=20):
        """Every record of the run's `base` topic, read_committed, from the start (read once)."""
        key = (base, schema)
        if key not in self.read_cache:
            self.read_cache[key] = self._read_topic(base, schema, timeout)
        return self.read_cache[key]

    def _read_topic(self, base, schema, timeout):
        sys.path.insert(0, os.path.join(ROOT, "tests", "sim"))
        import avro_io
        c = Consumer({"bootstrap.servers": self.o.bootstrap, "group.id": "demo-reader-" + uuid.uuid4().hex,
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "log_level": 0})
        md = c.list_topics(self.topic[base], timeout=30)
        c.assign([TopicPartition(self.topic[base], p, OFFSET_BEGINNING)
                  for p in md.topics[self.topic[base]].partitions])
        out, idle_since, deadline = [], time.time(), time.time() + timeout
        while time.time() < deadline and time.time() - idle_since < 3:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            idle_since = time.time()
            try:
                out.append((m.key(), avro_io.decode(schema, m.value())))
            except ValueError:
                pass
        c.close()
        return out

    def summary(self):
        with open(os.path.join(self.dir, "ground_truth.json"), encoding="utf-8") as f:
            gt = json.load(f)
        results = self.read_topic("experiments.results", "ExperimentResult")
        applied = self.read_topic("optimization.applied", "OptimizationEvent")
        requests_ = self.read_topic("experiments.requests", "ExperimentRequest")
        degraded = self.read_topic("models.degraded", "ModelDegradation")
        insights = self.read_topic("insights.generated", "Insight")
        weights = self.read_topic("consensus.weights", "ConsensusWeights")
        lifecycle = self.read_topic("models.lifecycle", "ModelLifecycleEvent")
        s = compute_summary(gt, results, applied, requests_, degraded, insights, weights, lifecycle,
                            self.o.regression_at)
        s["tag"] = self.tag
        s["retrainer"] = "running" if self.retrainer else "not available"
        # /ready may flip false for a moment on a loaded machine (a transaction over 15 s): give it 30 s.
        deadline = time.time() + 30
        while time.time() < deadline and not all(sv.ready() for sv in self.svcs.values()):
            time.sleep(1)
        s["ready_at_end"] = {n: sv.ready() for n, sv in self.svcs.items()}
        s["where"] = {n: sv.url("") for n, sv in self.svcs.items()}
        s["samples"] = self.samples
        s["supervisor_restarts"] = self.restarts
        return s

    def stop(self):
        codes = {}
        for name in reversed(list(self.svcs)):
            codes[name] = self.svcs[name].stop()
        return codes


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def compute_summary(gt, results, applied, requests_, degraded, insights, weights, lifecycle, regression_at):
    """The summary table's figures from the topics, next to the ground truth."""
    exps = gt["experiments"]
    res = {}
    dup_results = 0
    for _, r in results:
        if r["experiment_id"] in res and res[r["experiment_id"]] != r:
            dup_results += 1
        res[r["experiment_id"]] = r
    req_by_id = {r["experiment_id"]: r for _, r in requests_}
    applied_by_opt = {}
    for _, ev in applied:
        applied_by_opt.setdefault(ev["optimization_id"], []).append(ev)
    ids = set()
    for _, ev in applied:
        ids.add(ev["event_id"])
    reg_service = gt["regressions_injected"][0]["service"] if gt["regressions_injected"] else None
    detected = [i for _, i in insights if reg_service and i["component"] == reg_service
                and i["source"] != "analyst-agent"]
    detect_t = min((i["timestamp"] for i in detected), default=None)
    # Harmful changes: candidates the ground truth says are worse than the baseline.
    harmful, caught, harmful_running = [], [], []
    fixes_applied = []
    for eid, e in exps.items():
        r = res.get(eid)
        opt = (req_by_id.get(eid) or {}).get("optimization_id")
        evs = applied_by_opt.get(opt, []) if opt else []
        was_applied = any(ev["event_type"] == "APPLIED" for ev in evs)
        rolled = any(ev["event_type"] == "ROLLED_BACK" for ev in evs)
        if e["kind"] == "harm" and r is None:
            harmful_running.append(eid)  # not ended (and not applied) when the run stopped
        elif e["kind"] == "harm":
            harmful.append(eid)
            if r is not None and (r["decision"] != "ACCEPT" or rolled) and not (was_applied and not rolled):
                caught.append({"experiment_id": eid, "status": r["status"], "decision": r["decision"],
                               "reason": r["reason"][:120]})
        if e["kind"] == "fix" and e["component"] == reg_service and was_applied:
            fixes_applied.append(eid)
    final_err = gt["service_true_error_final"].get(reg_service) if reg_service else None
    # Fixed: the service's true error rate is back under the optimizer's degradation threshold.
    fixed = bool(reg_service and final_err is not None and final_err < 0.01)
    # Weights: revisions consecutive, and the regret.
    revs = sorted(w["revision"] for _, w in weights if w["engine"] == "consensus-engine")
    revs_unique = sorted(set(revs))
    consecutive = revs_unique == list(range(revs_unique[0], revs_unique[0] + len(revs_unique))) if revs_unique else True
    outcomes = {}
    for _, r in results:
        outcomes[(r["status"], r["decision"])] = outcomes.get((r["status"], r["decision"]), 0) + 1
    drift_t = gt["t0_ms"] + 1000 * gt["drift_injected"]["t"] if gt.get("drift_injected") else None
    drift = [d for _, d in degraded if d["reason"] == "DRIFT" and drift_t is not None and d["detected_at"] >= drift_t]
    false_alarms = [d for _, d in degraded if d["reason"] == "DRIFT" and (drift_t is None or d["detected_at"] < drift_t)]
    return {
        "regressions_injected": len(gt["regressions_injected"]),
        "regressions_detected": 1 if detected else 0,
        "detection_delay_s": None if detect_t is None or regression_at < 0
        else round((detect_t - gt["t0_ms"]) / 1000.0 - regression_at, 1),
        "regressions_fixed": 1 if fixed else 0,
        "fix_applied_by": fixes_applied,
        "regressed_error_final": final_err,
        "harmful_changes": len(harmful),
        "harmful_caught": len(caught),
        "harmful_running": len(harmful_running),
        "harmful_detail": caught,
        "experiments": len(exps),
        "experiment_results": len(res),
        "experiment_outcomes": {f"{k[0]}/{k[1]}": v for k, v in sorted(outcomes.items())},
        "results_duplicated": dup_results,
        "experiments_without_result": sorted(set(req_by_id) - set(res)),
        "applied_events": len(applied), "applied_events_unique": len(ids),
        "weights_revisions": len(revs_unique), "weights_revisions_consecutive": consecutive,
        "weights_initial": gt["weights_initial"], "weights_final": gt["weights_final"],
        "best_feasible_weights": gt["best_feasible_weights"],
        "engine_error_initial": gt["engine_error_initial"], "engine_error_final": gt["engine_error_final"],
        "best_feasible_error": gt["best_feasible_error"],
        "weight_regret_initial": gt["weight_regret_initial"], "weight_regret_final": gt["weight_regret_final"],
        "constraint_violations": len(gt["constraint_violations"]),
        "constraint_violation_detail": gt["constraint_violations"][:5],
        "drift_injected": gt["drift_injected"],
        "drift_detected": [{"model": d["model"], "features": list(d["drifted_features"]),
                            "delay_s": round((d["detected_at"] - drift_t) / 1000.0, 1)} for d in drift],
        "drift_false_alarms": [{"model": d["model"], "features": list(d["drifted_features"])} for d in false_alarms],
        "metrics_degradations": [d["model"] for _, d in degraded if d["reason"] == "METRICS"],
        "lifecycle": [(l["model"], l["event_type"]) for _, l in lifecycle],
        "approvals": gt["approvals"],
        "counts": gt["counts"],
        "experiment_bars": [{"label": f"{e['component']} {json.dumps(e['parameters'])}",
                             "title": f"{eid}: {e['kind']}; {(e.get('result') or {}).get('status', 'running')}",
                             "start": e["first_seen_s"], "end": (e.get("result") or {}).get("t"),
                             "decision": (e.get("result") or {}).get("decision")}
                            for eid, e in sorted(exps.items(), key=lambda kv: kv[1]["first_seen_s"])],
    }


def print_summary(s, opts):
    def row(k, v, truth=""):
        print(f"  {k:<44} {v:<22} {truth}")
    print()
    print("Summary (figures from the topics and APIs; ground truth from the simulator)")
    print(f"  {'':<44} {'suite':<22} ground truth")
    row("regressions injected / detected / fixed",
        f"{s['regressions_injected']} / {s['regressions_detected']} / {s['regressions_fixed']}",
        f"detected {fmt(s['detection_delay_s'], 1)} s after the injection")
    row("  api-gateway true error rate at the end", fmt(s["regressed_error_final"], 4), "base 0.0040, regressed 0.0400")
    row("harmful changes tried / caught", f"{s['harmful_changes']} / {s['harmful_caught']}",
        f"harm per the sim's truth; {s['harmful_running']} more still under test")
    row("experiments requested / with a result", f"{s['experiments']} / {s['experiment_results']}",
        "duplicated results: %d" % s["results_duplicated"])
    row("experiment outcomes", ", ".join(f"{k} {v}" for k, v in s["experiment_outcomes"].items()) or "-")
    row("weights revisions (consecutive)", f"{s['weights_revisions']} ({s['weights_revisions_consecutive']})")
    row("engine decision error initial -> final",
        f"{s['engine_error_initial']:.4f} -> {s['engine_error_final']:.4f}",
        f"best fixed feasible {s['best_feasible_error']:.4f}")
    row("weight regret initial -> final",
        f"{s['weight_regret_initial']:.4f} -> {s['weight_regret_final']:.4f}", "vs best fixed feasible weights")
    row("  weights final", " ".join(f"{k[:4]}={v:.2f}" for k, v in s["weights_final"].items()))
    row("  best fixed feasible", " ".join(f"{k[:4]}={v:.2f}" for k, v in s["best_feasible_weights"].items()))
    row("constraint violations", str(s["constraint_violations"]), "must be 0")
    row("drift injected / detected / false alarms",
        f"{'1' if s['drift_injected'] else '0'} / {len(s['drift_detected'])} / {len(s['drift_false_alarms'])}",
        "; ".join(f"{','.join(d['features'])} after {d['delay_s']} s" for d in s["drift_detected"]) or "-")
    row("retrain / canary / promotion", s["retrainer"] if s["retrainer"] != "running" else
        ", ".join(f"{e} x{n}" for e, n in sorted(__import__("collections").Counter(e for _, e in s["lifecycle"]).items()))
        or "no lifecycle event yet")
    row("Queen Agent answers", str(len(s["approvals"])),
        ", ".join(f"{a['decision']}" for a in s["approvals"][:6]))
    row("services ready at the end", str(sum(s["ready_at_end"].values())) + f"/{len(s['ready_at_end'])}")
    print()
    print("Where to look")
    w = s["where"]
    for name, path in (("optimizer", "/api/v1/optimizations"), ("experiment-manager", "/api/v1/experiments"),
                       ("weight-recalibrator", "/api/v1/weights/consensus-engine"), ("slo-adjuster", "/api/v1/policies/api-gateway"),
                       ("model-monitor", f"/api/v1/models/technical-evaluator-{s['tag']}/drift")):
        if name in w:
            print(f"  {name:<20} {w[name]}{path}   ({w[name]}/metrics)")
    print("  Prometheus (when it scrapes the services): rate(experiments_succeeded_total[5m]), "
          "experiment_guardrail_violations_total, model_drift_score")
    print(f"  files: .hive/demo/{s['tag']}/ (ground_truth.json, timeline.jsonl, service logs)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=180)
    p.add_argument("--regression-at", type=float, default=15)
    p.add_argument("--drift-at", type=float, default=45)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--tag", default="")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--mongodb-uri", default=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017"))
    p.add_argument("--redis-host", default=os.environ.get("REDIS_HOST", "127.0.0.1"))
    p.add_argument("--redis-port", type=int, default=int(os.environ.get("REDIS_PORT", "6379")))
    p.add_argument("--mlflow", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    p.add_argument("--plot", default="", help="write an HTML report here")
    p.add_argument("--json", default="", help="write the summary as JSON here")
    p.add_argument("--quiet", action="store_true")
    opts = p.parse_args(argv)
    opts.chaos = None
    loop = Loop(opts)
    try:
        s = loop.run()
    finally:
        codes = loop.stop()
    s["exit_codes"] = codes
    print_summary(s, opts)
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump(s, f, indent=1, default=str)
    if opts.plot:
        import demo_report
        demo_report.write(opts.plot, s, os.path.join(loop.dir, "timeline.jsonl"))
        print(f"\nHTML report: {opts.plot}")
    return 0 if s["constraint_violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
