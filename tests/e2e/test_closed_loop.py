"""The closed loop end to end: the six services (the retrainer when it runs), the Hive
simulator around them, and every figure of the demo's summary table checked against the
simulator's ground truth (tests/sim/world.py). Runs on the shared stack with its own
run-tagged topics, groups and databases; about 2.5 minutes with start and checks.

Environment: HIVE_E2E_BIN_DIR (default build/, the plain build), HIVE_E2E_LOOP_SECONDS (120).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "sim"))
import demo_loop  # noqa: E402
import world  # noqa: E402

BIN_DIR = os.environ.get("HIVE_E2E_BIN_DIR", os.path.join(ROOT, "build"))
SECONDS = float(os.environ.get("HIVE_E2E_LOOP_SECONDS", "120"))


@pytest.fixture(scope="module")
def run():
    for s in ("optimizer", "experiment-manager", "weight-recalibrator", "slo-adjuster", "model-monitor"):
        if not os.path.exists(os.path.join(BIN_DIR, s, s)):
            pytest.fail(f"{BIN_DIR}/{s}/{s} is missing: build first (scripts/build.sh plain)")
    o = argparse.Namespace(duration=SECONDS, regression_at=15, drift_at=45, seed=13, tag="", bin_dir=BIN_DIR,
                           bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                           mongodb_uri=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017"),
                           redis_host="127.0.0.1", redis_port=6379,
                           mlflow=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
                           plot="", json="", quiet=True, chaos=None)
    loop = demo_loop.Loop(o)
    try:
        s = loop.run()
        with open(os.path.join(loop.dir, "ground_truth.json"), encoding="utf-8") as f:
            gt = json.load(f)
    finally:
        codes = loop.stop()
    s["exit_codes"] = codes
    demo_loop.print_summary(s, o)
    return s, gt, loop


def test_the_injected_regression_is_detected(run):
    s, gt, _ = run
    assert len(gt["regressions_injected"]) == 1
    assert s["regressions_injected"] == 1
    assert s["regressions_detected"] == 1, "no insight about api-gateway after the regression"
    assert s["detection_delay_s"] is not None and s["detection_delay_s"] >= 0


def test_the_regression_is_fixed_by_a_change_the_truth_calls_a_fix(run):
    s, gt, _ = run
    assert s["regressions_fixed"] == 1, f"api-gateway's true error rate at the end: {s['regressed_error_final']}"
    assert s["fix_applied_by"], "the fix was not applied through an accepted experiment"
    for eid in s["fix_applied_by"]:
        e = gt["experiments"][eid]
        assert world.classify_change(e["parameters"]) == "fix"
        assert e["result"]["decision"] == "ACCEPT"
    # The truth, recomputed from the tunables the slo-adjuster published.
    assert world.service_error_rate(True, gt["tunables_final"]["api-gateway"]) == pytest.approx(
        s["regressed_error_final"])
    assert s["regressed_error_final"] < 0.01


def test_every_harmful_change_is_caught(run):
    s, gt, _ = run
    harmful = [eid for eid, e in gt["experiments"].items() if e["kind"] == "harm"]
    assert s["harmful_changes"] + s["harmful_running"] == len(harmful)
    assert s["harmful_caught"] == s["harmful_changes"]
    # None of them reached the services: the published tunables hold no harmful direction.
    for svc, tun in gt["tunables_final"].items():
        harmed = world.service_error_rate(False, tun)
        assert harmed == pytest.approx(world.BASE_ERROR), f"{svc} runs a harmful tunable: {tun}"


def test_the_weights_move_toward_the_hidden_best(run):
    s, gt, _ = run
    assert s["weights_revisions_consecutive"]
    # Regret figures match a recomputation from the published weights.
    w0 = world.weights_vector(gt["weights_initial"])
    w1 = world.weights_vector(gt["weights_final"])
    e0, e1 = world.decision_error(w0, n=60_000), world.decision_error(w1, n=60_000)
    assert s["engine_error_initial"] == pytest.approx(e0, abs=1e-9)
    assert s["engine_error_final"] == pytest.approx(e1, abs=1e-9)
    assert s["weight_regret_final"] == pytest.approx(e1 - gt["best_feasible_error"], abs=1e-9)
    assert gt["best_feasible_error"] < e0
    assert s["weights_revisions"] >= 1, "no weights applied in the run"
    assert s["weight_regret_final"] < s["weight_regret_initial"]
    # The best feasible weights are feasible.
    b = np.array(list(gt["best_feasible_weights"].values()))
    assert abs(b.sum() - 1) < 1e-9 and b.min() >= 0.1 - 1e-9 and b.max() <= 0.4 + 1e-9


def test_no_constraint_is_violated(run):
    s, gt, _ = run
    assert s["constraint_violations"] == 0, gt["constraint_violations"]
    for h in gt["weights_history"]:
        v = np.array([h["weights"][k] for k in world.SPECIALISTS])
        assert abs(v.sum() - 1) < 1e-6 and v.min() >= 0.1 - 1e-9 and v.max() <= 0.4 + 1e-9


def test_experiments_have_exactly_one_result(run):
    s, gt, _ = run
    assert s["results_duplicated"] == 0
    assert s["experiment_results"] >= 2
    # Every experiment that started more than one duration (60 s) plus a look before the end has a result.
    for eid, e in gt["experiments"].items():
        if e["first_seen_s"] < gt["elapsed_s"] - 70:
            assert e["result"] is not None, f"{eid} has no result after {gt['elapsed_s'] - e['first_seen_s']:.0f} s"


def test_drift_is_detected_on_the_injected_features(run):
    s, gt, _ = run
    assert gt["drift_injected"] is not None
    assert s["drift_detected"], "no DRIFT degradation on models.degraded"
    feats = set(s["drift_detected"][0]["features"])
    assert set(gt["drift_injected"]["features"]) <= feats
    assert s["drift_false_alarms"] == []


def test_the_retrainer_step_is_reported(run):
    s, _, loop = run
    if s["retrainer"] == "running":
        assert any(ev in ("RETRAIN_STARTED", "REGISTERED") for _, ev in s["lifecycle"])
    else:
        b = os.path.join(BIN_DIR, "retrainer", "retrainer")
        ok = os.path.exists(b) and subprocess.run([b, "--help"], capture_output=True).returncode == 0
        assert not ok or not loop.retrainer


def test_services_end_ready_and_drain(run):
    s, _, _ = run
    assert all(s["ready_at_end"].values()), s["ready_at_end"]
    assert all(c == 0 for c in s["exit_codes"].values()), s["exit_codes"]
