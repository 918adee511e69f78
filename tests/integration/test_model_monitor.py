"""model-monitor against the real stack: MLflow (runs, metrics, a registered
model version behind the `production` alias, written with the mlflow client),
feedback documents in FerretDB (pymongo), and the records it publishes read
back with confluent-kafka + fastavro.

Every test uses its own MLflow names (MLFLOW_NAME_SUFFIX), feedback database,
topics, consumer group and service database.
"""
import datetime
import json
import os
import subprocess
import time
import uuid

import pymongo
import pytest
import requests

from conftest import BOOTSTRAP, MONGODB_URI, ROOT, Service, create_topics, free_port, read_committed
import hive_avro

BINARY = os.environ.get("MODEL_MONITOR_BIN", os.path.join(ROOT, "build-asan", "model-monitor", "model-monitor"))
MLFLOW = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")


def _mlflow_client():
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(MLFLOW)
    return MlflowClient(MLFLOW)


def _log_run(client, exp_id, metrics):
    run = client.create_run(exp_id)
    for k, v in metrics.items():
        client.log_metric(run.info.run_id, k, v)
    client.set_terminated(run.info.run_id)
    return run


@pytest.fixture(scope="module")
def world():
    """MLflow and feedback for three specialists:
    technical: production version on a healthy run, a NEWER degraded run (the
               production one must be preferred), good feedback -> OK;
    safety:    one run with f1 0.60, registered without the production alias, good
               feedback -> DEGRADED;
    business:  a healthy run, no feedback -> NO_FEEDBACK;
    ethical, legal: nothing in MLflow -> NO_RUN."""
    tag = uuid.uuid4().hex[:10]
    suffix = "-t" + tag
    client = _mlflow_client()
    exps = {sp: client.create_experiment(f"{sp}-specialist{suffix}") for sp in ("technical", "safety", "business")}
    good = {"precision": 0.81, "recall": 0.74, "f1_score": 0.776, "accuracy": 0.8}
    prod = _log_run(client, exps["technical"], good)
    time.sleep(0.05)
    newer = _log_run(client, exps["technical"], {"precision": 0.5, "recall": 0.5, "f1_score": 0.5, "accuracy": 0.5})
    name = f"technical-evaluator{suffix}"
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=prod.info.artifact_uri + "/model", run_id=prod.info.run_id)
    client.set_registered_model_alias(name, "production", mv.version)
    bad = _log_run(client, exps["safety"], {"precision": 0.8, "recall": 0.75, "f1_score": 0.60, "accuracy": 0.7})
    # a registered version with no `production` alias (a candidate the retrainer did not
    # promote): MLflow answers 400 to the alias lookup, and the monitor falls back to the runs
    unpromoted = f"safety-evaluator{suffix}"
    client.create_registered_model(unpromoted)
    client.create_model_version(unpromoted, source=bad.info.artifact_uri + "/model", run_id=bad.info.run_id)
    _log_run(client, exps["business"], good)

    fdb = "neural_hive_t" + tag
    mongo = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)
    now = datetime.datetime.now(datetime.timezone.utc)
    docs = []
    for sp in ("technical", "safety"):
        for i, r in enumerate([0.9, 0.8, 0.7, 0.5, 0.3]):  # avg 0.64: 3 positive, 1 neutral, 1 negative
            docs.append({"specialist_type": sp, "rating": r, "created_at": now - datetime.timedelta(days=i),
                         "opinion_id": f"{sp}-{i}"})
    # outside the 30-day window: must not count
    docs.append({"specialist_type": "business", "rating": 0.1, "created_at": now - datetime.timedelta(days=45)})
    mongo[fdb].feedback.insert_many(docs)
    yield {"tag": tag, "suffix": suffix, "feedback_db": fdb, "prod_run": prod.info.run_id,
           "newer_run": newer.info.run_id, "bad_run": bad.info.run_id, "version": mv.version}
    mongo.drop_database(fdb)
    for sp, exp in exps.items():
        client.delete_experiment(exp)
    client.delete_registered_model(name)
    client.delete_registered_model(unpromoted)


def _env(world, **extra):
    env = dict(os.environ)
    env.update({"MLFLOW_TRACKING_URI": MLFLOW, "MLFLOW_NAME_SUFFIX": world["suffix"],
                "FEEDBACK_MONGODB_URI": MONGODB_URI, "FEEDBACK_MONGODB_DATABASE": world["feedback_db"],
                "LOG_LEVEL": "warn"})
    env.update(extra)
    return env


