"""retrainer against the real stack: Kafka (ModelDegradation in, the
ModelLifecycleEvents out, read with confluent-kafka + fastavro), FerretDB
(pymongo reads the stored runs) and the real MLflow server on :5000 (the
production version set up and read back with the mlflow client).

The training job of most tests is tests/integration/retrainer_trainer.py, a
minimal trainer with the CLI of retrainer/train/train.py (scikit-learn from
the project venv, MLflow through its REST API); the notification test runs the
real retrainer/train/train.py (small forests: --n-estimators 10), with its
Slack webhook on a local HTTP receiver and its email to a local aiosmtpd. Every module run uses its own
MLflow names (MLFLOW_NAME_SUFFIX), topics, consumer group and database; each
test its own specialist, so the cooldowns do not meet.
"""
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymongo
import pytest
import requests

from hive_client import LOGS
from conftest import BOOTSTRAP, MONGODB_URI, ROOT, Service, create_topics, free_port, producer, read_committed
import hive_avro

BINARY = os.environ.get("RETRAINER_BIN", os.path.join(ROOT, "build-asan", "retrainer", "retrainer"))
MLFLOW = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
VENV = os.environ.get("HIVE_VENV", os.path.join(ROOT, ".hive", "venv"))
TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "retrainer_trainer.py")
REAL_TRAINER = os.path.join(ROOT, "retrainer", "train", "train.py")


def _client():
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(MLFLOW)
    return MlflowClient(MLFLOW)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tag = uuid.uuid4().hex[:10]
    w = {
        "tag": tag,
        "suffix": "-t" + tag,
        "degraded": f"models.degraded.t{tag}",
        "lifecycle": f"models.lifecycle.t{tag}",
        "db": f"itest_retrainer_{tag}",
        "datasets": str(tmp_path_factory.mktemp("datasets")),
        "client": _client(),
    }
    create_topics([w["degraded"], w["lifecycle"], w["degraded"] + ".dlq"])
    w["env"] = {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KAFKA_DEGRADED_TOPIC": w["degraded"],
        "KAFKA_LIFECYCLE_TOPIC": w["lifecycle"],
        "KAFKA_CONSUMER_GROUP": "retrainer-" + tag,
        "KAFKA_TRANSACTIONAL_ID": "retrainer-" + tag,
        "MONGODB_URI": MONGODB_URI,
        "MONGODB_DATABASE": w["db"],
        "MLFLOW_TRACKING_URI": MLFLOW,
        "MLFLOW_NAME_SUFFIX": w["suffix"],
        "DATASET_DIR": w["datasets"],
        "DATASET_NUM_SAMPLES": "600",
        "TRAINING_COMMAND": f"{os.path.join(VENV, 'bin', 'python')} {TRAINER}",
        "TRAINING_TIMEOUT_SECONDS": "300",
        "DRIVE_INTERVAL_MS": "300",
        "RETRAINING_COOLDOWN_HOURS": "24",
        "LOG_LEVEL": "info",
    }
    w["mongo"] = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)[w["db"]]
    yield w
    pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(w["db"])


def _service(world, name, **extra):
    env = dict(world["env"], HTTP_PORT=str(free_port()), **extra)
    return Service(BINARY, env, f"retrainer-{name}-{world['tag']}")


@pytest.fixture(scope="module")
def service(world):
    svc = _service(world, "main").start()
    yield svc
    code = svc.stop()
    assert code in (0, None), f"retrainer exited with {code} on SIGTERM"


def _baseline(world, specialist, f1):
    """A registered model {specialist}-evaluator{suffix} whose production version was trained with F1 `f1`."""
    c = world["client"]
    exp = c.create_experiment(f"{specialist}-baseline{world['suffix']}")
    run = c.create_run(exp)
    for k in ("precision", "recall", "f1_score", "accuracy"):
        c.log_metric(run.info.run_id, k, f1)
    c.set_terminated(run.info.run_id)
    name = f"{specialist}-evaluator{world['suffix']}"
    c.create_registered_model(name)
    mv = c.create_model_version(name, source=run.info.artifact_uri + "/model", run_id=run.info.run_id)
    c.set_registered_model_alias(name, "production", mv.version)
    return name, mv.version


