"""The slo-adjuster against the real stack: SLO_ADJUSTMENT commands from an
independent producer (confluent-kafka + fastavro), ServiceSLO records and
OptimizationEvents read back with read_committed consumers, revisions with
pymongo. Bounded: each test waits at most ~90 s."""
import subprocess
import tempfile
import time

import pymongo
import pytest
import requests

import applier_fixture as af
import hive_avro
from applier_fixture import assert_event_hash, events, new_values, old_values, send
from conftest import MONGODB_URI, producer, read_committed

INITIAL = {"latency_ms": 1000.0, "availability": 0.99, "error_rate": 0.01}

slo = af.applier_fixture("slo-adjuster")


def command(target, optimization_id, adjustments=None, cmd="APPLY", **fields):
    return af.command(target, optimization_id, adjustments, cmd, kind="slo-adjuster", **fields)


def slo_records(s, expected, timeout=60, settle=2.0):
    return af.state_records(s.slos, "ServiceSLO", expected, timeout=timeout, settle=settle)


def db(s):
    return pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)[s.db]


def revisions(s, service):
    return sorted(db(s)["slos"].find({"key": service}, {"_id": 0, "revision": 1, "values": 1}),
                  key=lambda d: d["revision"])


def test_relative_latency_applied_once_across_sigkill(slo):
    svc = slo.start()
    service = "orchestrator-" + slo.tag
    # The optimizer's contract: latency_p95_ms -0.10 as a RELATIVE change.
    send(slo.commands, [(service, command(service, "opt-a", {"latency_p95_ms": -0.10}))])
    ev = events(slo, 1)
    assert [e["event_type"] for e in ev] == ["APPLIED"]
    e = ev[0]
    assert_event_hash(e)
    assert e["applied_by"] == "slo-adjuster" and e["revision"] == 2 and e["optimization_type"] == "SLO_ADJUSTMENT"
    assert old_values(e) == INITIAL
    assert new_values(e) == pytest.approx({"latency_ms": 900.0, "availability": 0.99, "error_rate": 0.01})
    assert e["causal_analysis"]["evidence"]["clamps"] == 0
    assert e["causal_analysis"]["evidence"]["error_budget_remaining"] == 1.0
    assert e["rollback_plan"]["revision"] == 1 and e["rollback_plan"]["values"] == INITIAL
    rec = slo_records(slo, 1)
    assert len(rec) == 1 and rec[0]["service"] == service and rec[0]["revision"] == 2
    assert rec[0]["latency_ms"] == pytest.approx(900.0) and rec[0]["availability"] == 0.99
    assert rec[0]["optimization_id"] == "opt-a" and rec[0]["updated_by"] == "slo-adjuster"

    # SIGKILL with commands in flight, restart: every command applied once.
    cmds = [(service, command(service, f"opt-k{i}", {"latency_ms": -0.01})) for i in range(12)]
    send(slo.commands, cmds[:6])
    time.sleep(0.5)
    svc.kill9()
    # The same command again (a producer retry) is not applied twice.
    send(slo.commands, [(service, command(service, "opt-a", {"latency_p95_ms": -0.10}))] + cmds[6:])
    svc.start()
    ev = events(slo, 13, settle=5.0)
    assert sorted(e["optimization_id"] for e in ev) == sorted(["opt-a"] + [f"opt-k{i}" for i in range(12)])
    assert all(e["event_type"] == "APPLIED" for e in ev)
    revs = revisions(slo, service)
    assert [d["revision"] for d in revs] == list(range(1, 15))
    # No lost update: each event starts from the revision before it; -1 % twelve times.
    by_rev = {d["revision"]: d["values"] for d in revs}
    for e in ev:
        assert old_values(e) == pytest.approx(by_rev[e["revision"] - 1])
        assert new_values(e) == pytest.approx(by_rev[e["revision"]])
        assert_event_hash(e)
    assert revs[-1]["values"]["latency_ms"] == pytest.approx(900.0 * 0.99 ** 12, rel=1e-12)
    cur = requests.get(svc.url(f"/api/v1/slos/{service}"), timeout=10).json()
    assert cur["revision"] == 14 and cur["values"] == pytest.approx(revs[-1]["values"])


def telemetry(service, requests_, errors, start_ms, end_ms):
    return hive_avro.encode("TelemetryAggregated", {
        "service": service, "window_start": start_ms, "window_end": end_ms, "request_count": requests_,
        "error_count": errors, "error_rate": errors / requests_, "latency_p50_ms": 100.0,
        "latency_p95_ms": 200.0, "latency_p99_ms": 300.0, "slo_compliance": 0.99, "availability": 0.999,
        "variant": None, "experiment_id": None, "metrics": {}})


