"""The experiment manager on the real stack (Kafka, FerretDB), driven by
independent clients: confluent-kafka + fastavro produce the ExperimentRequests
and the variant-labelled telemetry and read the assignments and results;
pymongo reads the stored experiment; scipy recomputes the p-value.

Time is compressed by configuration: one look per second, requested durations
scaled by EXPERIMENT_TIME_SCALE. Bounded to about two minutes.
"""
import os
import signal
import time
import uuid

import numpy as np
import pymongo
import pytest
import requests
from confluent_kafka.admin import AdminClient, NewTopic
from scipy import stats

import hive_avro
from conftest import BOOTSTRAP, MONGODB_URI, ROOT, Service, create_topics, free_port, producer, read_committed

BINARY = os.environ.get("EXPERIMENT_MANAGER_BIN",
                        os.path.join(ROOT, "build-asan", "experiment-manager", "experiment-manager"))
PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090")
WINDOW_MS = 60_000
T0 = 1_700_000_000_000


@pytest.fixture
def manager():
    tag = uuid.uuid4().hex[:10]
    t = {k: f"{k}.t{tag}" for k in ("requests", "telemetry", "assignments", "results")}
    create_topics(list(t.values()) + [t["requests"] + ".dlq", t["telemetry"] + ".dlq"])
    # The timers' topic exists before the service subscribes: a topic the
    # pipeline creates itself may be missing from the consumer's first
    # metadata, which then leaves the timers unassigned until a refresh.
    timers = f"experiment-manager.timers.t{tag}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for fut in admin.create_topics([NewTopic(timers, 1, 1, config={"cleanup.policy": "compact"})]).values():
        fut.result(timeout=30)
    db = "itest_expmgr_" + tag
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KAFKA_REQUESTS_TOPIC": t["requests"],
        "KAFKA_TELEMETRY_TOPIC": t["telemetry"],
        "KAFKA_ASSIGNMENTS_TOPIC": t["assignments"],
        "KAFKA_RESULTS_TOPIC": t["results"],
        "KAFKA_TIMERS_TOPIC": timers,
        "KAFKA_CONSUMER_GROUP": "expmgr-" + tag,
        "KAFKA_TRANSACTIONAL_ID": "expmgr-" + tag,
        "MONGODB_URI": MONGODB_URI,
        "MONGODB_DATABASE": db,
        "HTTP_PORT": str(free_port()),
        "EVALUATION_INTERVAL_MS": "1000",
        "PROMETHEUS_URL": PROMETHEUS_URL,
        "MIN_SAMPLE_SIZE": "5",
        "NO_DATA_INTERVALS": "600",
        "EXPERIMENT_TIME_SCALE": "0.05",  # 3600 s -> 180 s: the tests end long before
        "LOG_LEVEL": "info",
    }
    svc = Service(BINARY, env, "experiment-manager-" + tag)
    svc.topics, svc.db = t, db
    yield svc
    code = svc.stop()
    pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(db)
    if svc.starts and code is not None and code != -signal.SIGKILL:
        assert code == 0, f"experiment-manager exited with {code} on SIGTERM"


def request(experiment_id, target, split=0.5):
    return {
        "experiment_id": experiment_id,
        "optimization_id": "opt-" + experiment_id,
        "requested_by": "optimizer",
        "experiment_type": "AB_TEST",
        "target": target,
        "hypothesis": "a lower latency",
        "optimization_type": "WEIGHT_RECALIBRATION",
        "parameters": {"technical": 0.25},
        "traffic_split": split,
        "duration_seconds": 3600,
        "success_criteria": [
            {"metric": "relative_improvement", "operator": "GE", "threshold": 0.05},
            {"metric": "latency_p95_ms", "operator": "LT", "threshold": 0.0},
        ],
        "guardrails": [{"metric": "error_rate", "operator": "GT", "threshold": 0.05}],
        "requested_at": int(time.time() * 1000),
    }


def window(experiment_id, variant, i, latency, requests_, errors):
    return {
        "service": "consensus-engine",
        "window_start": T0 + i * WINDOW_MS,
        "window_end": T0 + (i + 1) * WINDOW_MS,
        "request_count": requests_,
        "error_count": errors,
        "error_rate": errors / requests_,
        "latency_p50_ms": latency / 2,
        "latency_p95_ms": latency,
        "latency_p99_ms": latency * 1.5,
        "slo_compliance": 0.99,
        "availability": 1.0,
        "variant": variant,
        "experiment_id": experiment_id,
        "metrics": {},
    }


