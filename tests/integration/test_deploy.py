"""deploy/: the image, the Helm chart, the Prometheus rules and the Grafana dashboards.

Offline: hadolint on deploy/Dockerfile, its build packages against ./hive setup's, its
runtime file set run in a chroot; `helm lint` and `helm template` with the default and
with all-features values, every rendered object validated against the Kubernetes schemas
(kubernetes-validate); `promtool check rules` and `promtool test rules` (a unit test per
alert); every dashboard expression parsed by promtool.

Live: the six services (those that start) on the stack, a private Prometheus (free port)
scraping them and a private Pushgateway, loaded with deploy/prometheus: every rule
evaluates without error, every dashboard and rule expression is accepted by the real
Prometheus API, and every metric name they use is exported by a service (or listed below,
with who is to export it). Bounded: about a minute.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import requests
import yaml

from conftest import BOOTSTRAP, MONGODB_URI, ROOT, Service, create_topics, free_port

DEPLOY = os.path.join(ROOT, "deploy")
CHART = os.path.join(DEPLOY, "helm", "optimizer-agents")
RULES = sorted(glob.glob(os.path.join(DEPLOY, "prometheus", "*.yaml")))
RULE_TESTS = sorted(glob.glob(os.path.join(DEPLOY, "prometheus", "tests", "*.yaml")))
DASHBOARDS = sorted(glob.glob(os.path.join(DEPLOY, "grafana", "*.json")))
SERVICES = ["optimizer", "experiment-manager", "weight-recalibrator", "slo-adjuster", "model-monitor", "retrainer"]
HIVE_BIN = os.path.join(ROOT, ".hive", "bin")
VENV_BIN = os.path.join(os.environ.get("HIVE_VENV", os.path.join(ROOT, ".hive", "venv")), "bin")
KUBE_VERSION = "1.30.0"  # rendered for, and validated against
MLFLOW = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")

# Every alert the seeds name, with the seeds' names (000: the 10 it names of its 19; 002: its SLO
# alerts; 003: 3; 004: 11).
SEED_ALERTS = {
    "000": ["OptimizerAgentsDown", "HighOptimizationFailureRate", "ExperimentStuckInProgress", "QLearningNotUpdating",
            "LowOptimizationSuccessRate", "HighExperimentFailureRate", "ExcessiveRollbacks", "LowImprovementRate",
            "HighEpsilonValue", "KafkaConsumerLagHigh"],
    "002": ["MLF1ScoreSLOBreach", "MLErrorBudgetFastBurn", "MLUptimeCritical", "MLLatencySLOBreach", "MLFeedbackRateLow",
            "MLErrorBudgetSlowBurn"],
    "003": ["SpecialistRetrainingJobFailed", "SpecialistRetrainingJobTookTooLong", "SpecialistModelNotPromoted"],
    "004": ["AutoRetrainFailed", "DatasetGenerationFailed", "MongoDBCircuitBreakerOpen", "MLflowConnectionFailed",
            "ModelPerformanceDegraded", "ModelPrecisionBelowThreshold", "ModelRecallBelowThreshold", "ModelF1BelowThreshold",
            "FeedbackAverageBelowThreshold", "AutoRetrainDurationHigh", "ModelNotRetrainedRecently"],
}
SLO_RECORDS = ["neural_hive:slo:ml_f1_score:7d", "neural_hive:slo:ml_latency_p95_total:5m",
               "neural_hive:slo:ml_feedback_rate:7d", "neural_hive:slo:ml_availability:30d"]

# Metric names the rules and dashboards use that no service exports yet, and who is to
# export them. A name used but neither exported nor listed here fails the live test (a typo,
# or a metric renamed in a service).
NOT_EXPORTED_YET = {
    "neural_hive_auto_retrain_failed_total": "retrainer",
    "neural_hive_model_last_retrain_timestamp_seconds": "retrainer",
    "neural_hive_model_in_production": "retrainer (seed 003: production versions of {specialist}-evaluator)",
}
# Series that exist only on a Kubernetes cluster.
CLUSTER_ONLY = {"kube_job_status_failed": "kube-state-metrics", "kube_job_status_start_time": "kube-state-metrics",
                "kube_job_status_active": "kube-state-metrics", "container_cpu_usage_seconds_total": "cAdvisor",
                "container_memory_working_set_bytes": "cAdvisor"}


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def tool(name):
    for d in (HIVE_BIN, VENV_BIN):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    p = shutil.which(name)
    if not p:
        pytest.fail(f"{name} is not installed (./hive setup installs it)")
    return p


def load_rules():
    """[(file, rule)] over every rule of deploy/prometheus."""
    out = []
    for f in RULES:
        for g in yaml.safe_load(open(f))["groups"]:
            out += [(f, r) for r in g["rules"]]
    return out


def dashboard_exprs():
    """[(dashboard uid, panel title, expr)] with Grafana's variables replaced by values."""
    out = []
    for f in DASHBOARDS:
        d = json.load(open(f))
        for p in d["panels"]:
            for t in p.get("targets", []):
                e = t["expr"].replace("$__rate_interval", "1m").replace("$namespace", "neural-hive-mind")
                out.append((d["uid"], p["title"], e))
    return out


