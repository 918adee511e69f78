#!/usr/bin/env python3
"""The Hive simulator: plays the Neural Hive around the suite, with a known ground truth.

It is an outside client: Kafka (confluent-kafka), Avro (fastavro over schemas/avro/) and
MongoDB (pymongo); it imports nothing of the services nor of scripts/.

Each window (WINDOW_MS of wall time) it publishes:
- telemetry.aggregated: one window per Orchestrator service and variant, whose error rate
  follows the injected regression and the tunables the slo-adjuster published on
  orchestrator.policies (and, per variant, the parameters on experiments.assignments);
  slo_compliance follows orchestrator.slos; the Consensus Engine's windows carry
  metrics.consensus_accuracy per variant;
- consensus.decisions: a sample of the engine's decisions with the five opinions and the
  weights of consensus.weights; the outcome of each follows one window later;
- insights.generated: an Analyst Agent's HIGH consensus_accuracy insight while the engine's
  accuracy is below its target;
- ml.features and the feedback collection: the technical specialist's inputs and ratings,
  with drift and a performance drop from --drift-at;
- approvals.responses: the Queen Agent's answer to each approvals.requests, by rule.
At the end (SIGTERM/SIGINT or --duration) it writes the ground truth (--out, JSON) and a
per-window timeline (--timeline, JSON lines) for the demo's summary and the e2e tests.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid

import numpy as np
import pymongo
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import avro_io  # noqa: E402
import world  # noqa: E402

SERVICES = ("api-gateway", "task-router")
REGRESSED = "api-gateway"
ENGINE_DECISIONS_PER_WINDOW = 1000
DECISIONS_PUBLISHED_PER_WINDOW = 10
REQUESTS_PER_WINDOW = 2000
ACCURACY_TARGET = 0.95


def now_ms():
    return int(time.time() * 1000)


class Topics:
    def __init__(self, tag):
        sfx = f".{tag}" if tag else ""
        for name in ("telemetry.aggregated", "consensus.decisions", "consensus.weights", "ml.features",
                     "approvals.requests", "approvals.responses", "experiments.assignments",
                     "experiments.results", "orchestrator.slos", "orchestrator.policies",
                     "insights.generated", "optimization.commands", "optimization.applied",
                     "models.degraded", "models.lifecycle"):
            setattr(self, name.replace(".", "_"), name + sfx)


class World:
    """The simulator's view of the suite's outputs, fed by the reader thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.assignments = {}   # component -> TrafficAssignment dict
        self.slos = {}          # service -> ServiceSLO dict
        self.tunables = {s: {} for s in SERVICES}
        self.weights = dict.fromkeys(world.SPECIALISTS, 0.2)
        self.weights_revision = 0
        self.experiments = {}   # experiment_id -> {component, params, kind, first_seen_s}
        self.results = {}       # experiment_id -> ExperimentResult summary
        self.violations = []    # constraint violations seen on the suite's outputs
        self.approvals = []
        self.weights_history = []
        self.policy_history = []
        self.degraded = []
        self.lifecycle = []
        self.read_counts = {}   # records read per input topic


def reader(args, topics, w, prod, stop, t0):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "hive-sim-" + uuid.uuid4().hex,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    names = {topics.experiments_assignments: "TrafficAssignment", topics.orchestrator_slos: "ServiceSLO",
             topics.orchestrator_policies: "OrchestratorPolicy", topics.consensus_weights: "ConsensusWeights",
             topics.approvals_requests: "ApprovalRequest", topics.experiments_results: "ExperimentResult",
             topics.models_degraded: "ModelDegradation", topics.models_lifecycle: "ModelLifecycleEvent"}
    # Partitions assigned directly (no group): a broker restart cannot park the reader in a rejoin.
    md = c.list_topics(timeout=30)
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in names if t in md.topics
              for p in md.topics[t].partitions])
    while not stop.is_set():
        m = c.poll(0.3)
        if m is None or m.error() or m.value() is None:
            continue
        try:
            rec = avro_io.decode(names[m.topic()], m.value())
        except (ValueError, KeyError, EOFError):
            continue
        t = time.time() - t0
        with w.lock:
            base = m.topic().rsplit(".", 1)[0] if args.tag else m.topic()
            w.read_counts[base] = w.read_counts.get(base, 0) + 1
            handle(args, topics, w, prod, m.topic(), rec, t)
    c.close()