def _check(world, *args, **extra):
    p = subprocess.run([BINARY, "check", *args], env=_env(world, **extra), capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_cli_reports_and_exit_codes(world):
    rc, out, err = _check(world, "--specialist-type", "technical")
    assert rc == 0, out + err
    assert "RELATÓRIO DE PERFORMANCE - technical" in out
    assert "Status: ✅ OK" in out
    assert f"Run ID: {world['prod_run']} (production)" in out  # not the newer, degraded run
    assert "Score Agregado: 0.735" in out  # 0.7 * 0.776 + 0.3 * 0.64
    assert "Total: 5" in out and "Positivo: 3" in out and "Neutro: 1" in out and "Negativo: 1" in out

    rc, out, _ = _check(world, "--specialist-type", "safety", "--output-format", "json")
    assert rc == 1
    rep = json.loads(out)
    assert rep["status"] == "DEGRADED" and rep["degraded"] is True
    assert rep["mlflow"]["run_id"] == world["bad_run"] and rep["mlflow"]["production"] is False
    assert rep["reasons"] == ["f1_score 0.6 < 0.72", "aggregate_score 0.612 < 0.65"]
    assert abs(rep["aggregate_score"] - (0.7 * 0.6 + 0.3 * 0.64)) < 1e-9

    rc, out, _ = _check(world, "--specialist-type", "business", "--output-format", "json")
    assert rc == 3
    rep = json.loads(out)
    assert rep["status"] == "NO_FEEDBACK" and rep["aggregate_score"] is None
    assert rep["feedback"]["count"] == 0  # the 45-day-old rating is outside the window

    rc, out, _ = _check(world, "--specialist-type", "ethical")
    assert rc == 3 and "NO_RUN" in out

    rc, out, _ = _check(world, "--specialist-type", "all", "--output-format", "json")
    assert rc == 1  # a degraded model decides
    statuses = {r["specialist_type"]: r["status"] for r in json.loads(out)}
    assert statuses == {"technical": "OK", "safety": "DEGRADED", "business": "NO_FEEDBACK",
                        "ethical": "NO_RUN", "legal": "NO_RUN"}

    rc, out, _ = _check(world, "--specialist-type", "technical", MLFLOW_TRACKING_URI="http://127.0.0.1:1")
    assert rc == 4 and "INDISPONÍVEL" in out
    rc, _, err = _check(world, "--specialist-type", "nobody")
    assert rc == 2 and "--specialist-type" in err


def test_service_reports_and_one_degradation_per_episode(world):
    tag = uuid.uuid4().hex[:10]
    health, degraded, timers = f"models.health.t{tag}", f"models.degraded.t{tag}", f"model-monitor.timers.t{tag}"
    create_topics([health, degraded], partitions=1)
    db = "model_monitor_t" + tag
    env = _env(world, KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP, KAFKA_HEALTH_TOPIC=health, KAFKA_DEGRADED_TOPIC=degraded,
               KAFKA_TIMERS_TOPIC=timers, KAFKA_CONSUMER_GROUP="model-monitor-" + tag,
               KAFKA_TRANSACTIONAL_ID="model-monitor-" + tag, MONGODB_URI=MONGODB_URI, MONGODB_DATABASE=db,
               HTTP_PORT=str(free_port()), MONITOR_INTERVAL_SECONDS="2",
               MONITOR_SPECIALISTS="technical,safety,business", LOG_LEVEL="info")
    svc = Service(BINARY, env, "model-monitor-" + tag)
    try:
        svc.start()
        # three slots of three specialists
        msgs = read_committed(health, 9, timeout=60, settle=0.5)
        reports = [hive_avro.decode("ModelHealthReport", m.value()) for m in msgs]
        assert len(reports) >= 9
        by_model = {}
        for r in reports:
            by_model.setdefault(r["model"], []).append(r)
        sfx = world["suffix"]
        assert {r["status"] for r in by_model[f"technical-evaluator{sfx}"]} == {"OK"}
        assert {r["status"] for r in by_model[f"safety-evaluator{sfx}"]} == {"DEGRADED"}
        assert {r["status"] for r in by_model[f"business-evaluator{sfx}"]} == {"NO_FEEDBACK"}
        tech = by_model[f"technical-evaluator{sfx}"][0]
        assert tech["model_version"] == world["version"]
        assert abs(tech["aggregate_score"] - (0.7 * 0.776 + 0.3 * 0.64)) < 1e-9
        assert tech["feedback_count"] == 5 and tech["degraded"] is False
        ids = [r["report_id"] for r in reports]
        assert len(ids) == len(set(ids)), "a slot was reported twice"

        # the safety model stayed degraded over several slots: one degradation
        degs = [hive_avro.decode("ModelDegradation", m.value()) for m in read_committed(degraded, 1, timeout=30)]
        assert len(degs) == 1, degs
        d = degs[0]
        assert d["model"] == f"safety-evaluator{sfx}" and d["reason"] == "METRICS"
        assert d["metrics"]["f1_score"] == pytest.approx(0.6) and d["thresholds"]["f1_score"] == pytest.approx(0.72)
        assert "f1_score 0.6 < 0.72" in d["details"]

        # stored reports and the REST API over them
        stored = pymongo.MongoClient(MONGODB_URI)[db].health_reports.count_documents({})
        assert stored >= 9
        body = requests.get(svc.url("/api/v1/models/health"), timeout=5).json()
        latest = {r["specialist_type"]: r["status"] for r in body["reports"]}
        assert latest == {"technical": "OK", "safety": "DEGRADED", "business": "NO_FEEDBACK"}
        hist = requests.get(svc.url(f"/api/v1/models/safety-evaluator{sfx}/health?limit=2"), timeout=5).json()
        assert len(hist["reports"]) == 2 and hist["reports"][0]["slot"] > hist["reports"][1]["slot"]
        assert requests.get(svc.url("/api/v1/models/nobody/health"), timeout=5).status_code == 404
        assert requests.get(svc.url(f"/api/v1/models/safety-evaluator{sfx}/health?limit=0"), timeout=5).status_code == 400
        metrics = requests.get(svc.url("/metrics"), timeout=5).text
        assert 'neural_hive_model_degradation_detected{specialist="safety"} 1' in metrics
        assert 'neural_hive_mlflow_model_f1{specialist="technical"} 0.776' in metrics
        # the feedback-rate SLO's numerator: every rating of the collection, counted once over the slots
        assert 'neural_hive_model_feedback_total{specialist="technical"} 5\n' in metrics
        assert 'neural_hive_model_feedback_total{specialist="business"} 1\n' in metrics
        doc = requests.get(svc.url("/openapi.json"), timeout=5).json()
        assert doc["components"]["schemas"]["HealthReport"]["additionalProperties"] is False
    finally:
        code = svc.stop()
        pymongo.MongoClient(MONGODB_URI).drop_database(db)
    assert code == 0


def test_drift_reported_once_and_exact(world):
    import numpy as np
    from scipy import stats
    from conftest import producer

    tag = uuid.uuid4().hex[:10]
    features, health, degraded = f"ml.features.t{tag}", f"models.health.t{tag}", f"models.degraded.t{tag}"
    create_topics([features, features + ".dlq", health, degraded], partitions=1)
    db = "model_monitor_t" + tag
    model = f"drift-model-{tag}"
    env = _env(world, KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP, KAFKA_FEATURES_TOPIC=features, KAFKA_HEALTH_TOPIC=health,
               KAFKA_DEGRADED_TOPIC=degraded, KAFKA_TIMERS_TOPIC=f"model-monitor.timers.t{tag}",
               KAFKA_CONSUMER_GROUP="model-monitor-" + tag, KAFKA_TRANSACTIONAL_ID="model-monitor-" + tag,
               MONGODB_URI=MONGODB_URI, MONGODB_DATABASE=db, HTTP_PORT=str(free_port()),
               MONITOR_INTERVAL_SECONDS="86400", MONITOR_SPECIALISTS="legal",
               DRIFT_CHECK_INTERVAL_MINUTES="0.05", DRIFT_WINDOW_MINUTES="1", DRIFT_REFERENCE_ROWS="300",
               LOG_LEVEL="info")
    rng = np.random.default_rng(7)
    names = ["f_stable", "f_shift", "f_scale"]
    ref = rng.normal(0, 1, size=(300, 3))
    cur = np.column_stack([rng.normal(0, 1, 200), rng.normal(0.6, 1, 200), rng.normal(0, 3, 200)])

    def batch(rows):
        return hive_avro.encode("FeatureBatch", {
            "model": model, "model_version": "3", "timestamp": int(time.time() * 1000),
            "feature_names": names, "rows": [list(map(float, r)) for r in rows],
            "predictions": [0.5] * len(rows), "latencies_ms": [12.0] * len(rows)})

    svc = Service(BINARY, env, "model-monitor-drift-" + tag)
    try:
        svc.start()
        p = producer()
        for i in range(3):
            p.produce(features, key=model, value=batch(ref[i * 100:(i + 1) * 100]))
        # a batch whose rows do not match its feature names goes to the DLQ
        p.produce(features, key=model, value=hive_avro.encode("FeatureBatch", {
            "model": model, "model_version": "3", "timestamp": int(time.time() * 1000),
            "feature_names": names, "rows": [[1.0, 2.0]]}))
        for i in range(2):
            p.produce(features, key=model, value=batch(cur[i * 100:(i + 1) * 100]))
        p.flush(10)

        # several drift checks pass; the episode gives one degradation
        deadline = time.time() + 60
        reports = []
        while time.time() < deadline:
            r = requests.get(svc.url(f"/api/v1/models/{model}/drift"), timeout=5)
            if r.status_code == 200:
                reports.append(r.json())
                if len({x["slot"] for x in reports}) >= 3:
                    break
            time.sleep(1)
        assert len({x["slot"] for x in reports}) >= 3, reports
        degs = [hive_avro.decode("ModelDegradation", m.value()) for m in read_committed(degraded, 1, timeout=20)]
        assert len(degs) == 1, degs
        d = degs[0]
        assert d["model"] == model and d["reason"] == "DRIFT" and d["model_version"] == "3"
        assert sorted(d["drifted_features"]) == ["f_scale", "f_shift"]
        assert d["metrics"]["drift_score"] == pytest.approx(2 / 3) and d["thresholds"]["drift_score"] == 0.2

        last = reports[-1]
        assert last["drifted"] is True and last["drift_score"] == pytest.approx(2 / 3)
        by_name = {f["name"]: f for f in last["features"]}
        for j, name in enumerate(names):
            f = by_name[name]
            want = stats.ks_2samp(ref[:, j], cur[:, j])
            assert f["method"] == "ks" and f["reference_size"] == 300 and f["current_size"] == 200
            assert f["ks_statistic"] == pytest.approx(want.statistic, abs=1e-12)
            assert f["ks_p_value"] == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)
            assert f["drifted"] == (want.pvalue < 0.05)
        assert by_name["f_stable"]["drifted"] is False

        dlq = read_committed(features + ".dlq", 1, timeout=20, settle=0.5)
        assert len(dlq) == 1
        metrics = requests.get(svc.url("/metrics"), timeout=5).text
        assert f'model_drift_score{{model_name="{model}"}} 0.66666' in metrics
        # the ML SLOs' inputs: 5 valid batches of 100 rows, each row served in 12 ms
        assert f'neural_hive_model_predictions_total{{model_name="{model}"}} 500\n' in metrics
        assert f'neural_hive_model_inference_latency_seconds_bucket{{model_name="{model}",le="0.01"}} 0\n' in metrics
        assert f'neural_hive_model_inference_latency_seconds_bucket{{model_name="{model}",le="0.025"}} 500\n' in metrics
        assert f'neural_hive_model_inference_latency_seconds_count{{model_name="{model}"}} 500\n' in metrics
        assert requests.get(svc.url("/api/v1/models/nothing-here/drift"), timeout=5).status_code == 404
    finally:
        code = svc.stop()
        pymongo.MongoClient(MONGODB_URI).drop_database(db)
    assert code == 0


def test_cli_export_metrics_push(world):
    """--export-metrics PUTs the seed's gauges in the Prometheus text format to
    <url>/metrics/job/model_performance_monitor/specialist/<name> (the
    Pushgateway's API; a local HTTP server stands in for it here)."""
    import http.server
    import threading

    got = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            got.append((self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        rc, out, err = _check(world, "--specialist-type", "safety", "--export-metrics",
                              f"http://127.0.0.1:{srv.server_port}/")
    finally:
        srv.shutdown()
    assert rc == 1, out + err
    assert len(got) == 1
    path, body = got[0]
    assert path == "/metrics/job/model_performance_monitor/specialist/safety"
    lines = dict(l.split(" ", 1) for l in body.splitlines() if l and not l.startswith("#"))
    assert lines["neural_hive_model_degradation_detected"] == "1"
    assert float(lines["neural_hive_mlflow_model_f1"]) == 0.6
    assert float(lines["neural_hive_model_performance_score"]) == pytest.approx(0.7 * 0.6 + 0.3 * 0.64)
    assert "# TYPE neural_hive_mlflow_model_precision gauge" in body