def produce(topic, key, name, records):
    p = producer()
    for r in records:
        p.produce(topic, key=key.encode(), value=hive_avro.encode(name, r))
    assert p.flush(30) == 0


def decoded(topic, name, expected, timeout=60, settle=3.0):
    return [(m.key().decode(), hive_avro.decode(name, m.value()))
            for m in read_committed(topic, expected, timeout=timeout, settle=settle)]


def wait_for(pred, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError(f"{what} not met within {timeout} s")


def test_better_candidate_succeeds_exactly_once_across_sigkill(manager):
    t = manager.topics
    eid = "exp-" + uuid.uuid4().hex[:8]
    manager.start()
    produce(t["requests"], eid, "ExperimentRequest", [request(eid, "consensus-engine")])

    # The traffic is split as requested.
    first = decoded(t["assignments"], "TrafficAssignment", 1, settle=0.5)
    assert first, "no TrafficAssignment within 60 s"
    key, a = first[0]
    assert key == "consensus-engine" and a["experiment_id"] == eid
    shares = {v["variant"]: v["traffic_fraction"] for v in a["variants"]}
    assert shares == {"baseline": 0.5, "experimental": 0.5}
    exp_params = [v for v in a["variants"] if v["variant"] == "experimental"][0]["parameters"]
    assert exp_params == {"technical": 0.25}

    # Telemetry of both variants, interleaved, one partition (one key): the
    # candidate is 25 % faster. Three windows each (below the minimum sample),
    # then SIGKILL mid-experiment, restart, and the rest.
    rng = np.random.default_rng(11)
    base = np.round(rng.normal(200.0, 12.0, 14), 6)
    cand = np.round(rng.normal(150.0, 12.0, 14), 6)
    recs = []
    for i in range(14):
        recs.append(window(eid, "baseline", i, float(base[i]), 1000, 5))
        recs.append(window(eid, "experimental", i, float(cand[i]), 1000, 4))
    produce(t["telemetry"], "consensus-engine", "TelemetryAggregated", recs[:6])
    mongo = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)[manager.db]
    wait_for(lambda: mongo.measurements.count_documents({"experiment_id": eid}) >= 6, what="6 windows stored")
    manager.kill9()
    manager.start()
    produce(t["telemetry"], "consensus-engine", "TelemetryAggregated", recs[6:])

    # Exactly one result, ACCEPT, read with the optimizer's schema.
    wait_for(lambda: (mongo.experiments.find_one({"_id": eid}) or {}).get("status") == "DONE", 90,
             "experiment DONE")
    results = decoded(t["results"], "ExperimentResult", 1, settle=5.0)
    mine = [r for k, r in results if k == eid]
    assert len(mine) == 1, f"expected exactly one result, got {len(mine)}"
    r = mine[0]
    assert r["status"] == "COMPLETED" and r["decision"] == "ACCEPT", r["reason"]
    assert r["optimization_id"] == "opt-" + eid and r["experiment_type"] == "AB_TEST"
    assert r["primary_metric"] == "latency_p95_ms"
    assert r["improvement"] >= 0.05
    assert r["guardrail_violations"] == []

    # Its p-value is scipy's Welch test on the windows the decision saw (a
    # prefix of each variant's windows, in production order).
    n = {v["variant"]: v["sample_count"] for v in r["variants"]}
    assert n["baseline"] >= 5 and n["experimental"] >= 5
    ref = stats.ttest_ind(cand[:n["experimental"]], base[:n["baseline"]], equal_var=False)
    assert abs(r["p_value"] - ref.pvalue) <= 1e-9, (r["p_value"], ref.pvalue)
    means = {v["variant"]: v["metrics"]["latency_p95_ms"] for v in r["variants"]}
    assert abs(means["experimental"] - cand[:n["experimental"]].mean()) < 1e-6

    # Cleanup: the final assignment puts all traffic back on the baseline.
    assigns = [a for k, a in decoded(t["assignments"], "TrafficAssignment", 2, settle=3.0)]
    last = assigns[-1]
    assert last["experiment_id"] is None
    assert [(v["variant"], v["traffic_fraction"]) for v in last["variants"]] == [("baseline", 1.0)]
    assert all(b["revision"] > a["revision"] for a, b in zip(assigns, assigns[1:]))

    # Stored: definition, analysis, per-interval looks; the REST API agrees.
    doc = mongo.experiments.find_one({"_id": eid})
    assert doc["result"]["decision"] == "ACCEPT" and doc["analysis"]["tested"] is True
    assert mongo.intervals.count_documents({"experiment_id": eid}) >= 2
    body = requests.get(manager.url(f"/api/v1/experiments/{eid}/results"), timeout=5).json()
    assert body["result"]["decision"] == "ACCEPT" and body["intervals"]
    assert requests.post(manager.url(f"/api/v1/experiments/{eid}/abort"), timeout=5).status_code == 409
    metrics = requests.get(manager.url("/metrics"), timeout=5).text
    assert "experiments_succeeded_total 1" in metrics