def handle(args, topics, w, prod, topic, rec, t):
    if topic == topics.experiments_assignments:
        w.assignments[rec["component"]] = rec
        eid = rec.get("experiment_id")
        if eid and eid not in w.experiments:
            cand = [v for v in rec["variants"] if v["variant"] != "baseline"]
            params = dict(cand[0]["parameters"]) if cand else {}
            kind = (weight_kind(w.weights, params) if rec["component"] == world.ENGINE
                    else world.classify_change(params))
            w.experiments[eid] = {"component": rec["component"], "parameters": params, "kind": kind,
                                  "first_seen_s": round(t, 1)}
    elif topic == topics.orchestrator_slos:
        w.slos[rec["service"]] = rec
        if not (0.95 - 1e-9 <= rec["availability"] <= 0.9999 + 1e-9 and 0.001 - 1e-9 <= rec["error_rate"] <= 0.10 + 1e-9):
            w.violations.append({"t": t, "what": "SLO outside its bounds", "record": str(rec)})
    elif topic == topics.orchestrator_policies:
        if rec["policy"] in w.tunables:
            w.tunables[rec["policy"]] = dict(rec["values"])
            w.policy_history.append({"t": round(t, 1), "service": rec["policy"], "values": dict(rec["values"]),
                                     "revision": rec["revision"], "optimization_id": rec.get("optimization_id")})
    elif topic == topics.consensus_weights:
        if rec["engine"] != world.ENGINE:
            return
        ws = rec["weights"]
        vals = [ws.get(s) for s in world.SPECIALISTS]
        if None in vals or abs(sum(vals) - 1.0) > 1e-6 or min(vals) < 0.1 - 1e-9 or max(vals) > 0.4 + 1e-9:
            w.violations.append({"t": t, "what": "weights outside the feasible set", "weights": ws})
        if w.weights_revision > 0 and rec["revision"] > w.weights_revision + 1:
            w.violations.append({"t": t, "what": f"weights revision {rec['revision']} after {w.weights_revision}"})
        if rec["revision"] > w.weights_revision:
            w.weights_revision = rec["revision"]
            w.weights = {s: float(ws[s]) for s in world.SPECIALISTS}
            w.weights_history.append({"t": round(t, 1), "revision": rec["revision"], "weights": dict(w.weights),
                                      "optimization_id": rec.get("optimization_id")})
    elif topic == topics.approvals_requests:
        approve, reason = queen_rule(rec)
        resp = {"optimization_id": rec["optimization_id"], "decision": "APPROVED" if approve else "REJECTED",
                "approver": "queen-agent", "reason": reason, "responded_at": now_ms()}
        prod.produce(topics.approvals_responses, key=rec["optimization_id"],
                     value=avro_io.encode("ApprovalResponse", resp))
        w.approvals.append({"t": round(t, 1), "optimization_id": rec["optimization_id"],
                            "type": rec["optimization_type"], "risk": rec["risk_score"],
                            "decision": resp["decision"], "reason": reason})
    elif topic == topics.experiments_results:
        w.results[rec["experiment_id"]] = {"status": rec["status"], "decision": rec["decision"],
                                           "improvement": rec["improvement"], "target": rec["target"],
                                           "reason": rec["reason"], "t": round(t, 1),
                                           "guardrails": [g.get("guardrail", g.get("metric", ""))
                                                          for g in rec["guardrail_violations"]]
                                           if rec["guardrail_violations"] and isinstance(rec["guardrail_violations"][0], dict)
                                           else list(rec["guardrail_violations"])}
    elif topic == topics.models_degraded:
        w.degraded.append({"t": round(t, 1), "model": rec["model"], "reason": rec["reason"],
                           "drifted_features": list(rec["drifted_features"])})
    elif topic == topics.models_lifecycle:
        w.lifecycle.append({"t": round(t, 1), "model": rec["model"], "event_type": rec["event_type"]})


