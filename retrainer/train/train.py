#!/usr/bin/env python3
"""The retrainer's training job: a scikit-learn RandomForest `{specialist}-evaluator`.

Resumes the MLflow run the retrainer created (--run-id), trains on a JSONL
dataset written by retrainer/parts/dataset.c (one sample a line:
{"features": [...], "label": 0|1, "source": "...", "text": "..."}), logs its
parameters and the validation metrics precision, recall, f1_score and
accuracy, logs the model and registers it as a new version of
`{specialist}-evaluator`. The run ends FINISHED on success and FAILED on any
error (exit code != 0). The last line on stdout is one JSON object:
{"run_id": ..., "model_version": ..., "metrics": {...}}.

Exit codes: 0 success, 2 fewer valid samples than --min-samples, 1 any other
failure.

HIVE_TRAIN_LABEL_NOISE (test and demo knob, default 0): a share in [0, 1] of
the training labels is flipped before fitting, to produce a worse candidate on
purpose. The validation labels are never touched.

MLFLOW_NAME_SUFFIX (default ""): appended to the registered model's and the
experiment's names (`{specialist}-evaluator{suffix}`), as the retrainer and the
model-monitor do; tests on a shared MLflow use a unique one.
"""
import argparse
import json
import os
import sys
import time

EXIT_FEW_SAMPLES = 2


class FewSamples(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--specialist-type", required=True)
    p.add_argument("--dataset", required=True, help="JSONL dataset")
    p.add_argument("--run-id", default="", help="the MLflow run to resume (a new one when empty)")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""))
    p.add_argument("--n-estimators", type=int, default=100)
    p.add_argument("--max-depth", type=int, default=10, help="0: unbounded")
    p.add_argument("--hyperparameter-tuning", action="store_true",
                   help="small grid search (3-fold) over n_estimators and max_depth")
    p.add_argument("--min-samples", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--validation-share", type=float, default=0.2)
    return p.parse_args(argv)


def load_dataset(path):
    """Valid samples of the file: features all numbers, of the most common
    length, label 0 or 1. Returns (X, y, skipped)."""
    rows, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                s = json.loads(line)
                feats = [float(v) for v in s["features"]]
                label = s["label"]
                if label not in (0, 1) or isinstance(label, bool) or not feats:
                    raise ValueError("label")
                rows.append((feats, int(label)))
            except (ValueError, KeyError, TypeError):
                skipped += 1
    if not rows:
        return [], [], skipped
    lengths = {}
    for feats, _ in rows:
        lengths[len(feats)] = lengths.get(len(feats), 0) + 1
    k = max(lengths, key=lengths.get)
    X = [feats for feats, _ in rows if len(feats) == k]
    y = [label for feats, label in rows if len(feats) == k]
    return X, y, skipped + len(rows) - len(X)


def flip_labels(y, share, rng):
    """Flips round(share * len(y)) labels chosen at random."""
    share = min(max(share, 0.0), 1.0)
    n = int(round(share * len(y)))
    idx = rng.choice(len(y), size=n, replace=False) if n else []
    y = y.copy()
    y[idx] = 1 - y[idx]
    return y


def train(args, mlflow):
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
    from sklearn.model_selection import GridSearchCV, train_test_split

    X, y, skipped = load_dataset(args.dataset)
    mlflow.log_param("dataset", os.path.basename(args.dataset))
    mlflow.log_metric("samples", len(X))
    mlflow.log_metric("samples_skipped", skipped)
    if len(X) < args.min_samples:
        raise FewSamples("%d valid samples in %s, fewer than --min-samples %d (%d lines skipped)"
                         % (len(X), args.dataset, args.min_samples, skipped))
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=int)
    stratify = y if min(np.bincount(y, minlength=2)) >= 2 else None
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=args.validation_share,
                                              random_state=args.seed, stratify=stratify)
    noise = float(os.environ.get("HIVE_TRAIN_LABEL_NOISE", "0") or 0)
    if noise > 0:
        y_tr = flip_labels(y_tr, noise, np.random.default_rng(args.seed))
    params = {"n_estimators": args.n_estimators,
              "max_depth": args.max_depth if args.max_depth > 0 else None}
    base = RandomForestClassifier(random_state=args.seed, n_jobs=1, **params)
    if args.hyperparameter_tuning:
        grid = {"n_estimators": sorted({50, args.n_estimators, 200}),
                "max_depth": [5, 10, None]}
        search = GridSearchCV(base, grid, scoring="f1", cv=3, n_jobs=1)
        search.fit(X_tr, y_tr)
        model = search.best_estimator_
        params = dict(search.best_params_)
    else:
        model = base.fit(X_tr, y_tr)
    mlflow.log_params({"specialist_type": args.specialist_type, "model_type": "RandomForestClassifier",
                       "n_estimators": params["n_estimators"], "max_depth": params["max_depth"],
                       "hyperparameter_tuning": args.hyperparameter_tuning, "seed": args.seed,
                       "label_noise": noise, "num_features": X.shape[1],
                       "train_samples": len(y_tr), "validation_samples": len(y_va)})
    pred = model.predict(X_va)
    metrics = {"precision": float(precision_score(y_va, pred, zero_division=0)),
               "recall": float(recall_score(y_va, pred, zero_division=0)),
               "f1_score": float(f1_score(y_va, pred, zero_division=0)),
               "accuracy": float(accuracy_score(y_va, pred))}
    mlflow.log_metrics(metrics)
    return model, metrics, X_va[:5]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    suffix = os.environ.get("MLFLOW_NAME_SUFFIX", "")
    name = "%s-evaluator%s" % (args.specialist_type, suffix)
    if args.run_id:
        run = mlflow.start_run(run_id=args.run_id)
    else:
        mlflow.set_experiment("%s-specialist%s" % (args.specialist_type, suffix))
        run = mlflow.start_run()
    run_id = run.info.run_id
    started = time.monotonic()
    try:
        model, metrics, example = train(args, mlflow)
        signature = infer_signature(example, model.predict(example))
        # The forest's tree storage is ours (trained just now): trusted by skops.
        info = mlflow.sklearn.log_model(model, name="model", signature=signature,
                                        skops_trusted_types=["sklearn.tree._tree.Tree"])
        version = mlflow.register_model(info.model_uri, name, tags={"run_id": run_id})
        mlflow.log_metric("training_duration_seconds", time.monotonic() - started)
        mlflow.set_tag("registered_model", "%s/%s" % (name, version.version))
        mlflow.end_run(status="FINISHED")
    except FewSamples as e:
        mlflow.set_tag("error", str(e))
        mlflow.end_run(status="FAILED")
        print("train.py: %s" % e, file=sys.stderr)
        return EXIT_FEW_SAMPLES
    except BaseException as e:  # the run must never stay RUNNING
        mlflow.set_tag("error", "%s: %s" % (type(e).__name__, e))
        mlflow.end_run(status="FAILED")
        print("train.py: failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print(json.dumps({"run_id": run_id, "model_version": str(version.version), "metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
