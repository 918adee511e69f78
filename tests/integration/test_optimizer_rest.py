"""The optimizer's REST API (seed 000, "APIs") against the real service.

The optimizer runs on its own topics and database. Hypotheses a test needs in
a given status are written straight into MongoDB in the shape repo.c writes;
the records the API publishes are read back with an independent
read_committed consumer and decoded with fastavro (hive_avro).
"""
import json
import time

import pytest
import requests

import hive_avro
from conftest import read_committed

API = "/api/v1/optimizations"
STATUSES = ["PROPOSED", "AWAITING_APPROVAL", "EXPERIMENTING", "APPROVED", "APPLIED", "REJECTED", "ROLLED_BACK",
            "FAILED", "EXPIRED"]
HYPOTHESIS_FIELDS = {
    "optimization_id", "insight_id", "component", "problem", "state_key", "action", "type", "policy", "status",
    "q_value", "confidence", "risk", "expected_improvement", "propensity", "experiment_id", "has_result",
    "improvement", "reward", "reason", "rationale", "created_at_ms", "updated_at_ms",
}
# Every route the server answers, by path: the OpenAPI document must list
# exactly these.
ROUTES = {
    API + "/trigger": {"post"},
    API: {"get"},
    API + "/statistics/summary": {"get"},
    API + "/{id}": {"get"},
    API + "/{id}/rollback": {"post"},
    API + "/{id}/approve": {"post"},
    API + "/{id}/reject": {"post"},
    "/api/v1/policy/evaluation": {"get"},
    "/health": {"get"},
    "/ready": {"get"},
    "/metrics": {"get"},
    "/openapi.json": {"get"},
}
UNKNOWN = "opt-00000000deadbeef"


@pytest.fixture
def api(optimizer):
    """The optimizer, started on this test's topics (conftest) and database."""
    # Greedy with a fixed seed: the policy's choice is reproducible (the first
    # decision in state orchestrator|LATENCY|sev3 is a change, not NO_OP).
    optimizer.env.update({"EXPLORATION_RATE": "0", "EPSILON_MIN": "0", "POLICY_SEED": "42"})
    return optimizer.start()


def hypothesis(n, status, type_="SLO_ADJUSTMENT", component="orchestrator", **extra):
    """An optimizations document as repo.c writes it; newer with a larger n."""
    doc = {
        "_id": f"opt-{n:016x}",
        "insight_id": f"itest-{n}",
        "component": component,
        "problem": "LATENCY",
        "state_key": f"{component}|LATENCY|sev2|load0",
        "action": "slo_latency_relax",
        "type": type_,
        "policy": "qlearning",
        "status": status,
        "q_value": 0.25,
        "confidence": 0.5,
        "risk": 0.3,
        "expected_improvement": 0.1,
        "propensity": 0.9,
        "experiment_id": f"exp-{n:016x}",
        "has_result": status in ("APPROVED", "APPLIED", "ROLLED_BACK", "REJECTED"),
        "improvement": 0.2 if status != "REJECTED" else -0.1,
        "reward": 0.5,
        "reason": "",
        "rationale": f"seeded by the test, number {n}",
        "created_at_ms": 1_700_000_000_000 + n * 1000,
        "updated_at_ms": 1_700_000_000_000 + n * 1000,
    }
    doc.update(extra)
    return doc


def seed(mongo, api, docs):
    mongo[api.env["MONGODB_DATABASE"]]["optimizations"].insert_many(docs)


def post(api, path, body=None, **kw):
    if body is not None:
        kw["json"] = body
    return requests.post(api.url(path), timeout=15, **kw)


def get(api, path, **kw):
    return requests.get(api.url(path), timeout=15, **kw)


def assert_error(r, status, field):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert body.get("field") == field, f"expected field {field!r}, got {body!r}"


# ---- the OpenAPI document ---------------------------------------------------