def queen_rule(req):
    """The Queen Agent's rule: never weaken a safety control, never above risk 0.8."""
    adj = req.get("adjustments") or {}
    if req["risk_score"] > 0.8:
        return False, f"risk {req['risk_score']:.2f} above 0.80"
    if adj.get("safety", 0) < 0 or adj.get("consensus_safety_veto", 1) == 0:
        return False, "weakens a safety control"
    return True, "within the Queen's rule (risk <= 0.80, no safety control weakened)"


def weight_kind(current, params):
    """'fix' when the candidate weights have a lower true error than the current ones,
    'harm' when higher, 'neutral' within 0.2 percentage points."""
    cur = world.weights_vector(current)
    delta = np.array([params.get(s, 0.0) for s in world.SPECIALISTS])
    before = world.decision_error(cur, n=60_000)
    after = world.decision_error(world.project_weights(cur + delta), n=60_000)
    return "fix" if after < before - 0.002 else "harm" if after > before + 0.002 else "neutral"


class Sim:
    def __init__(self, args):
        self.args = args
        self.topics = Topics(args.tag)
        self.rng = np.random.default_rng(args.seed)
        self.prod = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "linger.ms": 20})
        self.w = World()
        self.stop = threading.Event()
        self.t0 = time.time()
        self.mongo = pymongo.MongoClient(args.mongodb_uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
        self.feedback = self.mongo[args.feedback_db][args.feedback_collection]
        self.pending_outcomes = []
        self.timeline = open(args.timeline, "w", encoding="utf-8") if args.timeline else None
        self.err_cache = {}
        self.counts = {"telemetry": 0, "decisions": 0, "outcomes": 0, "features": 0, "feedback": 0,
                       "insights": 0, "mongo_errors": 0}
        self.true_err_windows = {s: [] for s in SERVICES}

    def true_engine_error(self, weights):
        key = tuple(round(weights[s], 6) for s in world.SPECIALISTS)
        if key not in self.err_cache:
            self.err_cache[key] = world.decision_error(np.array(key), n=60_000)
        return self.err_cache[key]

    def register_defaults(self):
        """The Orchestrator registers its tunables' defaults once (ABSOLUTE), so that the
        slo-adjuster has a current value to step from."""
        for s in SERVICES:
            cmd = {"command_id": f"orchestrator-defaults-{s}-{self.args.tag or 'main'}", "command": "APPLY",
                   "optimization_id": f"orchestrator-defaults-{s}", "optimization_type": "HEURISTIC_UPDATE",
                   "target": s, "adjustments": dict(world.DEFAULT_TUNABLES), "reason": "Orchestrator defaults",
                   "issued_at": now_ms(), "adjustment_mode": "ABSOLUTE"}
            self.prod.produce(self.topics.optimization_commands, key=s,
                              value=avro_io.encode("OptimizationCommand", cmd))
        self.prod.flush(10)

    def variants(self, component):
        a = self.w.assignments.get(component)
        if not a or not a.get("experiment_id"):
            return [(None, None, 1.0, {})]
        out = [(a["experiment_id"], v["variant"], v["traffic_fraction"], dict(v["parameters"]))
               for v in a["variants"] if v["traffic_fraction"] > 0]
        return out or [(None, None, 1.0, {})]

    def telemetry(self, service, ws, we, eid, variant, n, err, p95, slo, metrics):
        e = int(self.rng.binomial(n, err)) if n > 0 else 0
        rec = {"service": service, "window_start": ws, "window_end": we, "request_count": n, "error_count": e,
               "error_rate": e / n if n else 0.0, "latency_p50_ms": p95 * 0.45, "latency_p95_ms": p95,
               "latency_p99_ms": p95 * 1.6, "slo_compliance": world.slo_compliance(p95, slo),
               "availability": 1.0 - e / n * 0.1 if n else 1.0, "variant": variant, "experiment_id": eid,
               "metrics": metrics}
        self.prod.produce(self.topics.telemetry_aggregated, key=service,
                          value=avro_io.encode("TelemetryAggregated", rec))
        self.counts["telemetry"] += 1
        return e

    def window(self, k):
        a = self.args
        t = time.time() - self.t0
        we = now_ms()
        ws = we - a.window_ms
        regressed = a.regression_at >= 0 and t >= a.regression_at
        drifted = a.drift_at >= 0 and t >= a.drift_at
        row = {"t": round(t, 2)}
        with self.w.lock:
            # Orchestrator services.
            for s in SERVICES:
                slo = {"latency_ms": self.w.slos[s]["latency_ms"]} if s in self.w.slos else {}
                tun = self.w.tunables[s]
                reg = regressed and s == REGRESSED
                base_err = world.service_error_rate(reg, tun)
                self.true_err_windows[s].append(base_err)
                row[s] = round(base_err, 5)
                for eid, variant, frac, params in self.variants(s):
                    n = int(round(REQUESTS_PER_WINDOW * frac))
                    err = world.service_error_rate(reg, world.apply_parameters(tun, params)) if variant else base_err
                    self.telemetry(s, ws, we, eid, variant, n, err, world.BASE_P95_MS, slo, {})
            # The Consensus Engine.
            cur = world.weights_vector(self.w.weights)
            engine_err = self.true_engine_error(self.w.weights)
            row["engine_error"] = round(engine_err, 5)
            row["weights"] = {s: round(v, 4) for s, v in self.w.weights.items()}
            row["revision"] = self.w.weights_revision
            for eid, variant, frac, params in self.variants(world.ENGINE):
                wv = cur
                if variant and params:
                    delta = np.array([params.get(s, 0.0) for s in world.SPECIALISTS])
                    wv = world.project_weights(cur + delta)
                n = int(round(ENGINE_DECISIONS_PER_WINDOW * frac))
                truth, votes, conf = world.draw_decisions(self.rng, n)
                final, dec = world.engine_decide(wv, votes, conf)
                wrong = int(np.sum(dec != truth))
                acc = 1.0 - wrong / n if n else 1.0
                self.telemetry(world.ENGINE, ws, we, eid, variant, n, 0.0, 120.0, {},
                               {"consensus_accuracy": acc, "decision_error_rate": 1.0 - acc})
                if variant is None or variant == "baseline":
                    row["engine_observed_error"] = round(1.0 - acc, 4)
                self.decisions(k, wv, truth[:DECISIONS_PUBLISHED_PER_WINDOW], votes, conf, final, dec)
            # Model canaries (the retrainer's experiments): the model server of any other
            # assigned component serves each variant; after the drift the retrained candidate
            # (a variant with a model_version) errs less than the drifted baseline.
            for comp, asg in list(self.w.assignments.items()):
                if comp in SERVICES or comp == world.ENGINE or not asg.get("experiment_id"):
                    continue
                for v in asg["variants"]:
                    if v["traffic_fraction"] <= 0:
                        continue
                    n = int(round(REQUESTS_PER_WINDOW * v["traffic_fraction"]))
                    err = world.MODEL_ERROR_RETRAINED if v.get("model_version") and v["variant"] != "baseline" \
                        else (world.MODEL_ERROR_DRIFTED if drifted else world.MODEL_ERROR_RETRAINED)
                    self.telemetry(comp, ws, we, asg["experiment_id"], v["variant"], n, err, 90.0, {},
                                   {"accuracy": 1.0 - err})
            # The Analyst Agent.
            if k % a.insight_every == 0 and engine_err > 1.0 - ACCURACY_TARGET:
                self.insight(k, 1.0 - engine_err)
        self.outcomes()
        # Model servers and feedback.
        self.features(drifted)
        self.ratings(drifted)
        self.prod.poll(0)
        row["regressed"] = regressed
        row["drifted"] = drifted
        if self.timeline:
            self.timeline.write(json.dumps(row) + "\n")
            self.timeline.flush()

    def decisions(self, k, wv, truth, votes, conf, final, dec):
        wmap = {s: float(x) for s, x in zip(world.SPECIALISTS, wv)}
        for i in range(len(truth)):
            did = f"d-{self.args.tag or 'main'}-{k}-{i}-{uuid.uuid4().hex[:6]}"
            rec = {"decision_id": did, "engine": world.ENGINE, "timestamp": now_ms(),
                   "opinions": [{"specialist": s, "score": float(0.5 + (votes[i, j] - 0.5) * conf[i, j]),
                                 "confidence": float(conf[i, j])} for j, s in enumerate(world.SPECIALISTS)],
                   "final_score": float(final[i]), "outcome": None, "weights": wmap}
            self.prod.produce(self.topics.consensus_decisions, key=did,
                              value=avro_io.encode("ConsensusDecision", rec))
            rec = dict(rec, outcome=bool(dec[i] == truth[i]))
            self.pending_outcomes.append(rec)
            self.counts["decisions"] += 1

    def outcomes(self):
        """The outcomes of the previous window's decisions, now known."""
        keep = []
        for rec in self.pending_outcomes:
            if rec["timestamp"] < now_ms() - self.args.window_ms // 2:
                rec = dict(rec, timestamp=now_ms())
                self.prod.produce(self.topics.consensus_decisions, key=rec["decision_id"],
                                  value=avro_io.encode("ConsensusDecision", rec))
                self.counts["outcomes"] += 1
            else:
                keep.append(rec)
        self.pending_outcomes = keep

    def insight(self, k, accuracy):
        iid = f"analyst-{self.args.tag or 'main'}-{k}"
        rec = {"insight_id": iid, "source": "analyst-agent", "type": "DEGRADATION", "priority": "HIGH",
               "component": world.ENGINE, "metric": "consensus_accuracy", "current_value": accuracy,
               "baseline_value": ACCURACY_TARGET,
               "description": f"consensus accuracy {accuracy:.3f} below the target {ACCURACY_TARGET}",
               "timestamp": now_ms(), "labels": {"engine": world.ENGINE}}
        self.prod.produce(self.topics.insights_generated, key=world.ENGINE, value=avro_io.encode("Insight", rec))
        self.counts["insights"] += 1

    def features(self, drifted):
        rows = world.feature_rows(self.rng, self.args.feature_rows, drifted)
        rec = {"model": self.args.model_name, "model_version": "1", "timestamp": now_ms(),
               "feature_names": list(world.FEATURES), "rows": rows.tolist(),
               "predictions": self.rng.random(len(rows)).tolist(),
               "latencies_ms": self.rng.gamma(2.0, 20.0, len(rows)).tolist()}
        self.prod.produce(self.topics.ml_features, key=self.args.model_name, value=avro_io.encode("FeatureBatch", rec))
        self.counts["features"] += 1

    def ratings(self, drifted):
        import datetime
        docs = []
        for s in world.SPECIALISTS:
            mean = world.ACCURACY[s] if not (drifted and s == "technical") else 0.35
            for _ in range(2):
                docs.append({"specialist_type": s, "rating": float(np.clip(self.rng.normal(mean, 0.1), 0, 1)),
                             "created_at": datetime.datetime.now(datetime.timezone.utc),
                             "source": "hive-sim"})
        try:
            self.feedback.insert_many(docs)
            self.counts["feedback"] += len(docs)
        except pymongo.errors.PyMongoError:
            self.counts["mongo_errors"] += 1  # MongoDB down (chaos): the Hive keeps running

    def ground_truth(self, best, best_err):
        w = self.w
        with w.lock:
            final_err = self.true_engine_error(w.weights)
            initial_err = self.true_engine_error(dict.fromkeys(world.SPECIALISTS, 0.2))
            exps = {}
            for eid, e in w.experiments.items():
                e = dict(e)
                e["result"] = w.results.get(eid)
                exps[eid] = e
            return {
                "args": vars(self.args),
                "elapsed_s": round(time.time() - self.t0, 1),
                "t0_ms": int(self.t0 * 1000),
                "regressions_injected": [{"service": REGRESSED, "t": self.args.regression_at}]
                if self.args.regression_at >= 0 else [],
                "regression_error": {"base": world.BASE_ERROR, "regressed": world.REGRESSION_ERROR},
                "service_true_error_final": {s: (self.true_err_windows[s][-1] if self.true_err_windows[s] else None)
                                             for s in SERVICES},
                "tunables_final": w.tunables,
                "experiments": exps,
                "approvals": w.approvals,
                "weights_initial": dict.fromkeys(world.SPECIALISTS, 0.2),
                "weights_final": w.weights,
                "weights_history": w.weights_history,
                "weights_revision": w.weights_revision,
                "engine_error_initial": initial_err,
                "engine_error_final": final_err,
                "best_feasible_weights": best,
                "best_feasible_error": best_err,
                "weight_regret_initial": initial_err - best_err,
                "weight_regret_final": final_err - best_err,
                "hidden_accuracy": world.ACCURACY,
                "policy_history": w.policy_history,
                "constraint_violations": w.violations,
                "drift_injected": {"model": self.args.model_name, "t": self.args.drift_at,
                                   "features": ["f_risk", "f_amount"]} if self.args.drift_at >= 0 else None,
                "models_degraded": w.degraded,
                "models_lifecycle": w.lifecycle,
                "counts": self.counts,
                "read_counts": w.read_counts,
            }

    def run(self):
        best, best_err = world.best_feasible_weights()
        th = threading.Thread(target=reader, args=(self.args, self.topics, self.w, self.prod, self.stop, self.t0),
                              daemon=True)
        th.start()
        self.register_defaults()
        k = 0
        next_t = time.time()
        end = self.t0 + self.args.duration if self.args.duration > 0 else float("inf")
        while not self.stop.is_set() and time.time() < end:
            self.window(k)
            k += 1
            next_t += self.args.window_ms / 1000.0
            delay = next_t - time.time()
            if delay > 0:
                self.stop.wait(delay)
            else:
                next_t = time.time()
        self.stop.set()
        th.join(5)
        self.prod.flush(15)
        gt = self.ground_truth(best, best_err)
        if self.args.out:
            tmp = self.args.out + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(gt, f, indent=1, default=str)
            os.replace(tmp, self.args.out)
        if self.timeline:
            self.timeline.close()
        return gt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tag", default="", help="suffix of every topic (isolation on a shared stack)")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--mongodb-uri", default=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017"))
    p.add_argument("--feedback-db", default="neural_hive")
    p.add_argument("--feedback-collection", default="feedback")
    p.add_argument("--duration", type=float, default=0, help="seconds; 0 = until SIGTERM")
    p.add_argument("--window-ms", type=int, default=1000)
    p.add_argument("--regression-at", type=float, default=20, help="seconds; -1 = none")
    p.add_argument("--drift-at", type=float, default=40, help="seconds; -1 = none")
    p.add_argument("--insight-every", type=int, default=5, help="windows between the Analyst Agent's insights")
    p.add_argument("--feature-rows", type=int, default=40)
    p.add_argument("--model-name", default="technical-evaluator",
                   help="the registered model the model servers serve ({specialist}-evaluator[suffix])")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", default="", help="ground truth JSON written at the end")
    p.add_argument("--timeline", default="", help="one JSON line per window")
    args = p.parse_args(argv)
    sim = Sim(args)
    signal.signal(signal.SIGTERM, lambda *_: sim.stop.set())
    signal.signal(signal.SIGINT, lambda *_: sim.stop.set())
    sim.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