# ------------------------------------------------------------------ the image

def dockerfile_build_packages():
    text = open(os.path.join(DEPLOY, "Dockerfile")).read().replace("\\\n", " ")
    build = text.split(" AS runtime")[0]
    m = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", build)
    assert m, "no apt-get install in the build stage"
    return m.group(1).split()


def hive_apt_packages():
    m = re.search(r"APT_PACKAGES=\(([^)]*)\)", open(os.path.join(ROOT, "hive")).read())
    return m.group(1).split()


def test_dockerfile_is_hadolint_clean():
    r = run([tool("hadolint"), os.path.join(DEPLOY, "Dockerfile")])
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_builds_with_hive_setup_packages():
    pkgs = dockerfile_build_packages()
    assert "build-essential" in pkgs and "libmongoc-dev" in pkgs
    extra = sorted(set(pkgs) - set(hive_apt_packages()))
    assert not extra, f"the image's build stage installs packages ./hive setup does not: {extra}"
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    runtime = text.split(" AS runtime")[1]
    assert re.search(r"^USER 10001", runtime, re.M), "the runtime stage must not run as root"
    assert "HEALTHCHECK" in runtime and "/health" in runtime
    for s in SERVICES:
        assert f"/build/{s}/{s}" in text, f"{s} is not in the image"


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_image_runtime_files_are_enough(tmp_path):
    """deploy/runtime-files.sh (what the image's runtime stage copies) plus glibc, and
    nothing else: every binary starts (--version) in a chroot of it."""
    bins = [os.path.join(ROOT, "build", s, s) for s in SERVICES]
    missing = [b for b in bins if not os.path.exists(b)]
    if missing:
        pytest.skip(f"plain build missing: {missing}")
    root = tmp_path / "root"
    r = run(["sh", os.path.join(DEPLOY, "runtime-files.sh"), str(root), shutil.which("curl")] + bins)
    assert r.returncode == 0, r.stderr
    # the base image's part: glibc and the loader, in a merged-/usr layout
    (root / "usr" / "lib64").mkdir(parents=True, exist_ok=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("usr/lib64", root / "lib64")
    ldd = run(["ldd"] + bins + [shutil.which("curl")]).stdout
    glibc = set(re.findall(r"(/\S*/(?:libc|libm|libpthread|libdl|librt|ld-linux[^/\s]*)\.so[^\s]*)", ldd))
    for lib in glibc:
        dst = root / ("usr" + lib if not lib.startswith("/usr/") else lib[1:])
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(lib), dst)
    copied = glob.glob(str(root / "usr" / "lib" / "**" / "*.so*"), recursive=True)
    assert len(copied) > len(glibc)
    for s in SERVICES:
        r = run(["chroot", str(root), f"/usr/local/bin/{s}", "--version"])
        assert r.returncode == 0, f"{s} in the runtime file set: {r.stderr}"
    r = run(["chroot", str(root), "/usr/bin/curl", "--version"])
    assert r.returncode == 0, r.stderr
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs
               if not os.path.islink(os.path.join(d, f)))
    print(f"\nimage runtime files: {len(copied) - len(glibc)} shared libraries, {size / 2**20:.1f} MiB with glibc")