def _degrade(world, specialist, degradation_id):
    p = producer()
    model = f"{specialist}-evaluator{world['suffix']}"
    rec = {"degradation_id": degradation_id, "model": model, "model_version": "1", "reason": "METRICS",
           "details": "f1_score 0.61 < 0.72", "metrics": {"f1_score": 0.61}, "thresholds": {"f1_score": 0.72},
           "drifted_features": [], "detected_at": int(time.time() * 1000)}
    p.produce(world["degraded"], key=model.encode(), value=hive_avro.encode("ModelDegradation", rec))
    p.flush(10)


def _wait_run(svc, run_id, until, timeout=150):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = requests.get(svc.url(f"/api/v1/runs/{run_id}"), timeout=5)
        if r.status_code == 200:
            last = r.json()
            if until(last):
                return last
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not get there within {timeout} s; last: {json.dumps(last)[:3000]}")


def _ended(run):
    return run["status"] != "running"


def _events(world, run_id, want_step, timeout=60):
    """The lifecycle events of `run_id` once the one of `want_step` came."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msgs = read_committed(world["lifecycle"], 1, timeout=5, settle=1.0)
        evs = [hive_avro.decode("ModelLifecycleEvent", m.value()) for m in msgs]
        mine = [e for e in evs if e["retrain_run_id"] == run_id]
        if any(e["step"] == want_step for e in mine):
            return mine
    raise AssertionError(f"no {want_step} event for {run_id}")


def test_degradation_trains_registers_and_promotes_a_better_version_once(world, service):
    name, v1 = _baseline(world, "technical", 0.55)
    _degrade(world, "technical", "deg-tech-1")
    run = _wait_run(service, "deg-deg-tech-1", _ended)
    assert run["status"] == "succeeded", run
    assert run["promoted"] is True, run["decision"]
    assert run["decision"]["beats_baseline"] and run["decision"]["passes_minimums"], run["decision"]
    assert run["baseline"]["version"] == v1 and abs(run["baseline"]["f1_score"] - 0.55) < 1e-9
    for step in ("cooldown", "dataset", "train", "monitor", "compare", "promote", "notify"):
        assert step in run["steps"] and "ended_ms" in run["steps"][step], (step, run["steps"])
    # read back with the real MLflow client
    c = world["client"]
    prod = c.get_model_version_by_alias(name, "production")
    assert prod.version == run["candidate"]["version"] != v1
    assert prod.run_id == run["mlflow"]["run_id"]
    assert c.get_model_version_by_alias(name, "challenger").version == prod.version
    mrun = c.get_run(prod.run_id)
    assert mrun.info.status == "FINISHED"
    assert mrun.info.experiment_id == c.get_experiment_by_name(f"technical-specialist{world['suffix']}").experiment_id
    assert mrun.data.metrics["f1_score"] > 0.55
    assert run["candidate"]["metrics"]["f1_score"] == pytest.approx(mrun.data.metrics["f1_score"])
    # every step on models.lifecycle, keyed by model
    evs = _events(world, "deg-deg-tech-1", "notify")
    kinds = {(e["step"], e["event_type"]) for e in evs}
    for want in [("cooldown", "RETRAIN_STARTED"), ("dataset", "RETRAIN_STARTED"), ("train", "RETRAIN_STARTED"),
                 ("compare", "REGISTERED"), ("promote", "PROMOTED"), ("notify", "PROMOTED")]:
        assert want in kinds, (want, kinds)
    promoted = [e for e in evs if e["step"] == "promote"][0]
    assert promoted["from_version"] == v1 and promoted["to_version"] == prod.version
    assert promoted["degradation_id"] == "deg-tech-1" and promoted["mlflow_run_id"] == prod.run_id

    # the same degradation again (a replay) and a second one within the cooldown: nothing trains
    versions = len(c.search_model_versions(f"name='{name}'"))
    _degrade(world, "technical", "deg-tech-1")
    _degrade(world, "technical", "deg-tech-2")
    second = _wait_run(service, "deg-deg-tech-2", _ended, timeout=60)
    assert second["status"] == "skipped", second
    assert second["steps"]["cooldown"]["outcome"] == "skipped"
    assert "cooldown" in second["steps"]["cooldown"]["detail"]
    assert "mlflow" not in second and "dataset" not in second
    runs = list(world["mongo"].retrain_runs.find({"specialist": "technical"}))
    assert sorted(r["_id"] for r in runs) == ["deg-deg-tech-1", "deg-deg-tech-2"]
    time.sleep(2)  # a pass of the driver after the replay
    assert len(c.search_model_versions(f"name='{name}'")) == versions
    assert c.get_model_version_by_alias(name, "production").version == prod.version
    exp = c.get_experiment_by_name(f"technical-specialist{world['suffix']}")
    assert len(c.search_runs([exp.experiment_id])) == 1
    metrics = requests.get(service.url("/metrics"), timeout=5).text
    assert 'neural_hive_auto_retrain_triggered_total{specialist_type="technical"} 1' in metrics
    assert 'neural_hive_auto_retrain_success_total{specialist_type="technical"} 1' in metrics
    assert 'ml_retraining_events_total{model_type="technical",success="true"} 1' in metrics


def test_worse_candidate_is_registered_but_not_promoted(world, service):
    name, v1 = _baseline(world, "safety", 0.999)
    _degrade(world, "safety", "deg-safety-1")
    run = _wait_run(service, "deg-deg-safety-1", _ended)
    assert run["status"] == "succeeded", run
    assert run["promoted"] is False
    assert run["decision"]["beats_baseline"] is False and run["decision"]["promote"] is False
    assert "FAILS" in run["decision"]["reason"] and "baseline_f1 0.9990" in run["decision"]["reason"]
    c = world["client"]
    assert c.get_model_version_by_alias(name, "production").version == v1
    cand = c.get_model_version(name, run["candidate"]["version"])
    assert cand.run_id == run["mlflow"]["run_id"]  # registered all the same
    assert not cand.aliases
    evs = _events(world, "deg-deg-safety-1", "notify")
    assert ("promote", "REJECTED") in {(e["step"], e["event_type"]) for e in evs}


def test_dry_run_changes_nothing(world, service):
    before = {coll: world["mongo"][coll].count_documents({}) for coll in ("retrain_runs", "cooldowns")}
    env = dict(os.environ, **world["env"])
    out = subprocess.run([BINARY, "run", "--specialist-type", "business", "--dry-run", "--force"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    plan = json.loads(out.stdout)
    assert plan["dry_run"] is True and plan["would_run"] is True and plan["specialist"] == "business"
    assert plan["production_version"] == "none"
    r = requests.post(service.url("/api/v1/runs"), json={"specialist_type": "business", "dry_run": True}, timeout=10)
    assert r.status_code == 200 and r.json()["would_run"] is True, r.text
    r = requests.post(service.url("/api/v1/runs"), json={"specialist_type": "business", "bogus": 1}, timeout=10)
    assert r.status_code == 400 and r.json()["field"] == "bogus", r.text
    after = {coll: world["mongo"][coll].count_documents({}) for coll in ("retrain_runs", "cooldowns")}
    assert after == before
    assert world["mongo"].retrain_runs.count_documents({"specialist": "business"}) == 0
    assert world["client"].get_experiment_by_name(f"business-specialist{world['suffix']}") is None
    assert not os.path.exists(os.path.join(world["datasets"], "business")) and not any(
        f.startswith("business-") for f in os.listdir(world["datasets"]))


def test_sigkill_mid_run_then_restart_finishes_once(world, service):
    name, v1 = _baseline(world, "ethical", 0.5)
    # the module's service stops first: one driver of the runs at a time
    assert service.stop() == 0, "retrainer did not exit 0 on SIGTERM"
    # the trainer waits a few seconds: the service is killed while it runs
    svc = _service(world, "kill", HIVE_TRAIN_SLEEP="6").start()
    try:
        _degrade(world, "ethical", "deg-ethical-1")
        run = _wait_run(svc, "deg-deg-ethical-1", lambda r: r["step"] == "monitor", timeout=60)
        pid = run["mlflow"]["trainer_pid"]
        svc.kill9()
        svc.start()
        done = _wait_run(svc, "deg-deg-ethical-1", _ended)
        # a run started through REST and cancelled while its job runs (the job still sleeps)
        r = requests.post(svc.url("/api/v1/runs"), json={"specialist_type": "legal", "force": True}, timeout=10)
        assert r.status_code == 202 and r.json()["status"] == "running", r.text
        rest_id = r.json()["run_id"]
        _wait_run(svc, rest_id, lambda x: x["step"] == "monitor", timeout=60)
        r = requests.post(svc.url(f"/api/v1/runs/{rest_id}/cancel"), timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        cancelled = r.json()
        assert requests.post(svc.url(f"/api/v1/runs/{rest_id}/cancel"), timeout=30).status_code == 409
        listed = requests.get(svc.url("/api/v1/runs"), params={"status": "cancelled"}, timeout=10).json()["runs"]
        assert [x["run_id"] for x in listed] == [rest_id]
    finally:
        assert svc.stop() == 0
    assert done["status"] == "succeeded" and done["promoted"] is True, done
    assert done["mlflow"]["trainer_pid"] == pid  # started once, followed after the restart
    c = world["client"]
    exp = c.get_experiment_by_name(f"ethical-specialist{world['suffix']}")
    assert len(c.search_runs([exp.experiment_id])) == 1
    versions = c.search_model_versions(f"name='{name}'")
    assert sorted(int(v.version) for v in versions) == [int(v1), int(v1) + 1]
    assert c.get_model_version_by_alias(name, "production").version == done["candidate"]["version"]
    evs = _events(world, "deg-deg-ethical-1", "notify")
    assert len({e["event_id"] for e in evs if e["step"] == "promote"}) == 1
    assert world["mongo"].retrain_runs.count_documents({"specialist": "ethical"}) == 1
    # the cancelled run's job was killed: its MLflow run FAILED, nothing registered
    assert c.get_run(cancelled["mlflow"]["run_id"]).info.status == "FAILED"
    assert not c.search_model_versions(f"name='legal-evaluator{world['suffix']}'")


class _Webhook:
    """A local HTTP receiver standing in for Slack's incoming webhook; answers `self.code`."""

    def __init__(self):
        self.posts = []
        self.code = 200
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.posts.append(json.loads(body))
                data = b"ok" if outer.code == 200 else b"invalid_payload"
                self.send_response(outer.code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/services/T/B/X" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp():
    controller = pytest.importorskip("aiosmtpd.controller")

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append({"to": list(envelope.rcpt_tos), "content": envelope.content.decode("utf-8", "replace")})
            return "250 OK"

    handler = Handler()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        handler.port = s.getsockname()[1]
    ctl = controller.Controller(handler, hostname="127.0.0.1", port=handler.port)
    ctl.start()
    yield handler
    ctl.stop()


def test_real_trainer_and_notifications(world, smtp):
    """The real train.py registers {specialist}-evaluator{suffix}; each run ends with a Slack post and an
    email (success and failure); a refused webhook is counted and the run still succeeds."""
    tag = uuid.uuid4().hex[:8]
    suffix = world["suffix"] + "n"
    db = world["db"] + "_n"
    degraded = f"models.degraded.n{tag}"
    create_topics([degraded, degraded + ".dlq"])
    hook = _Webhook()
    svc = _service(world, "notify", MONGODB_DATABASE=db, KAFKA_DEGRADED_TOPIC=degraded,
                   KAFKA_CONSUMER_GROUP="retrainer-n" + tag, KAFKA_TRANSACTIONAL_ID="retrainer-n" + tag,
                   MLFLOW_NAME_SUFFIX=suffix,
                   TRAINING_COMMAND=f"{os.path.join(VENV, 'bin', 'python')} {REAL_TRAINER} --n-estimators 10",
                   NOTIFICATION_CHANNELS="slack,email", SLACK_WEBHOOK_URL=hook.url, SLACK_CHANNEL="#ml-alerts",
                   SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port), EMAIL_RECIPIENTS="ops@hive.test",
                   NOTIFY_RETRIES="1", NOTIFY_TIMEOUT_MS="3000").start()
    c = world["client"]
    name = f"technical-evaluator{suffix}"
    try:
        # 1. success: trained by train.py, registered under the suffixed name, promoted; the webhook answers
        # 400 (not retried): counted failed, the email goes all the same, the run succeeds
        hook.code = 400
        r = requests.post(svc.url("/api/v1/runs"), json={"specialist_type": "technical"}, timeout=10)
        assert r.status_code == 202, r.text
        ok = _wait_run(svc, r.json()["run_id"], _ended, timeout=180)
        assert ok["status"] == "succeeded" and ok["promoted"] is True, ok
        prod = c.get_model_version_by_alias(name, "production")
        assert prod.run_id == ok["mlflow"]["run_id"] and prod.version == ok["candidate"]["version"]
        assert c.get_run(prod.run_id).data.params["n_estimators"] == "10"
        detail = ok["steps"]["notify"]["detail"]
        assert detail.startswith("slack sent 0 failed 1: ") and "400" in detail, detail
        assert detail.endswith("; email sent 1 failed 0"), detail
        assert len(hook.posts) == 1 and hook.posts[0]["channel"] == "#ml-alerts"
        assert hook.posts[0]["attachments"][0]["color"] == "good", hook.posts[0]
        assert "technical" in hook.posts[0]["text"] and ok["mlflow"]["run_id"] in json.dumps(hook.posts[0])
        assert len(smtp.messages) == 1 and smtp.messages[0]["to"] == ["ops@hive.test"]
        assert "Subject: [auto-retrain] technical: retrained, improved" in smtp.messages[0]["content"]

        # 2. failure: the job refuses the dataset (too few samples), the run fails, both channels say why
        hook.code = 200
        r = requests.post(svc.url("/api/v1/runs"), json={"specialist_type": "technical", "force": True,
                                                         "skip_dataset_generation": True, "min_samples": 100000},
                          timeout=10)
        assert r.status_code == 202, r.text
        bad = _wait_run(svc, r.json()["run_id"], _ended, timeout=180)
        assert bad["status"] == "failed" and bad["error"], bad
        assert c.get_run(bad["mlflow"]["run_id"]).info.status == "FAILED"
        assert bad["steps"]["notify"]["detail"] == "slack sent 1 failed 0; email sent 1 failed 0", bad["steps"]
        assert len(hook.posts) == 2 and hook.posts[1]["attachments"][0]["color"] == "danger", hook.posts[1]
        assert len(smtp.messages) == 2 and "Error: " in smtp.messages[1]["content"], smtp.messages[1]["content"]
        assert c.get_model_version_by_alias(name, "production").version == prod.version
        metrics = requests.get(svc.url("/metrics"), timeout=5).text
        assert 'neural_hive_auto_retrain_notifications_total{channel="slack",outcome="sent"} 1' in metrics
        assert 'neural_hive_auto_retrain_notifications_total{channel="slack",outcome="failed"} 1' in metrics
        assert 'neural_hive_auto_retrain_notifications_total{channel="email",outcome="sent"} 2' in metrics
    finally:
        assert svc.stop() == 0
        hook.close()
        pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(db)