def test_guardrail_breach_aborts_and_restores_baseline(manager):
    t = manager.topics
    eid = "exp-" + uuid.uuid4().hex[:8]
    manager.start()
    produce(t["requests"], eid, "ExperimentRequest", [request(eid, "slo-engine", split=0.1)])
    assert decoded(t["assignments"], "TrafficAssignment", 1, settle=0.5), "no first assignment"
    # The candidate fails 12 % of its requests: above the 5 % guardrail.
    recs = [window(eid, "baseline", 0, 200.0, 900, 9), window(eid, "experimental", 0, 190.0, 100, 12)]
    produce(t["telemetry"], "slo-engine", "TelemetryAggregated", recs)
    results = decoded(t["results"], "ExperimentResult", 1, timeout=60, settle=3.0)
    mine = [r for k, r in results if k == eid]
    assert len(mine) == 1
    r = mine[0]
    assert r["status"] == "ABORTED" and r["decision"] == "REJECT"
    assert len(r["guardrail_violations"]) == 1
    assert r["guardrail_violations"][0].startswith("error_rate GT 0.05 (observed 0.12")
    assert "guardrail" in r["reason"]
    last = [a for k, a in decoded(t["assignments"], "TrafficAssignment", 2, settle=2.0)][-1]
    assert last["component"] == "slo-engine" and last["experiment_id"] is None
    assert [(v["variant"], v["traffic_fraction"]) for v in last["variants"]] == [("baseline", 1.0)]
    metrics = requests.get(manager.url("/metrics"), timeout=5).text
    assert 'experiment_guardrail_violations_total{guardrail="error_rate"} 1' in metrics


def test_rest_submit_validates_and_lists(manager):
    manager.start()
    url = manager.url("/api/v1/experiments/submit")
    bad = requests.post(url, json={"experiment_type": "AB_TEST", "target": "x", "colour": "red"}, timeout=5)
    assert bad.status_code == 400 and "colour" in bad.text
    bad = requests.post(url, json={"experiment_type": "AB_TEST", "target": "x", "traffic_split": 1.5}, timeout=5)
    assert bad.status_code == 400 and "traffic_split" in bad.text
    body = {"experiment_id": "rest-1", "experiment_type": "CANARY", "target": "orchestrator",
            "guardrails": [{"metric": "error_rate", "operator": "GT", "threshold": 0.05}]}
    assert requests.post(url, json=body, timeout=5).status_code == 201
    assert requests.post(url, json=body, timeout=5).status_code == 200  # idempotent by id
    got = requests.get(manager.url("/api/v1/experiments/rest-1"), timeout=5).json()
    assert got["type"] == "CANARY" and got["target"] == "orchestrator"
    listed = requests.get(manager.url("/api/v1/experiments?type=CANARY"), timeout=5).json()
    assert [i["experiment_id"] for i in listed["items"]] == ["rest-1"]
    assert requests.get(manager.url("/api/v1/experiments/nope"), timeout=5).status_code == 404
    # The experiment as an Argo Workflow of the seed's seven steps.
    wf = requests.get(manager.url("/api/v1/experiments/rest-1/workflow"), timeout=5)
    assert wf.status_code == 200, wf.text
    m = wf.json()
    assert m["apiVersion"] == "argoproj.io/v1alpha1" and m["kind"] == "Workflow"
    assert m["metadata"]["name"] == "experiment-rest-1"
    assert m["metadata"]["labels"]["neural-hive.io/experiment-type"] == "canary"
    entry = next(t for t in m["spec"]["templates"] if t["name"] == m["spec"]["entrypoint"])
    assert [g[0]["name"] for g in entry["steps"]] == [
        "setup-baseline", "setup-experimental", "traffic-split", "monitor", "collect", "analyze", "cleanup"]
    monitor = next(t for t in m["spec"]["templates"] if t["name"] == "monitor")
    assert monitor["http"]["url"].endswith("/api/v1/experiments/rest-1")
    try:  # Argo's Workflow schema as Hera's generated models, when Hera is installed
        from hera.workflows.models import Workflow
    except ImportError:
        pass
    else:
        (Workflow.model_validate if hasattr(Workflow, "model_validate") else Workflow.parse_obj)(m)
    assert requests.get(manager.url("/api/v1/experiments/nope/workflow"), timeout=5).status_code == 404
    # The canary starts at 10 %; an operator's abort rolls it back.
    wait_for(lambda: requests.get(manager.url("/api/v1/experiments/rest-1"), timeout=5).json()
             .get("traffic_fraction") == 0.1, 30, "canary at 10 %")
    assert requests.post(manager.url("/api/v1/experiments/rest-1/abort"), timeout=5).status_code == 202
    done = wait_for(lambda: (lambda d: d if d.get("status") == "DONE" else None)(
        requests.get(manager.url("/api/v1/experiments/rest-1"), timeout=5).json()), 30, "aborted")
    assert done["result"]["status"] == "ABORTED" and done["result"]["rule"] == "operator"
    doc = requests.get(manager.url("/openapi.json"), timeout=5).json()
    submit = doc["components"]["schemas"]["Submit"]
    assert submit["additionalProperties"] is False
    assert submit["properties"]["traffic_split"]["exclusiveMaximum"] == 1