# ------------------------------------------------------------------ the chart

ALL_FEATURES = {
    "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
    "grafanaDashboards": {"enabled": True}, "trainingJob": {"enabled": True},
    "cronJobs": {"modelMonitor": {"pushgatewayUrl": "http://prometheus-pushgateway:9091"}},
    "imagePullSecrets": [{"name": "registry"}],
}


def helm(*args, values=None):
    cmd = [tool("helm")] + list(args)
    if values is not None:
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        yaml.safe_dump(values, f)
        f.close()
        cmd += ["-f", f.name]
    r = run(cmd, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def render(values=None):
    out = helm("template", "hive", CHART, "--namespace", "neural-hive-mind", "--kube-version", KUBE_VERSION, values=values)
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def validate_objects(docs):
    import kubernetes_validate
    crds = {"ServiceMonitor", "PrometheusRule"}
    for d in docs:
        if d["kind"] in crds:
            assert d["apiVersion"] == "monitoring.coreos.com/v1" and d["spec"], d["metadata"]["name"]
            continue
        try:
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{d['kind']}/{d['metadata']['name']}: {e}")


def test_chart_lints():
    helm("lint", CHART, "--strict")
    helm("lint", CHART, "--strict", values=ALL_FEATURES)


def test_chart_default_values_render_valid_objects():
    docs = render()
    validate_objects(docs)
    sts, hpa, pdb = by_kind(docs, "StatefulSet"), by_kind(docs, "HorizontalPodAutoscaler"), by_kind(docs, "PodDisruptionBudget")
    assert sorted(sts) == sorted(f"hive-optimizer-agents-{s}" for s in SERVICES)
    for name, s in sts.items():
        c = s["spec"]["template"]["spec"]["containers"][0]
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        env = {e["name"]: e for e in c["env"]}
        assert env["KAFKA_TRANSACTIONAL_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
        assert {p["containerPort"] for p in c["ports"]} == {8000, 50051}
        assert s["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        h = hpa[name]["spec"]
        assert (h["minReplicas"], h["maxReplicas"]) == (2, 10)
        assert h["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
        assert h["scaleTargetRef"]["kind"] == "StatefulSet"
        assert name in pdb
    svc = by_kind(docs, "Service")["hive-optimizer-agents-optimizer"]
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8000, "grpc": 50051, "metrics": 9090}
    cm = by_kind(docs, "ConfigMap")["hive-optimizer-agents"]["data"]
    assert cm["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and cm["HTTP_HOST"] == "0.0.0.0"
    secret = by_kind(docs, "Secret")["hive-optimizer-agents"]["stringData"]
    assert {"MONGODB_URI", "SLACK_WEBHOOK_URL", "SMTP_PASSWORD"} <= set(secret)
    cron = by_kind(docs, "CronJob")
    mm = cron["hive-optimizer-agents-model-performance-monitor"]["spec"]
    assert mm["schedule"] == "0 */6 * * *"
    c = mm["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["/usr/local/bin/model-monitor"] and c["args"][:3] == ["check", "--specialist-type", "all"]
    rt = cron["hive-optimizer-agents-specialist-models-retraining"]["spec"]
    assert rt["schedule"] == "0 2 * * 0" and rt["concurrencyPolicy"] == "Forbid"
    sa = mm["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert sa in by_kind(docs, "ServiceAccount")
    role = by_kind(docs, "Role")[sa]
    assert {"get", "list"} == set(role["rules"][0]["verbs"]) and by_kind(docs, "RoleBinding")[sa]
    print(f"\ndefault values: {len(docs)} objects, all valid")


def test_chart_all_features_render_valid_objects():
    docs = render(ALL_FEATURES)
    validate_objects(docs)
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PrometheusRule", "Job"} <= kinds
    assert len(by_kind(docs, "ServiceMonitor")) == len(SERVICES)
    rule = next(iter(by_kind(docs, "PrometheusRule").values()))
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {a for names in SEED_ALERTS.values() for a in names} <= alerts
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]]
    assert len(dashboards) == len(DASHBOARDS)
    for d in dashboards:
        for body in d["data"].values():
            json.loads(body)
    mm = by_kind(docs, "CronJob")["hive-optimizer-agents-model-performance-monitor"]
    env = {e["name"]: e.get("value") for e in mm["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PUSHGATEWAY_URL"] == "http://prometheus-pushgateway:9091"
    print(f"\nall features: {len(docs)} objects, all valid")


def test_chart_services_can_be_turned_off():
    docs = render({"services": {"retrainer": {"enabled": False}, "slo-adjuster": {"enabled": False}},
                   "autoscaling": {"enabled": False}})
    validate_objects(docs)
    names = " ".join(d["metadata"]["name"] for d in docs)
    assert "retrainer" not in names and "slo-adjuster" not in names and "retraining" not in names
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    assert all(s["spec"]["replicas"] == 2 for s in by_kind(docs, "StatefulSet").values())


# ------------------------------------------------------------------ rules and dashboards, offline

def test_promtool_check_and_test_rules():
    r = run(["promtool", "check", "rules"] + RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    # the local stack's Prometheus loads every rule file of deploy/prometheus
    r = run(["promtool", "check", "config", os.path.join(ROOT, "stack", "prometheus.yml")])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("rules found") == len(RULES) and "pushgateway" in open(os.path.join(ROOT, "stack", "prometheus.yml")).read()
    r = run(["promtool", "test", "rules"] + RULE_TESTS, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_seed_alert_exists_and_has_a_unit_test_that_fires_it():
    rules = load_rules()
    alerts = {r["alert"]: r for _, r in rules if "alert" in r}
    records = {r["record"] for _, r in rules if "record" in r}
    for seed, names in SEED_ALERTS.items():
        missing = [n for n in names if n not in alerts]
        assert not missing, f"seed {seed}: alerts missing: {missing}"
    assert set(SLO_RECORDS) <= records
    # seed 000 counts 19 alerts for the optimizer agents
    assert len(yaml.safe_load(open(os.path.join(DEPLOY, "prometheus", "optimizer-alerts.yaml")))["groups"][0]["rules"]) + \
        len(yaml.safe_load(open(os.path.join(DEPLOY, "prometheus", "optimizer-alerts.yaml")))["groups"][1]["rules"]) == 19
    fired, silent = set(), set()
    for f in RULE_TESTS:
        for t in yaml.safe_load(open(f))["tests"]:
            for a in t.get("alert_rule_test", []):
                (fired if a.get("exp_alerts") else silent).add(a["alertname"])
    assert set(alerts) <= fired, f"alerts no unit test fires: {sorted(set(alerts) - fired)}"
    for name, r in alerts.items():
        assert r["labels"]["severity"] in ("critical", "warning", "info"), name
    print(f"\n{len(alerts)} alerts, {len(records)} recording rules; every alert fired by a unit test, "
          f"{len(silent)} also asserted silent at a time or on series that must not fire them")


def test_dashboards_are_the_seeds_and_every_expression_parses(tmp_path):
    uids = {}
    for f in DASHBOARDS:
        d = json.load(open(f))
        uids[d["uid"]] = d
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), f
        for p in d["panels"]:
            assert p["title"], f"{f}: a panel without title"
    assert {"optimizer-agents", "ml-slos-dashboard", "predictive-models", "drift-monitoring", "continuous-learning"} <= set(uids)
    assert uids["ml-slos-dashboard"]["title"] == "ML SLOs"  # /d/ml-slos-dashboard/ml-slos
    oa = uids["optimizer-agents"]["panels"]
    assert [p["title"] for p in oa if p["type"] == "row"] == ["Overview", "Reinforcement learning", "Experiments",
                                                              "Optimizations", "Performance", "Resources"]
    assert len([p for p in oa if p["type"] != "row"]) == 15
    cl = {p["id"]: p["title"] for p in uids["continuous-learning"]["panels"] if p["type"] != "row"}
    assert cl == {16: "Model Performance Score by Specialist", 17: "Model Degradation Alerts",
                  18: "MLflow Metrics - Precision/Recall/F1", 19: "Auto-Retrain Triggers", 20: "Dataset Generation Duration"}
    # promtool parses each expression as the expression of a recording rule
    exprs = dashboard_exprs()
    rules = {"groups": [{"name": "dashboards", "rules": [{"record": f"dashboard:expr{i}", "expr": e}
                                                         for i, (_, _, e) in enumerate(exprs)]}]}
    p = tmp_path / "dashboard-exprs.yaml"
    p.write_text(yaml.safe_dump(rules))
    r = run(["promtool", "check", "rules", str(p)])
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"\n{len(DASHBOARDS)} dashboards, {len(exprs)} panel expressions parsed")


# ------------------------------------------------------------------ live

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan", "atan2"}


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    return names


def base_name(n):
    for suffix in ("_bucket", "_count", "_sum"):
        if n.endswith(suffix):
            return n[: -len(suffix)]
    return n


def help_topics(binary):
    """{VAR: default} of the service's Kafka topic variables, from its --help."""
    out = run([binary, "--help"]).stdout
    return dict(re.findall(r"^\s+(KAFKA_\w+_TOPIC)\s.*\n\s+default (\S+?);", out, re.M))


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def live_stack(tmp_path):
    """The six services on free ports with their own topics, groups and databases, a private
    Pushgateway and a private Prometheus scraping them with deploy/prometheus loaded."""
    build = os.path.dirname(os.path.dirname(os.environ.get("OPTIMIZER_BIN", os.path.join(ROOT, "build", "optimizer", "optimizer"))))
    tag = uuid.uuid4().hex[:10]
    started, procs, notes = {}, [], {}
    topics = []
    envs = {}
    for s in SERVICES:
        binary = os.path.join(build, s, s)
        if not os.path.exists(binary):
            pytest.fail(f"{binary} is not built")
        env = {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "MONGODB_URI": MONGODB_URI, "MONGODB_DATABASE": f"deploy_{s.replace('-', '_')}_{tag}",
               "KAFKA_CONSUMER_GROUP": f"{s}-d{tag}", "KAFKA_TRANSACTIONAL_ID": f"{s}-d{tag}",
               "HTTP_PORT": str(free_port()), "GRPC_PORT": str(free_port()), "LOG_LEVEL": "warn",
               "MLFLOW_TRACKING_URI": MLFLOW, "FEEDBACK_MONGODB_URI": MONGODB_URI,
               "FEEDBACK_MONGODB_DATABASE": f"deploy_feedback_{tag}", "MLFLOW_NAME_SUFFIX": f"-d{tag}"}
        for var, default in help_topics(binary).items():
            env[var] = f"{default}.d{tag}"
            topics += [env[var], env[var] + ".dlq"]
        envs[s] = (binary, env)
    create_topics(sorted(set(topics)), partitions=1)
    for s, (binary, env) in envs.items():
        svc = Service(binary, env, f"deploy-{s}-{tag}")
        svc.start(wait_ready=False)
        started[s] = svc
    for s, svc in list(started.items()):
        try:
            svc.wait_ready(True, 60)
        except AssertionError as e:
            if svc.proc.poll() is not None:  # a service that refuses to start (retrainer, unwritten)
                notes[s] = f"exited with {svc.proc.returncode}"
                del started[s]
                continue
            raise
    pg_port, prom_port = free_port(), free_port()
    procs.append(subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pg_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": RULES,
           "scrape_configs": [{"job_name": s, "static_configs": [{"targets": [f"127.0.0.1:{svc.port}"]}]}
                              for s, svc in started.items()] +
           [{"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [f"127.0.0.1:{pg_port}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    procs.append(subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    prom = f"http://127.0.0.1:{prom_port}"
    try:
        yield {"prom": prom, "pushgateway": f"http://127.0.0.1:{pg_port}", "services": started, "notes": notes,
               "envs": envs, "tag": tag}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s, svc in started.items():
            svc.stop()
        import pymongo
        client = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)
        for s, (_, env) in envs.items():
            client.drop_database(env["MONGODB_DATABASE"])
        client.drop_database(f"deploy_feedback_{tag}")


def wait_for(fn, timeout, what):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s (last: {last})")


def query(prom, expr):
    r = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10)
    return r.status_code, r.json()


def test_rules_and_dashboards_evaluate_on_the_running_services(live_stack):
    prom, services = live_stack["prom"], live_stack["services"]
    assert {"optimizer", "experiment-manager", "weight-recalibrator", "slo-adjuster", "model-monitor"} <= set(services)

    def targets_up():
        try:
            t = requests.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        except (requests.RequestException, ValueError, KeyError):
            return None
        return len(t) == len(services) + 1 and all(x["health"] == "up" for x in t)

    wait_for(targets_up, 30, "every service scraped by the private Prometheus")

    def rules_evaluated():
        groups = requests.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = all(not r.get("lastEvaluation", "").startswith("0001") for r in rules)
        return rules if done and rules else None

    time.sleep(2)  # a few evaluation rounds after the first scrape
    rules = wait_for(rules_evaluated, 20, "every rule evaluated")
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, f"rules that fail on the live series: {bad}"
    assert len(rules) == len(load_rules())

    # every rule and panel expression is accepted by the real Prometheus
    exprs = [("rule", r.get("alert") or r.get("record"), r["expr"]) for _, r in load_rules()] + dashboard_exprs()
    for kind, name, e in exprs:
        code, body = query(prom, e)
        assert code == 200 and body["status"] == "success", f"{kind} {name}: {e}: {body}"

    # every metric name used is exported by a running service (or listed with who is to export it)
    exported = {"up"}
    for s, svc in services.items():
        text = requests.get(svc.url("/metrics"), timeout=5).text
        exported |= set(re.findall(r"^# TYPE (\S+)", text, re.M))
        exported |= {base_name(m) for m in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M)}
    records = {r["record"] for _, r in load_rules() if "record" in r}
    used = set()
    for _, _, e in exprs:
        used |= {base_name(n) for n in metric_names(e)}
    used -= records
    unknown = sorted(used - exported - set(NOT_EXPORTED_YET) - set(CLUSTER_ONLY))
    assert not unknown, f"metric names no service exports (typo?): {unknown}"
    now_exported = sorted(set(NOT_EXPORTED_YET) & exported)
    live = sorted(used & exported)
    # a live value for a rule built on exported series: the seed's availability SLO
    code, body = query(prom, "neural_hive:slo:ml_availability_error_ratio:5m")
    assert body["data"]["result"], body
    rss = {s: round(rss_mib(svc.proc.pid), 1) for s, svc in services.items()}
    print(f"\n{len(rules)} rules healthy on {len(services)} services; {len(exprs)} expressions accepted; "
          f"{len(live)} metric names exported, {len(used - exported)} not yet "
          f"({len([n for n in used - exported if n in CLUSTER_ONLY])} cluster-only); "
          f"now exported and listed as missing: {now_exported}; not started: {live_stack['notes']}; "
          f"RSS MiB after ready: {rss}")


def test_model_monitor_check_pushes_to_the_pushgateway(live_stack):
    """model-monitor check with PUSHGATEWAY_URL in its environment: its gauges reach the
    Pushgateway and, scraped from it, the Prometheus."""
    from mlflow.tracking import MlflowClient
    tag = live_stack["tag"]
    binary, env = live_stack["envs"]["model-monitor"]
    client = MlflowClient(MLFLOW)
    exp = client.create_experiment(f"technical-specialist-d{tag}")
    run_ = client.create_run(exp)
    for k, v in {"precision": 0.81, "recall": 0.74, "f1_score": 0.776, "accuracy": 0.8}.items():
        client.log_metric(run_.info.run_id, k, v)
    client.set_terminated(run_.info.run_id)
    e = dict(os.environ)
    e.update(env)
    e["PUSHGATEWAY_URL"] = live_stack["pushgateway"]
    r = run([binary, "check", "--specialist-type", "technical"], env=e, timeout=60)
    assert r.returncode in (0, 1, 3), r.stdout + r.stderr  # OK, degraded or no feedback: a result either way
    assert "cannot push" not in r.stderr, r.stderr

    def pushed():
        _, body = query(live_stack["prom"], 'neural_hive_mlflow_model_f1{job="model_performance_monitor",specialist="technical"}')
        res = body["data"]["result"]
        return res[0]["value"][1] if res else None

    value = wait_for(pushed, 20, "the pushed F1 in Prometheus")
    assert abs(float(value) - 0.776) < 1e-9
    client.delete_experiment(exp)