def test_openapi_document_describes_exactly_the_served_routes(api):
    r = get(api, "/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    doc = json.loads(r.text)
    assert doc["openapi"].startswith("3.0."), doc["openapi"]
    paths = {p: {m for m in ops if m in ("get", "post", "put", "delete", "patch")} for p, ops in doc["paths"].items()}
    assert paths == ROUTES

    # Every documented operation is served: a request reaches a handler (not
    # the router's 404 "no route" or 405), and its status is documented.
    for path, methods in paths.items():
        for method in methods:
            url = path.replace("{id}", UNKNOWN)
            resp = requests.request(method.upper(), api.url(url), timeout=15)
            assert resp.status_code != 405, f"{method} {path}: {resp.text}"
            if resp.status_code == 404:
                assert "no route" not in resp.json()["error"], f"{method} {path} is not served"
            documented = doc["paths"][path][method]["responses"]
            assert str(resp.status_code) in documented, f"{method} {path} answered {resp.status_code}"

    # The referenced components exist.
    text = r.text
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        node = doc
        for key in ref.lstrip("#/").split("/"):
            assert key in node, f"dangling $ref {ref}"
            node = node[key]

    try:
        from openapi_spec_validator import validate
    except ImportError:
        return
    validate(doc)


# ---- 400 naming the field -----------------------------------------------------

GOOD_TRIGGER = {"component": "orchestrator", "problem": "LATENCY", "current_value": 1500.0, "baseline_value": 300.0}


def trigger_with(**changes):
    body = dict(GOOD_TRIGGER)
    for k, v in changes.items():
        if v is KeyError:
            body.pop(k)
        else:
            body[k] = v
    return body


BAD_TRIGGERS = [
    (trigger_with(component=KeyError), "component"),
    (trigger_with(component=""), "component"),
    (trigger_with(component=7), "component"),
    (trigger_with(component="a|b"), "component"),
    (trigger_with(component="c" * 64), "component"),
    (trigger_with(problem=KeyError), "problem"),
    (trigger_with(problem="SLOWNESS"), "problem"),
    (trigger_with(metric=3), "metric"),
    (trigger_with(current_value="1500"), "current_value"),
    (trigger_with(current_value=None), "current_value"),
    (trigger_with(current_value=True), "current_value"),
    (trigger_with(baseline_value=KeyError), "baseline_value"),
    (trigger_with(priority="URGENT"), "priority"),
    (trigger_with(priority=2), "priority"),
    (trigger_with(description=["x"]), "description"),
    ({}, "component"),
]


def test_bad_requests_are_400_naming_the_field(api):
    for body, field in BAD_TRIGGERS:
        assert_error(post(api, API + "/trigger", body), 400, field)
    # Bodies that are not a JSON object.
    hdr = {"Content-Type": "application/json"}
    assert_error(post(api, API + "/trigger", data="[1, 2]", headers=hdr), 400, "body")
    assert_error(post(api, API + "/trigger", data='{"component": ', headers=hdr), 400, "body")
    assert_error(post(api, API + "/trigger", data='{"current_value": NaN}', headers=hdr), 400, "body")
    assert_error(post(api, API + "/trigger"), 400, "body")
    assert_error(post(api, API + "/trigger", data="component=x"), 400, "body")
    # Query parameters of the list.
    for query, field in [("status=DONE", "status"), ("status=applied", "status"), ("type=MAGIC", "type"),
                         ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"),
                         ("limit=-1", "limit"), ("offset=-1", "offset"), ("offset=1x", "offset")]:
        assert_error(get(api, f"{API}?{query}"), 400, field)
    # The optional body of the changes.
    for action in ("rollback", "approve", "reject"):
        assert_error(post(api, f"{API}/{UNKNOWN}/{action}", {"reason": 42}), 400, "reason")
        assert_error(post(api, f"{API}/{UNKNOWN}/{action}", data="[]", headers=hdr), 400, "body")


def test_unknown_id_is_404(api):
    assert_error(get(api, f"{API}/{UNKNOWN}"), 404, None)
    assert_error(get(api, f"{API}/not-an-id-at-all"), 404, None)
    assert_error(get(api, f"{API}/{'x' * 300}"), 404, None)
    for action in ("rollback", "approve", "reject"):
        assert_error(post(api, f"{API}/{UNKNOWN}/{action}"), 404, None)
        assert_error(post(api, f"{API}/{UNKNOWN}/{action}", {"reason": "why not"}), 404, None)


# ---- reading -------------------------------------------------------------------


def test_get_list_filters_paging_and_statistics(api, mongo):
    docs = [
        hypothesis(1, "APPLIED", "SLO_ADJUSTMENT", "orchestrator"),
        hypothesis(2, "AWAITING_APPROVAL", "WEIGHT_RECALIBRATION", "consensus-engine"),
        hypothesis(3, "EXPERIMENTING", "SLO_ADJUSTMENT", "orchestrator"),
        hypothesis(4, "ROLLED_BACK", "WEIGHT_RECALIBRATION", "consensus-engine", reason="guardrail"),
        hypothesis(5, "REJECTED", "HEURISTIC_UPDATE", "orchestrator"),
        hypothesis(6, "APPLIED", "WEIGHT_RECALIBRATION", "consensus-engine"),
    ]
    seed(mongo, api, docs)

    r = get(api, f"{API}/opt-{4:016x}")
    assert r.status_code == 200, r.text
    h = r.json()
    assert set(h) == HYPOTHESIS_FIELDS
    assert h["optimization_id"] == f"opt-{4:016x}" and h["status"] == "ROLLED_BACK"
    assert h["reason"] == "guardrail" and h["rationale"] == "seeded by the test, number 4"
    assert h["has_result"] is True and h["improvement"] == pytest.approx(0.2)
    assert h["created_at_ms"] == 1_700_000_004_000
    assert get(api, f"{API}/opt-{2:016x}").json()["improvement"] is None  # no result yet

    def ids(query):
        r = get(api, f"{API}?{query}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "total", "limit", "offset"}
        return [i["optimization_id"][-1] for i in body["items"]], body["total"], body["limit"], body["offset"]

    assert ids("") == (list("654321"), 6, 50, 0)  # newest first
    assert ids("limit=2") == (list("65"), 6, 2, 0)
    assert ids("limit=2&offset=2") == (list("43"), 6, 2, 2)
    assert ids("limit=2&offset=5") == (list("1"), 6, 2, 5)
    assert ids("offset=6") == ([], 6, 50, 6)
    assert ids("status=APPLIED") == (list("61"), 2, 50, 0)
    assert ids("type=WEIGHT_RECALIBRATION") == (list("642"), 3, 50, 0)
    assert ids("component=orchestrator&type=SLO_ADJUSTMENT") == (list("31"), 2, 50, 0)
    assert ids("component=consensus-engine&status=APPLIED&limit=1") == (list("6"), 1, 1, 0)
    assert ids("component=nobody") == ([], 0, 50, 0)

    r = get(api, f"{API}/statistics/summary")
    assert r.status_code == 200, r.text
    st = r.json()
    assert {"total", "by_status", "by_type", "success_rate", "average_improvement", "rollbacks", "q_table_size",
            "epsilon"} <= set(st)
    assert st["total"] == 6
    assert st["by_status"] == {"PROPOSED": 0, "AWAITING_APPROVAL": 1, "EXPERIMENTING": 1, "APPROVED": 0,
                               "APPLIED": 2, "REJECTED": 1, "ROLLED_BACK": 1, "FAILED": 0, "EXPIRED": 0}
    assert st["by_type"] == {"SLO_ADJUSTMENT": 2, "WEIGHT_RECALIBRATION": 3, "HEURISTIC_UPDATE": 1}
    assert st["rollbacks"] == 1
    # Results: 1, 4, 5, 6; succeeded: the APPLIED and ROLLED_BACK ones.
    assert st["success_rate"] == pytest.approx(3 / 4)
    assert st["average_improvement"] == pytest.approx((0.2 * 3 - 0.1) / 4)
    # The seeded hypotheses were written straight into MongoDB: the policy made no
    # decision, so its table is empty and epsilon is still EXPLORATION_RATE (0 here).
    assert st["q_table_size"] == 0
    assert st["epsilon"] == 0.0


# ---- changes ---------------------------------------------------------------------


def test_rollback_only_of_an_applied_optimization(api, mongo):
    seed(mongo, api, [hypothesis(1, "APPLIED", "SLO_ADJUSTMENT", "orchestrator")] +
         [hypothesis(10 + i, s) for i, s in enumerate(STATUSES) if s != "APPLIED"])
    for i, s in enumerate(STATUSES):
        if s != "APPLIED":
            assert_error(post(api, f"{API}/opt-{10 + i:016x}/rollback"), 409, None)

    r = post(api, f"{API}/opt-{1:016x}/rollback", {"reason": "p95 got worse"})
    assert r.status_code == 202, r.text
    assert r.json() == {"optimization_id": f"opt-{1:016x}", "status": "rollback_requested"}

    msgs = read_committed(api.env["KAFKA_COMMANDS_TOPIC"], 1, timeout=30, settle=1.0)
    cmds = [(m.key(), hive_avro.decode("OptimizationCommand", m.value())) for m in msgs]
    rollbacks = [(k, c) for k, c in cmds if c["command"] == "ROLLBACK"]
    assert len(rollbacks) == 1, cmds
    key, cmd = rollbacks[0]
    assert key == b"orchestrator"
    assert cmd["command_id"] == f"cmd-rollback-opt-{1:016x}"
    assert cmd["optimization_id"] == f"opt-{1:016x}"
    assert cmd["optimization_type"] == "SLO_ADJUSTMENT"
    assert cmd["target"] == "orchestrator"
    assert cmd["reason"] == "p95 got worse"
    assert cmd["experiment_id"] == f"exp-{1:016x}"
    assert cmd["adjustments"] == {}
    assert abs(cmd["issued_at"] - time.time() * 1000) < 60_000
    # Nothing changes until the applier confirms.
    assert get(api, f"{API}/opt-{1:016x}").json()["status"] == "APPLIED"


def test_approve_and_reject_only_while_awaiting_approval(api, mongo):
    seed(mongo, api, [hypothesis(1, "AWAITING_APPROVAL"), hypothesis(2, "AWAITING_APPROVAL"),
                      hypothesis(3, "EXPERIMENTING"), hypothesis(4, "APPLIED")])
    for n in (3, 4):
        assert_error(post(api, f"{API}/opt-{n:016x}/approve"), 409, None)
        assert_error(post(api, f"{API}/opt-{n:016x}/reject"), 409, None)

    r = post(api, f"{API}/opt-{1:016x}/approve")
    assert r.status_code == 202, r.text
    assert r.json() == {"optimization_id": f"opt-{1:016x}", "decision": "APPROVED", "status": "decision_submitted"}
    r = post(api, f"{API}/opt-{2:016x}/reject", {"reason": "too risky this week"})
    assert r.status_code == 202, r.text
    assert r.json()["decision"] == "REJECTED"

    msgs = read_committed(api.env["KAFKA_APPROVALS_RESPONSES_TOPIC"], 2, timeout=30, settle=1.0)
    got = {m.key(): hive_avro.decode("ApprovalResponse", m.value()) for m in msgs}
    assert set(got) == {f"opt-{1:016x}".encode(), f"opt-{2:016x}".encode()}, got
    a, b = got[f"opt-{1:016x}".encode()], got[f"opt-{2:016x}".encode()]
    assert (a["decision"], a["approver"], a["reason"]) == ("APPROVED", "api", "")
    assert (b["decision"], b["approver"], b["reason"]) == ("REJECTED", "api", "too risky this week")
    assert abs(a["responded_at"] - time.time() * 1000) < 60_000


# ---- trigger, end to end -----------------------------------------------------------


def poll(api, path, until, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = get(api, path)
        if until(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"GET {path}: condition not met within {timeout} s; last {last.status_code} {last.text}")


def test_trigger_publishes_an_insight_the_optimizer_turns_into_a_hypothesis(api):
    r = post(api, API + "/trigger", {"component": "orchestrator", "problem": "LATENCY", "current_value": 2400,
                                      "baseline_value": 300, "priority": "CRITICAL", "description": "p95 x8"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "accepted"
    assert body["insight_id"].startswith("api-") and len(body["insight_id"]) == 20
    assert body["optimization_id"].startswith("opt-") and len(body["optimization_id"]) == 20
    opt = body["optimization_id"]

    # The insight, as an independent consumer sees it.
    msgs = read_committed(api.env["KAFKA_INSIGHTS_TOPIC"], 1, timeout=30, settle=0.5)
    insights = [(m.key(), hive_avro.decode("Insight", m.value())) for m in msgs]
    mine = [(k, i) for k, i in insights if i["insight_id"] == body["insight_id"]]
    assert len(mine) == 1, insights
    key, ins = mine[0]
    assert key == b"orchestrator"
    assert (ins["source"], ins["type"], ins["priority"]) == ("api", "DEGRADATION", "CRITICAL")
    assert (ins["component"], ins["metric"]) == ("orchestrator", "latency_p95_ms")
    assert (ins["current_value"], ins["baseline_value"]) == (2400.0, 300.0)
    assert ins["description"] == "p95 x8" and ins["labels"] == {"problem": "LATENCY"}

    # The optimizer proposes the hypothesis under the announced id.
    r = poll(api, f"{API}/{opt}", lambda r: r.status_code == 200)
    h = r.json()
    assert h["insight_id"] == body["insight_id"]
    assert h["component"] == "orchestrator" and h["problem"] == "LATENCY"
    assert h["status"] in ("EXPERIMENTING", "AWAITING_APPROVAL"), h
    assert h["rationale"]

    # It is listed, counted, and cannot be rolled back before it is applied.
    listed = get(api, f"{API}?component=orchestrator").json()
    assert opt in [i["optimization_id"] for i in listed["items"]]
    assert get(api, f"{API}/statistics/summary").json()["total"] >= 1
    assert_error(post(api, f"{API}/{opt}/rollback"), 409, None)

    # An operator's approval moves a waiting one on; otherwise it is a conflict.
    if h["status"] == "AWAITING_APPROVAL":
        assert post(api, f"{API}/{opt}/approve", {"reason": "go"}).status_code == 202
        poll(api, f"{API}/{opt}", lambda r: r.json()["status"] == "EXPERIMENTING")
    else:
        assert_error(post(api, f"{API}/{opt}/approve"), 409, None)

    # A defaulted metric and priority.
    r = post(api, API + "/trigger", {"component": "consensus-engine", "problem": "CONSENSUS_ACCURACY",
                                      "current_value": 0.7, "baseline_value": 0.9})
    assert r.status_code == 202, r.text
    iid = r.json()["insight_id"]
    msgs = read_committed(api.env["KAFKA_INSIGHTS_TOPIC"], 2, timeout=30, settle=0.5)
    ins = [hive_avro.decode("Insight", m.value()) for m in msgs]
    ins = [i for i in ins if i["insight_id"] == iid]
    assert len(ins) == 1 and ins[0]["metric"] == "consensus_accuracy" and ins[0]["priority"] == "HIGH"


# ---- GET /api/v1/policy/evaluation ----------------------------------------------------------------------


def test_policy_evaluation_from_the_logged_decisions(mongo, api):
    """IPS, SNIPS and ESS of the current, uniform and greedy policies from the
    logged decisions with a result. All records share one state, so the uniform
    target's weights are c / propensity_i whatever c (1 / |applicable actions|)
    is: SNIPS and ESS follow from the log alone. The learner's tables are
    empty, so every action ties: greedy and the current policy are uniform too."""
    r = get(api, "/api/v1/policy/evaluation")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["policy"] == "qlearning" and body["records"] == 0
    assert set(body["estimates"]) == {"current", "uniform", "greedy"}
    assert all(e == {"ips": 0, "snips": 0, "effective_sample_size": 0, "max_weight": 0}
               for e in body["estimates"].values()), body

    log = [("slo_latency_relax_10", 0.5, 0.4), ("slo_latency_tighten_10", 0.25, -0.3),
           ("slo_latency_relax_20", 0.8, 0.9), ("slo_latency_relax_10", 0.1, 0.2)]
    docs = [hypothesis(100 + i, "APPLIED", action=a, propensity=p, reward=rw) for i, (a, p, rw) in enumerate(log)]
    # Not part of the log: no result yet, no recorded propensity, an unknown action.
    docs += [hypothesis(200, "EXPERIMENTING", action="slo_latency_relax_10", propensity=0.5, reward=5.0),
             hypothesis(201, "APPLIED", action="slo_latency_relax_10", propensity=0.0, reward=5.0),
             hypothesis(202, "APPLIED", action="no_such_action", propensity=0.5, reward=5.0)]
    seed(mongo, api, docs)

    r = get(api, "/api/v1/policy/evaluation")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["records"] == len(log), body
    inv = [1.0 / p for _, p, _ in log]
    snips = sum(w * rw for w, (_, _, rw) in zip(inv, log)) / sum(inv)
    ess = sum(inv) ** 2 / sum(w * w for w in inv)
    for name in ("uniform", "greedy", "current"):
        e = body["estimates"][name]
        assert e["snips"] == pytest.approx(snips, rel=1e-9), (name, e)
        assert e["effective_sample_size"] == pytest.approx(ess, rel=1e-9), (name, e)
        # IPS = c * sum(r/p) / n and max_weight = c * max(1/p), with the same c.
        c = e["max_weight"] / max(inv)
        assert 0 < c <= 1
        assert e["ips"] == pytest.approx(c * sum(w * rw for w, (_, _, rw) in zip(inv, log)) / len(log), rel=1e-9)
    assert body["estimates"]["greedy"] == body["estimates"]["uniform"]
