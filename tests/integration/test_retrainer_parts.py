"""The retrainer's parts against real counterparts.

- Notifications: email received by a real SMTP server (aiosmtpd, with and
  without AUTH), the Slack payload by a local HTTP receiver, retries counted.
- LLM providers: no LLM runs here. Each provider's client (retrainer/parts/
  dataset.c) talks to a local HTTP server that speaks that provider's API
  (Ollama /api/chat, OpenAI /v1/chat/completions, Anthropic /v1/messages): the
  server checks the request as the provider would and answers in its format.
- The training job (retrainer/train/train.py) against the real MLflow server on
  :5000: it resumes the run created here, logs its metrics, registers a new
  version of `{specialist}-evaluator` whose model loads back with the MLflow
  client; label noise makes its F1 worse; too few samples fail the run.

The C parts are driven through tests/integration/retrainer_parts_probe.
"""
import json
import os
import socket
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE = os.environ.get("RETRAINER_PARTS_PROBE_BIN",
                       os.path.join(ROOT, "build-asan", "tests", "integration", "retrainer_parts_probe"))
TRAIN = os.path.join(ROOT, "retrainer", "train", "train.py")
MLFLOW_URI = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
PYTHON = os.path.join(os.environ.get("HIVE_VENV", os.path.join(ROOT, ".hive", "venv")), "bin", "python")


def probe(*args, timeout=120):
    p = subprocess.run([PROBE, *args], capture_output=True, text=True, timeout=timeout)
    assert p.stdout.strip(), p.stderr
    return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