def test_clamps_refusals_budget_and_rollback(slo):
    svc = slo.start()
    service = "gateway-" + slo.tag
    # An error rate beyond the bounds is clamped to 0.10 and the clamp recorded.
    send(slo.commands, [(service, command(service, "opt-1", {"availability": 0.999, "error_rate": 0.5},
                                          mode="ABSOLUTE"))])
    ev = events(slo, 1)
    assert ev[0]["event_type"] == "APPLIED", ev
    assert new_values(ev[0]) == pytest.approx({"latency_ms": 1000.0, "availability": 0.999, "error_rate": 0.10})
    evidence = ev[0]["causal_analysis"]["evidence"]
    assert evidence["clamps"] == 1 and evidence["clamped_error_rate_from"] == 0.5
    before = revisions(slo, service)
    assert [d["revision"] for d in before] == [1, 2]

    bad = [
        (service, command(service, "opt-avail", {"availability": 1.5}, mode="ABSOLUTE", command_id="c-bad-1")),
        (service, command(service, "opt-neg", {"latency_ms": -1.2}, command_id="c-bad-2")),
        (service, command(service, "opt-name", {"throughput": 0.1}, command_id="c-bad-3")),
        (service, command(service, "opt-clamped", {"error_rate": 0.9}, mode="ABSOLUTE", command_id="c-bad-4")),
        (service, command(service, "opt-empty", {}, command_id="c-bad-5")),
    ]
    send(slo.commands, bad)
    ev = events(slo, 6)
    rej = {e["optimization_id"]: e for e in ev if e["event_type"] == "REJECTED"}
    assert set(rej) == {"opt-avail", "opt-neg", "opt-name", "opt-clamped", "opt-empty"}
    assert "unsafe availability" in rej["opt-avail"]["reason"]
    assert "unsafe latency_ms" in rej["opt-neg"]["reason"]
    assert "throughput" in rej["opt-name"]["reason"]
    assert "nothing to apply" in rej["opt-clamped"]["reason"]
    assert "no adjustments" in rej["opt-empty"]["reason"]
    for e in rej.values():
        assert_event_hash(e)
    assert revisions(slo, service) == before  # no state change
    assert len(slo_records(slo, 1)) == 1

    # The error budget at 15 %: 100000 requests at 99.9 % allow 100 errors; 85 were spent.
    now = int(time.time() * 1000)
    send(slo.telemetry, [(service, telemetry(service, 100000, 85, now - 120000, now - 60000))])
    deadline = time.time() + 30
    while db(slo)["observations"].count_documents({"service": service}) == 0 and time.time() < deadline:
        time.sleep(0.2)
    send(slo.commands, [(service, command(service, "opt-budget", {"latency_ms": -0.05}))])
    ev = events(slo, 7)
    b = [e for e in ev if e["optimization_id"] == "opt-budget"]
    assert len(b) == 1 and b[0]["event_type"] == "REJECTED"
    assert "error budget too low: 15.0% remaining" in b[0]["reason"], b[0]["reason"]
    assert "85 errors of 100000 requests" in b[0]["reason"]
    assert revisions(slo, service) == before

    # ROLLBACK restores the exact values of revision 1 as revision 3, over REST.
    r = requests.post(svc.url(f"/api/v1/slos/{service}/rollback"), json={"optimization_id": "opt-1"}, timeout=10)
    assert r.status_code == 202, r.text
    ev = events(slo, 8)
    rb = [e for e in ev if e["event_type"] == "ROLLED_BACK"]
    assert len(rb) == 1 and rb[0]["revision"] == 3
    assert_event_hash(rb[0])
    revs = revisions(slo, service)
    assert revs[-1]["revision"] == 3 and revs[-1]["values"] == revs[0]["values"] == INITIAL
    rec = slo_records(slo, 2)
    assert rec[-1]["revision"] == 3 and rec[-1]["latency_ms"] == 1000.0
    assert (rec[-1]["availability"], rec[-1]["error_rate"]) == (0.99, 0.01)
    hist = requests.get(svc.url(f"/api/v1/slos/{service}/history?limit=10"), timeout=10).json()
    assert [h["revision"] for h in hist["revisions"]] == [3, 2, 1]
    metrics = requests.get(svc.url("/metrics"), timeout=10).text
    assert 'slo_clamps_total{parameter="error_rate"} 1' in metrics
    assert 'rollbacks_total{type="SLO_ADJUSTMENT"} 1' in metrics
    assert 'optimization_refusals_total{type="SLO_ADJUSTMENT",reason="error_budget"} 1' in metrics
    assert f'error_budget_remaining{{service="{service}"}} 0.15' in metrics

    # The burn-rate rules of the current SLO (availability 0.99) pass promtool.
    r = requests.get(svc.url(f"/api/v1/slos/{service}/rules"), timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/yaml")
    assert f'ratio_rate1h{{slo_service="{service}"}} > 0.144 and' in r.text
    assert f'ratio_rate3d{{slo_service="{service}"}} > 0.01 and' in r.text
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        f.write(r.text)
        f.flush()
        check = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 11 rules found" in check.stdout, check.stdout


def test_heuristics_and_policies_on_orchestrator_policies(slo):
    svc = slo.start()
    policy = "scheduler-" + slo.tag
    send(slo.commands, [
        (policy, command(policy, "opt-p1", {"queue_weight": 10.0, "max_retries": 3.0}, mode="ABSOLUTE",
                         optimization_type="POLICY_CHANGE")),
        # +100 % on queue_weight is limited to +30 % and the limit recorded.
        (policy, command(policy, "opt-h1", {"queue_weight": 1.0}, optimization_type="HEURISTIC_UPDATE")),
        # A tunable the policy does not have cannot be changed relatively.
        (policy, command(policy, "opt-h2", {"timeout_s": 0.1}, optimization_type="HEURISTIC_UPDATE")),
    ])
    ev = events(slo, 3)
    by = {e["optimization_id"]: e for e in ev}
    assert by["opt-p1"]["event_type"] == "APPLIED" and by["opt-p1"]["revision"] == 2
    assert new_values(by["opt-p1"]) == {"queue_weight": 10.0, "max_retries": 3.0}
    assert by["opt-h1"]["event_type"] == "APPLIED" and by["opt-h1"]["optimization_type"] == "HEURISTIC_UPDATE"
    assert new_values(by["opt-h1"]) == pytest.approx({"queue_weight": 13.0, "max_retries": 3.0})
    assert by["opt-h1"]["causal_analysis"]["evidence"]["limited_queue_weight_from"] == 20.0
    assert by["opt-h2"]["event_type"] == "REJECTED" and "ABSOLUTE" in by["opt-h2"]["reason"]
    for e in ev:
        assert_event_hash(e)
    recs = [hive_avro.decode("OrchestratorPolicy", m.value())
            for m in read_committed(slo.policies, 2, timeout=60, settle=2.0)]
    assert [r["revision"] for r in recs] == [2, 3] and recs[-1]["policy"] == policy
    assert recs[-1]["values"] == pytest.approx({"queue_weight": 13.0, "max_retries": 3.0})
    # No SLO was touched.
    assert db(slo)["slos"].count_documents({}) == 0
    # Rolling the heuristic back restores revision 2 exactly, as revision 4.
    send(slo.commands, [(policy, command(policy, "opt-h1", cmd="ROLLBACK", optimization_type="HEURISTIC_UPDATE"))])
    ev = events(slo, 4)
    rb = [e for e in ev if e["event_type"] == "ROLLED_BACK"]
    assert len(rb) == 1 and rb[0]["revision"] == 4
    cur = requests.get(svc.url(f"/api/v1/policies/{policy}"), timeout=10).json()
    assert cur["revision"] == 4 and cur["values"] == {"queue_weight": 10.0, "max_retries": 3.0}


def test_two_replicas_racing_on_one_service_lose_no_update(slo):
    for _ in range(2):
        slo.replica(LOCK_TTL_MS=5000)
    for svc in slo.replicas:
        svc.start()
    service = "race-" + slo.tag
    n = 30
    # One service, its commands spread over the three partitions: both replicas race on it.
    p = producer()
    for i in range(n):
        p.produce(slo.commands, key=service.encode(), partition=i % 3,
                  value=command(service, f"opt-r{i}", {"latency_ms": -0.01}))
    assert p.flush(30) == 0
    ev = events(slo, n, settle=4.0)
    assert len(ev) == n and all(e["event_type"] == "APPLIED" for e in ev)
    assert sorted(e["revision"] for e in ev) == list(range(2, n + 2))
    revs = revisions(slo, service)
    assert [d["revision"] for d in revs] == list(range(1, n + 2))
    # Every -1 % landed on the revision before it: none was computed from a stale one.
    assert revs[-1]["values"]["latency_ms"] == pytest.approx(1000.0 * 0.99 ** n, rel=1e-12)


def test_impact_watch_rolls_a_degrading_slo_change_back_once(slo):
    slo.start(IMPACT_WATCH_WINDOW_SECONDS=600, IMPACT_WATCH_THRESHOLD=0.2)
    service = "watch-" + slo.tag
    now = int(time.time() * 1000)
    # 0.1 % errors against 1 % allowed: 90 % of the budget left, the baseline error rate 0.001.
    send(slo.telemetry, [(service, telemetry(service, 100000, 100, now - 120000, now - 60000))])
    deadline = time.time() + 30
    while db(slo)["observations"].count_documents({"service": service}) == 0 and time.time() < deadline:
        time.sleep(0.2)
    send(slo.commands, [(service, command(service, "opt-w", {"latency_ms": -0.1}))])
    ev = events(slo, 1)
    assert ev[0]["event_type"] == "APPLIED", ev
    after = int(time.time() * 1000) + 1000
    # The error rate after the change: 0.001 -> 0.005, worse by far more than 20 %.
    send(slo.telemetry, [(service, telemetry(service, 1000, 5, after, after + 1000))])
    ev = events(slo, 2, timeout=60, settle=12.0)  # two watch ticks after the rollback
    rb = [e for e in ev if e["event_type"] == "ROLLED_BACK"]
    assert len(rb) == 1, ev
    assert "impact watch" in rb[0]["reason"] and "error_rate" in rb[0]["reason"]
    revs = revisions(slo, service)
    assert revs[-1]["values"] == revs[0]["values"] == INITIAL