def test_prometheus_metric_source(manager):
    """A metric read from the stack's real Prometheus: each look runs the PromQL
    query once per variant ($variant substituted) and the values become that
    variant's observations, equal to what Prometheus answers this test."""
    manager.start()
    # The stack's Prometheus scrapes fixed jobs (optimizer, experiment-manager,
    # weight-recalibrator, slo-adjuster, model-monitor, retrainer): the jobs whose
    # name starts with a letter of the variant's name differ between the variants.
    query = 'count(up{job=~"[$variant].*"})'
    expected = {}
    for v in ("baseline", "candidate"):
        r = requests.get(PROMETHEUS_URL + "/api/v1/query", params={"query": query.replace("$variant", v)},
                         timeout=5).json()
        assert r["status"] == "success" and len(r["data"]["result"]) == 1, r
        expected[v] = float(r["data"]["result"][0]["value"][1])
    assert expected["baseline"] != expected["candidate"]
    body = {"experiment_id": "prom-1", "experiment_type": "AB_TEST", "target": "orchestrator",
            "success_criteria": [{"metric": "jobs_up", "operator": "GT", "threshold": 0.0}],
            "metric_sources": {"jobs_up": {"provider": "prometheus", "query": query},
                               "error_rate": {"provider": "telemetry"}}}
    url = manager.url("/api/v1/experiments/submit")
    bad = dict(body, metric_sources={"jobs_up": {"provider": "prometheus"}})
    r = requests.post(url, json=bad, timeout=5)
    assert r.status_code == 400 and "metric_sources.jobs_up" in r.text
    assert requests.post(url, json=body, timeout=5).status_code == 201
    got = requests.get(manager.url("/api/v1/experiments/prom-1"), timeout=5).json()
    assert got["metric_sources"]["jobs_up"] == {"provider": "prometheus", "query": query}

    def analysed():
        res = requests.get(manager.url("/api/v1/experiments/prom-1/results"), timeout=5).json()
        an = res.get("analysis") or {}
        return an if an.get("baseline", {}).get("n", 0) >= 3 and an.get("experimental", {}).get("n", 0) >= 3 else None

    an = wait_for(analysed, 60, "three looks with Prometheus observations")
    assert an["primary_metric"] == "jobs_up"
    assert an["baseline"]["mean"] == pytest.approx(expected["baseline"])
    assert an["experimental"]["mean"] == pytest.approx(expected["candidate"])
    stored = pymongo.MongoClient(MONGODB_URI)[manager.db].measurements.count_documents(
        {"experiment_id": "prom-1", "service": "prometheus"})
    assert stored >= 6