class Receiver:
    """A local HTTP server; `answer(handler, body)` returns (code, dict)."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code, reply = answer(self, body)
                data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- notifications ----

@pytest.fixture
def smtp():
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.startswith("nobody@"):
                return "550 5.1.1 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "content": envelope.content.decode("utf-8", "replace"),
                                  "login": session.auth_data if session.authenticated else None})
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"hive" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

    handler = Handler()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        handler.port = s.getsockname()[1]
    ctl = aiosmtpd.Controller(handler, hostname="127.0.0.1", port=handler.port, authenticator=authenticator,
                              auth_require_tls=False)
    ctl.start()
    yield handler
    ctl.stop()


def test_email_reaches_a_real_smtp_server(smtp):
    rc, out = probe("notify", "--channels", "email", "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.port),
                    "--from", "retrainer@hive.test", "--to", "ops@hive.test, ml@hive.test",
                    "--specialist", "technical", "--retrain-id", "rt-42", "--run-id", "run-abc",
                    "--success", "1", "--improved", "1", "--baseline-f1", "0.80", "--new-f1", "0.86")
    assert rc == 0 and out["rc"] == "OK"
    assert out["email"] == {"sent": 1, "failed": 0, "attempts": 1, "error": ""}
    assert len(smtp.messages) == 1
    m = smtp.messages[0]
    assert m["from"] == "retrainer@hive.test"
    assert m["to"] == ["ops@hive.test", "ml@hive.test"]
    assert "Subject: [auto-retrain] technical: retrained, improved" in m["content"]
    assert "MLflow run: run-abc" in m["content"]
    assert "Improved: yes (F1 0.8000 -> 0.8600)" in m["content"]


def test_email_authenticates_and_a_refused_recipient_is_counted(smtp):
    common = ["notify", "--channels", "email", "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.port),
              "--to", "ops@hive.test", "--specialist", "business", "--success", "0",
              "--error", "training failed", "--action", "look at the run", "--retries", "2"]
    rc, out = probe(*common, "--smtp-user", "hive", "--smtp-password", "s3cret")
    assert out["email"]["sent"] == 1
    assert smtp.messages[-1]["login"] == "hive"
    assert "Error: training failed" in smtp.messages[-1]["content"]
    n = len(smtp.messages)
    common[common.index("ops@hive.test")] = "nobody@hive.test"
    rc, out = probe(*common, "--smtp-user", "hive", "--smtp-password", "s3cret")
    # a 5xx reply is not retried (it would come again); the run goes on
    assert rc == 0 and out["rc"] == "OK"
    assert "550" in out["email"]["error"]
    assert out["email"]["sent"] == 0 and out["email"]["failed"] == 1 and out["email"]["attempts"] == 1
    assert len(smtp.messages) == n


def test_slack_webhook_payload_and_retry():
    calls = []

    def answer(h, body):
        calls.append(body)
        return (500, {"error": "try later"}) if len(calls) == 1 else (200, {"ok": True})

    rx = Receiver(answer)
    try:
        rc, out = probe("notify", "--channels", "slack", "--webhook", rx.url + "/services/T/B/X",
                        "--slack-channel", "#ml-alerts", "--specialist", "technical", "--run-id", "run-xyz",
                        "--success", "1", "--improved", "0", "--baseline-f1", "0.9", "--new-f1", "0.7",
                        "--retries", "2")
    finally:
        rx.close()
    assert rc == 0
    assert out["slack"] == {"sent": 1, "failed": 0, "attempts": 2, "error": ""}
    assert len(rx.requests) == 2
    r = rx.requests[-1]
    assert r["path"] == "/services/T/B/X"
    assert r["headers"]["Content-Type"] == "application/json"
    p = json.loads(r["body"])
    assert p["channel"] == "#ml-alerts"
    assert "technical" in p["text"] and "not improved" in p["text"]
    att = p["attachments"][0]
    assert att["color"] == "warning"
    assert "run-xyz" in att["text"]


def test_both_channels_and_an_unreachable_webhook_do_not_fail(smtp):
    rc, out = probe("notify", "--channels", "slack,email", "--webhook", "http://127.0.0.1:9/hook",
                    "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.port), "--to", "ops@hive.test",
                    "--success", "0", "--error", "mlflow unreachable", "--retries", "1", "--timeout-ms", "2000")
    assert rc == 0 and out["rc"] == "OK"
    assert out["slack"]["failed"] == 1 and out["slack"]["attempts"] == 2
    assert out["email"]["sent"] == 1


# ---- LLM providers ----

K = 8


def samples_for(prompt, n):
    """What a model would answer: n samples, half approved."""
    assert "Generate %d" % n in prompt
    return json.dumps({"samples": [{"features": [round((i * 7 + j) % 10 / 10, 2) for j in range(K)],
                                    "label": i % 2, "text": "plan %d" % i} for i in range(n)]})


def asked(prompt):
    return int(prompt.split("Generate ")[1].split(" ")[0])


def ollama(h, body):
    req = json.loads(body)
    if h.path != "/api/chat":
        return 404, {"error": "not found"}
    assert req["stream"] is False and req["model"] == "llama2"
    assert req["options"]["temperature"] == 0.7
    prompt = req["messages"][-1]["content"]
    return 200, {"model": req["model"], "created_at": "2026-01-01T00:00:00Z",
                 "message": {"role": "assistant", "content": samples_for(prompt, asked(prompt))},
                 "done": True, "done_reason": "stop"}


def openai(h, body):
    if h.path != "/v1/chat/completions":
        return 404, {"error": {"message": "not found"}}
    if h.headers.get("Authorization") != "Bearer sk-test":
        return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
    req = json.loads(body)
    assert req["model"] == "gpt-4" and req["messages"][0]["role"] == "system"
    prompt = req["messages"][-1]["content"]
    return 200, {"id": "chatcmpl-1", "object": "chat.completion", "model": req["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": samples_for(prompt, asked(prompt))}}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def anthropic(h, body):
    if h.path != "/v1/messages":
        return 404, {"type": "error", "error": {"type": "not_found_error"}}
    if h.headers.get("x-api-key") != "sk-ant-test":
        return 401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    if not h.headers.get("anthropic-version"):
        return 400, {"type": "error", "error": {"type": "invalid_request_error"}}
    req = json.loads(body)
    assert req["max_tokens"] > 0 and isinstance(req["system"], str)
    prompt = req["messages"][-1]["content"]
    return 200, {"id": "msg_1", "type": "message", "role": "assistant", "model": req["model"],
                 "content": [{"type": "text", "text": samples_for(prompt, asked(prompt))}],
                 "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 10}}


PROVIDERS = {
    "local": (ollama, ["--model", "llama2"]),
    "openai": (openai, ["--model", "gpt-4", "--api-key", "sk-test"]),
    "anthropic": (anthropic, ["--model", "claude-3-opus-20240229", "--api-key", "sk-ant-test"]),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_llm_provider_client(provider, tmp_path):
    handler, extra = PROVIDERS[provider]
    rx = Receiver(handler)
    try:
        rc, out = probe("generate", "--dir", str(tmp_path), "--specialist", "technical", "--samples", "50",
                        "--provider", provider, "--base-url", rx.url, "--timeout", "60", *extra)
    finally:
        rx.close()
    assert rc == 0, out
    assert out["samples"] == 50 and out["from_llm"] == 50 and out["llm_errors"] == 0, out
    assert len(rx.requests) == 3  # 20 + 20 + 10
    rows = read_jsonl(out["path"])
    assert len(rows) == 50 and all(r["source"] == "llm" for r in rows)
    assert rows[3]["text"] == "plan 3" and rows[3]["label"] == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_llm_rejected_key_falls_back_to_synthetic(provider, tmp_path):
    handler, extra = PROVIDERS[provider]
    extra = [a if not a.startswith("sk-") else "bad-key" for a in extra]
    rx = Receiver(handler)
    try:
        rc, out = probe("generate", "--dir", str(tmp_path), "--specialist", "technical", "--samples", "40",
                        "--provider", provider, "--base-url", rx.url, *extra)
    finally:
        rx.close()
    assert rc == 0
    assert out["from_llm"] == 0 and out["llm_errors"] == 1 and out["samples"] == 40
    assert "HTTP 401" in out["llm_error"]
    assert len(rx.requests) == 1
    assert all(r["source"] == "synthetic" for r in read_jsonl(out["path"]))


# ---- the training job against the real MLflow ----

@pytest.fixture(scope="module")
def mlflow_client():
    mlflow = pytest.importorskip("mlflow")
    mlflow.set_tracking_uri(MLFLOW_URI)
    return mlflow, mlflow.tracking.MlflowClient(MLFLOW_URI)


def new_run(client, specialist):
    name = "%s-specialist" % specialist
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(name)
    return client.create_run(exp_id).info.run_id


def train(specialist, dataset, run_id, noise=None, extra=()):
    env = dict(os.environ, MLFLOW_TRACKING_URI=MLFLOW_URI)
    env.pop("HIVE_TRAIN_LABEL_NOISE", None)
    if noise is not None:
        env["HIVE_TRAIN_LABEL_NOISE"] = str(noise)
    return subprocess.run([PYTHON, TRAIN, "--specialist-type", specialist, "--dataset", dataset,
                           "--run-id", run_id, "--n-estimators", "50", *extra],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def trained(mlflow_client, tmp_path_factory):
    """Two runs on one synthetic dataset of 1,000 samples: clean, and with 45% label noise."""
    mlflow, client = mlflow_client
    specialist = "rparts" + uuid.uuid4().hex[:8]
    d = tmp_path_factory.mktemp("datasets")
    rc, ds = probe("generate", "--dir", str(d), "--specialist", specialist, "--samples", "1000", "--seed", "7")
    assert rc == 0
    runs = {}
    for label, noise in (("clean", None), ("noisy", 0.45)):
        run_id = new_run(client, specialist)
        p = train(specialist, ds["path"], run_id, noise)
        assert p.returncode == 0, p.stderr[-3000:]
        runs[label] = (run_id, json.loads(p.stdout.strip().splitlines()[-1]))
    return specialist, ds["path"], runs


def test_trainer_registers_a_version_with_metrics(mlflow_client, trained):
    mlflow, client = mlflow_client
    specialist, _, runs = trained
    run_id, out = runs["clean"]
    assert out["run_id"] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for k in ("precision", "recall", "f1_score", "accuracy"):
        assert run.data.metrics[k] == pytest.approx(out["metrics"][k])
        assert 0 <= out["metrics"][k] <= 1
    assert run.data.params["model_type"] == "RandomForestClassifier"
    assert run.data.params["n_estimators"] == "50"
    # the synthetic rule is learnable
    assert out["metrics"]["f1_score"] > 0.8
    mv = client.get_model_version("%s-evaluator" % specialist, out["model_version"])
    assert mv.run_id == run_id
    # the artifacts are stored where the client can read them back
    model = mlflow.sklearn.load_model("models:/%s-evaluator/%s" % (specialist, out["model_version"]))
    rows = read_jsonl(trained[1])[:20]
    pred = model.predict([r["features"] for r in rows])
    assert sum(int(p == r["label"]) for p, r in zip(pred, rows)) >= 14


def test_label_noise_makes_a_worse_candidate(mlflow_client, trained):
    _, client = mlflow_client
    specialist, _, runs = trained
    clean, noisy = runs["clean"][1], runs["noisy"][1]
    assert noisy["metrics"]["f1_score"] < clean["metrics"]["f1_score"]
    assert int(noisy["model_version"]) == int(clean["model_version"]) + 1
    assert client.get_run(runs["noisy"][0]).data.params["label_noise"] == "0.45"


def test_too_few_samples_fail_the_run(mlflow_client, trained, tmp_path):
    _, client = mlflow_client
    specialist = trained[0]
    rc, ds = probe("generate", "--dir", str(tmp_path), "--specialist", specialist, "--samples", "30")
    run_id = new_run(client, specialist)
    p = train(specialist, ds["path"], run_id, extra=("--min-samples", "100"))
    assert p.returncode == 2
    assert "fewer than --min-samples 100" in p.stderr
    assert client.get_run(run_id).info.status == "FAILED"
