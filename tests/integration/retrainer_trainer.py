"""A minimal training job for the retrainer's integration tests, with the CLI
of retrainer/train/train.py (retrainer.md): it resumes the MLflow run the
service created, fits a scikit-learn RandomForest on the JSONL dataset, logs
precision, recall, f1_score and accuracy on a validation split, registers a
version of {specialist}-evaluator{MLFLOW_NAME_SUFFIX} from the run and prints
one JSON line. It talks to MLflow through its REST API (the mlflow package
takes seconds to import) and stands in for the real job in these tests.

Test knobs: HIVE_TRAIN_SLEEP seconds to wait before training (so a test can
kill the service mid-run); HIVE_TRAIN_LABEL_NOISE flips that share of labels.
"""
import argparse
import json
import os
import random
import sys
import time

import requests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--specialist-type", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    ap.add_argument("--min-samples", type=int, default=100)
    ap.add_argument("--hyperparameter-tuning", action="store_true")
    args = ap.parse_args()
    api = args.tracking_uri.rstrip("/") + "/api/2.0/mlflow/"

    def post(path, body):
        r = requests.post(api + path, json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def end(status):
        post("runs/update", {"run_id": args.run_id, "status": status, "end_time": int(time.time() * 1000)})

    time.sleep(float(os.environ.get("HIVE_TRAIN_SLEEP", "0")))
    rows = [json.loads(line) for line in open(args.dataset) if line.strip()]
    if len(rows) < args.min_samples:
        print(f"only {len(rows)} samples, --min-samples {args.min_samples}", file=sys.stderr)
        end("FAILED")
        return 2
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = random.Random(7)
    noise = float(os.environ.get("HIVE_TRAIN_LABEL_NOISE", "0"))
    X = [r["features"] for r in rows]
    y = [(1 - r["label"]) if rng.random() < noise else r["label"] for r in rows]
    cut = int(len(X) * 0.8)
    model = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=42).fit(X[:cut], y[:cut])
    pred = model.predict(X[cut:])
    truth = [r["label"] for r in rows[cut:]]
    metrics = {"precision": precision_score(truth, pred, zero_division=0),
               "recall": recall_score(truth, pred, zero_division=0),
               "f1_score": f1_score(truth, pred, zero_division=0),
               "accuracy": accuracy_score(truth, pred)}
    now = int(time.time() * 1000)
    post("runs/log-batch", {"run_id": args.run_id,
                            "metrics": [{"key": k, "value": float(v), "timestamp": now, "step": 0}
                                        for k, v in metrics.items()],
                            "params": [{"key": "n_samples", "value": str(len(rows))}]})
    name = f"{args.specialist_type}-evaluator{os.environ.get('MLFLOW_NAME_SUFFIX', '')}"
    r = requests.post(api + "registered-models/create", json={"name": name}, timeout=30)
    if r.status_code != 200 and "RESOURCE_ALREADY_EXISTS" not in r.text:
        r.raise_for_status()
    run = requests.get(api + "runs/get", params={"run_id": args.run_id}, timeout=30).json()["run"]
    mv = post("model-versions/create", {"name": name, "source": run["info"]["artifact_uri"] + "/model",
                                        "run_id": args.run_id})["model_version"]
    end("FINISHED")
    print(json.dumps({"run_id": args.run_id, "model_version": mv["version"], "metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
