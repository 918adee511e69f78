"""Each service's REST API keeps the word of its /openapi.json.

schemathesis (an independent, property-based client) generates valid and
invalid requests from the document the running service serves, and runs every
check it has: status codes and content types as documented, responses that
match their schemas, Allow headers, schema-valid requests accepted and
schema-violating ones refused. Each service runs on the real stack with its
own consumer group, transactional id, timers topic and database."""
import os
import subprocess
import uuid

import pymongo
import pytest
import requests

from conftest import BOOTSTRAP, MONGODB_URI, ROOT, Service, create_topics, free_port

SERVICES = ["optimizer", "experiment-manager", "model-monitor", "weight-recalibrator", "retrainer"]


def binary(name):
    var = name.upper().replace("-", "_") + "_BIN"
    return os.environ.get(var, os.path.join(ROOT, "build-asan", name, name))


@pytest.fixture(params=SERVICES)
def service(request, tmp_path_factory):
    name = request.param
    tag = uuid.uuid4().hex[:10]
    db = f"itest_api_{name.replace('-', '_')}_{tag}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KAFKA_CONSUMER_GROUP": f"api-{name}-{tag}",
        "KAFKA_TRANSACTIONAL_ID": f"api-{name}-{tag}",
        "KAFKA_TIMERS_TOPIC": f"{name}.timers.t{tag}",
        "MONGODB_URI": MONGODB_URI,
        "MONGODB_DATABASE": db,
        "HTTP_PORT": str(free_port()),
        "GRPC_PORT": str(free_port()),
        "POLICY_SEED": "7",
        "MLFLOW_NAME_SUFFIX": "-" + tag,
        "LOG_LEVEL": "warn",
    }
    if name == "retrainer":
        # its own trigger topic; a run the contract starts trains nothing
        env.update({"KAFKA_DEGRADED_TOPIC": f"models.degraded.t{tag}", "KAFKA_LIFECYCLE_TOPIC": f"models.lifecycle.t{tag}",
                    "TRAINING_COMMAND": "/bin/false", "DATASET_DIR": str(tmp_path_factory.mktemp("datasets"))})
        create_topics([env["KAFKA_DEGRADED_TOPIC"], env["KAFKA_LIFECYCLE_TOPIC"], env["KAFKA_DEGRADED_TOPIC"] + ".dlq"])
    svc = Service(binary(name), env, f"api-{name}-{tag}")
    yield svc
    code = svc.stop()
    pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000).drop_database(db)
    assert svc.starts == 0 or code == 0, f"{name} exited with {code} on SIGTERM"


def test_openapi_holds_under_schemathesis(service, tmp_path):
    service.start()
    doc = requests.get(service.url("/openapi.json"), timeout=5).json()
    assert doc["openapi"].startswith("3."), doc.get("openapi")
    venv = os.environ.get("HIVE_VENV", os.path.join(ROOT, ".hive", "venv"))
    cmd = [os.path.join(venv, "bin", "schemathesis"), "run", "--checks", "all", "--max-examples", "30",
           "--seed", "1", "--request-timeout", "10", service.url("/openapi.json")]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, NO_COLOR="1"))
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, f"schemathesis found failures in {service.name}:\n" + out[-8000:]
