"""The simulated Neural Hive's ground truth, with no I/O: what the suite under test must find.

Everything here is a pure function of its arguments and a numpy Generator, so the e2e tests
can recompute any figure the simulator reports.

- Services (Orchestrator-managed): request error rate and latency as a function of an
  injected regression, the Orchestrator's tunables (orchestrator.policies) and SLO targets
  (orchestrator.slos). Which change fixes, which is neutral and which is harmful is fixed
  here (EFFECTS).
- The Consensus Engine: five specialists with hidden accuracies; a decision is the weighted
  vote of their confidence-scaled opinions. Its decision error is a smooth function of the
  weights; best_feasible_weights() finds the best fixed weights inside the recalibrator's
  bounds (the regret baseline).
- Model servers: feature rows whose distribution shifts at the drift time.
"""
import itertools

import numpy as np

SPECIALISTS = ("technical", "safety", "business", "ethical", "legal")
# Hidden accuracies: the suite never sees these; only outcomes.
ACCURACY = {"technical": 0.86, "safety": 0.74, "business": 0.60, "ethical": 0.56, "legal": 0.70}
ENGINE = "consensus-engine"

# The Orchestrator's own defaults, registered once at start (see hive_sim.register_defaults).
DEFAULT_TUNABLES = {"timeout_multiplier": 1.0, "retry_budget": 3.0, "confidence_threshold": 0.5}
DEFAULT_POLICIES = {"load_shedding": 0.0, "circuit_breaker_strict": 0.0, "consensus_safety_veto": 0.0}

BASE_ERROR = 0.004
REGRESSION_ERROR = 0.04  # below the experiments' 5 % guardrail: a neutral change is not aborted
BASE_P95_MS = 320.0

# Ground truth for a service under an error-rate regression: the factor a tunable moved
# UP (+) or DOWN (-) from its default applies to the regression's excess error ("fix" < 1)
# or to the whole error rate ("harm" > 1).
EFFECTS = {
    ("retry_budget", +1): ("fix", 0.02),
    ("retry_budget", -1): ("harm", 3.0),
    ("circuit_breaker_strict", +1): ("fix", 0.05),
    ("circuit_breaker_strict", -1): ("harm", 2.5),
    ("timeout_multiplier", +1): ("fix", 0.5),
    ("timeout_multiplier", -1): ("harm", 4.0),
    ("load_shedding", +1): ("fix", 0.7),
}


def _direction(name, value):
    base = DEFAULT_TUNABLES.get(name, DEFAULT_POLICIES.get(name))
    if base is None or value is None or abs(value - base) < 1e-9:
        return 0
    return 1 if value > base else -1


def service_error_rate(regressed, tunables):
    """The true request error rate of a service given its regression and tunables."""
    excess = (REGRESSION_ERROR - BASE_ERROR) if regressed else 0.0
    harm = 1.0
    for name, value in tunables.items():
        kind = EFFECTS.get((name, _direction(name, value)))
        if kind is None:
            continue
        if kind[0] == "fix":
            excess *= kind[1]
        else:
            harm *= kind[1]
    return min(0.95, (BASE_ERROR + excess) * harm)


def classify_change(adjustments):
    """'fix', 'harm' or 'neutral' for a change given as its variant parameters
    (the optimizer's experiment parameters: a tunable's step, a policy's new value)."""
    kinds = set()
    for name, value in adjustments.items():
        if name in DEFAULT_POLICIES:
            d = _direction(name, value)
        elif name in DEFAULT_TUNABLES:
            d = 1 if value > 0 else -1 if value < 0 else 0
        else:
            continue
        k = EFFECTS.get((name, d))
        if k:
            kinds.add(k[0])
    return "harm" if "harm" in kinds else "fix" if "fix" in kinds else "neutral"