def _redis_get(key):
    """GET over a plain socket (RESP): the value, or None."""
    with socket.create_connection(("127.0.0.1", int(os.environ.get("REDIS_PORT", "6379"))), timeout=5) as s:
        s.sendall(f"*2\r\n$3\r\nGET\r\n${len(key)}\r\n{key}\r\n".encode())
        data = s.recv(4096)
        while not data.startswith(b"$-1") and data.count(b"\r\n") < 2:
            data += s.recv(4096)
    assert data.startswith(b"$"), data
    return None if data.startswith(b"$-1") else data.split(b"\r\n")[1].decode()


def _log(svc):
    with open(os.path.join(LOGS, f"{svc.name}.{svc.starts}.log"), encoding="utf-8", errors="replace") as f:
        return f.read()


def test_two_replicas_one_driver_per_specialist(world):
    """Two replicas on one database: the Redis lock retrainer:<db>:<specialist> lets one drive a run; when
    that one is killed, the other takes the run over once the lock expires and finishes it once."""
    tag = uuid.uuid4().hex[:8]
    suffix = world["suffix"] + "r"
    db = world["db"] + "_r"
    degraded = f"models.degraded.r{tag}"
    create_topics([degraded, degraded + ".dlq"])
    common = dict(MONGODB_DATABASE=db, KAFKA_DEGRADED_TOPIC=degraded, KAFKA_CONSUMER_GROUP="retrainer-r" + tag,
                  MLFLOW_NAME_SUFFIX=suffix, RUN_LOCK_TTL_MS="3000", HIVE_TRAIN_SLEEP="4")
    a = _service(world, "ra", KAFKA_TRANSACTIONAL_ID="retrainer-ra" + tag, **common).start()
    b = _service(world, "rb", KAFKA_TRANSACTIONAL_ID="retrainer-rb" + tag, **common).start()
    c = world["client"]
    key = f"lock:retrainer:{db}:business"
    try:
        r = requests.post(a.url("/api/v1/runs"), json={"specialist_type": "business"}, timeout=10)
        assert r.status_code == 202, r.text
        first = r.json()["run_id"]
        _wait_run(a, first, lambda x: x["step"] == "monitor", timeout=60)
        assert _redis_get(key) is not None
        done = _wait_run(b, first, _ended)
        assert done["status"] == "succeeded", done
        marker = f"retrainer:{db}:business"
        drivers = [s for s in (a, b) if marker in _log(s)]
        assert len(drivers) == 1, "both replicas drove the run"
        exp = c.get_experiment_by_name(f"business-specialist{suffix}")
        assert len(c.search_runs([exp.experiment_id])) == 1
        assert len(c.search_model_versions(f"name='business-evaluator{suffix}'")) == 1
        deadline = time.time() + 10
        while _redis_get(key) is not None and time.time() < deadline:
            time.sleep(0.3)
        assert _redis_get(key) is None  # released once the specialist has no running run

        # the driver dies mid-run: the other replica takes over after the lock's TTL, the run ends once
        taken = {s.name: _log(s).count(marker) for s in (a, b)}
        r = requests.post(a.url("/api/v1/runs"), json={"specialist_type": "business", "force": True}, timeout=10)
        assert r.status_code == 202, r.text
        second = r.json()["run_id"]
        mid = _wait_run(a, second, lambda x: x["step"] == "monitor", timeout=60)
        holders = [s for s in (a, b) if _log(s).count(marker) > taken[s.name]]
        assert len(holders) == 1, "both replicas drove the run"
        dead = holders[0]
        alive = b if dead is a else a
        dead.kill9()
        done2 = _wait_run(alive, second, _ended)
        assert _log(alive).count(marker) > taken[alive.name]  # the survivor took the lock over
        assert done2["status"] == "succeeded", done2
        assert done2["mlflow"]["trainer_pid"] == mid["mlflow"]["trainer_pid"]  # one job, followed
        assert len(c.search_runs([exp.experiment_id])) == 2
        assert len(c.search_model_versions(f"name='business-evaluator{suffix}'")) == 2
    finally:
        for s in (a, b):
            if s.proc.poll() is None:
                assert s.stop() == 0
        pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(db)
