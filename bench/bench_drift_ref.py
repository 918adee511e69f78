"""The model-monitor's drift check beside scipy on the same data, in one run.

For each row count, runs bench/bench_drift (C, monitor_core), which writes its
seeded data and per-feature results to a temporary file, then times
scipy.stats.ks_2samp (method "auto", as drift_ks_2samp) and
scipy.stats.wasserstein_distance normed by the reference's std (Evidently's
test, as drift_wasserstein_norm) on the same arrays, checks that the values
agree and prints the times and the ratio scipy / C. A figure, never a test.
"""
import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
from scipy import stats


def load(path):
    with open(path, "rb") as f:
        rows, features = np.frombuffer(f.read(16), dtype=np.int64)
        data = np.frombuffer(f.read(), dtype=np.float64)
    rows, features = int(rows), int(features)
    ref = data[: rows * features].reshape(features, rows)
    cur = data[rows * features : 2 * rows * features].reshape(features, rows)
    res = data[2 * rows * features :].reshape(features, 4)
    return ref, cur, res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--rows", default="100000,1000000")
    args = ap.parse_args()
    print(f"{'rows x 20':>12} {'phase':<28} {'C s':>9} {'scipy s':>9} {'scipy/C':>8}")
    for rows in [int(r) for r in args.rows.split(",")]:
        fd, path = tempfile.mkstemp(prefix="bench_drift_", suffix=".f64")
        os.close(fd)
        try:
            out = subprocess.run([args.binary, str(rows), path], check=True, capture_output=True, text=True).stdout
            c = dict(kv.split("=") for kv in out.split())
            ref, cur, res = load(path)
            t0 = time.perf_counter()
            ks = [stats.ks_2samp(ref[j], cur[j], method="auto") for j in range(len(ref))]
            t_ks = time.perf_counter() - t0
            t0 = time.perf_counter()
            wn = [stats.wasserstein_distance(ref[j], cur[j]) / max(np.std(ref[j]), 0.001) for j in range(len(ref))]
            t_w = time.perf_counter() - t0
            d_ks = max(abs(k.statistic - r[0]) for k, r in zip(ks, res))
            d_p = max(abs(k.pvalue - r[1]) for k, r in zip(ks, res))
            d_w = max(abs(w - r[3]) / max(abs(w), 1e-300) for w, r in zip(wn, res))
            drift = sum(w >= 0.1 for w in wn) / len(wn)
            label = f"{rows:>12}"
            print(f"{label} {'reference profile':<28} {float(c['reference_s']):9.4f} {'-':>9} {'-':>8}")
            print(f"{label} {'ingest window (500-row)':<28} {float(c['ingest_s']):9.4f} {'-':>9} {'-':>8}")
            for name, cs, ps in (
                ("wasserstein normed (decides)", float(c["wasserstein_s"]), t_w),
                (f"ks_2samp auto (exact={c['ks_exact']})", float(c["ks_s"]), t_ks),
                ("check: ks+psi+wass / ks+wass", float(c["check_s"]), t_ks + t_w),
            ):
                print(f"{label} {name:<28} {cs:9.4f} {ps:9.4f} {ps / cs:8.2f}")
            print(
                f"{label}   agreement: |dD| {d_ks:.1e}, |dp| {d_p:.1e}, rel dW {d_w:.1e}; "
                f"drift_score C {float(c['drift_score']):.2f}, scipy {drift:.2f} (method {c['method']})"
            )
        finally:
            os.unlink(path)


if __name__ == "__main__":
    main()