def apply_parameters(tunables, params):
    """The tunables a variant runs with: a tunable's parameter is a step from the current
    value, a policy's is its new value (the optimizer's DELTA and ABSOLUTE modes)."""
    out = dict(tunables)
    for name, value in params.items():
        if name in DEFAULT_POLICIES:
            out[name] = value
        elif name in DEFAULT_TUNABLES:
            out[name] = out.get(name, DEFAULT_TUNABLES[name]) + value
    return out


def slo_compliance(p95_ms, slo):
    """Share of time within the latency SLO: the target the slo-adjuster publishes."""
    target = slo.get("latency_ms", 1000.0)
    return 0.9995 if p95_ms <= target else max(0.0, 0.9995 - (p95_ms - target) / target)


# ---- the Consensus Engine -------------------------------------------------------------------

def project_weights(w, lo=0.1, hi=0.4):
    """Weights clipped into [lo, hi] and summing to 1 (bisection on the shift)."""
    w = np.asarray(w, dtype=float)
    a, b = -1.0, 1.0
    for _ in range(60):
        m = (a + b) / 2
        if np.clip(w + m, lo, hi).sum() > 1.0:
            b = m
        else:
            a = m
    return np.clip(w + (a + b) / 2, lo, hi)


def weights_vector(weights):
    return np.array([float(weights.get(s, 0.2)) for s in SPECIALISTS])


def draw_decisions(rng, n):
    """n decisions: truth (n,), votes (n,5) in {0,1}, confidences (n,5)."""
    acc = np.array([ACCURACY[s] for s in SPECIALISTS])
    truth = rng.random(n) < 0.5
    correct = rng.random((n, 5)) < acc
    votes = np.where(correct, truth[:, None], ~truth[:, None])
    conf = np.where(correct, rng.uniform(0.5, 1.0, (n, 5)), rng.uniform(0.3, 0.9, (n, 5)))
    return truth, votes, conf


def engine_decide(w, votes, conf):
    """Final score in [0,1] (weighted, confidence-scaled votes) and the decision."""
    s = (2 * votes - 1) * conf  # in [-1, 1]
    final = 0.5 + 0.5 * (s @ w) / max(w.sum(), 1e-12)
    return final, final > 0.5


def decision_error(w, rng=None, n=200_000):
    """Expected decision error of weights w (Monte Carlo, common random numbers)."""
    rng = rng or np.random.default_rng(12345)
    truth, votes, conf = draw_decisions(rng, n)
    _, d = engine_decide(np.asarray(w, dtype=float), votes, conf)
    return float(np.mean(d != truth))


def best_feasible_weights(lo=0.1, hi=0.4, step=0.05, n=60_000):
    """The best fixed weights on a grid inside the bounds (sum 1), and their error."""
    rng = np.random.default_rng(777)
    truth, votes, conf = draw_decisions(rng, n)
    s = (2 * votes - 1) * conf
    grid = np.round(np.arange(lo, hi + 1e-9, step), 4)
    best, best_err = None, 2.0
    for combo in itertools.product(grid, repeat=4):
        last = 1.0 - sum(combo)
        if last < lo - 1e-9 or last > hi + 1e-9:
            continue
        w = np.array(list(combo) + [last])
        err = float(np.mean((s @ w > 0) != truth))
        if err < best_err:
            best, best_err = w, err
    return dict(zip(SPECIALISTS, best.tolist())), best_err


# ---- model servers -------------------------------------------------------------------------

FEATURES = ("f_length", "f_risk", "f_amount", "f_latency")
# A model's serving error rate: drifted inputs hurt the current version; a version
# retrained on the new data recovers.
MODEL_ERROR_DRIFTED = 0.045
MODEL_ERROR_RETRAINED = 0.015


def feature_rows(rng, n, drifted):
    """Rows of the technical specialist's input features; drift shifts two of them."""
    rows = np.column_stack([
        rng.normal(100, 15, n),
        rng.beta(2, 5, n),
        rng.lognormal(3, 0.5, n),
        rng.normal(50, 10, n),
    ])
    if drifted:
        rows[:, 1] = rng.beta(5, 2, n)
        rows[:, 2] = rng.lognormal(3.8, 0.5, n)
    return rows
