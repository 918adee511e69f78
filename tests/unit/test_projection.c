/* projection: the weight-recalibrator's limit, exact projection and checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "projection.h"

/* An independent solver: bisection on tau of sum clamp(y - tau, lo, hi) = total. */
static void bisect(const double *y, size_t n, double lo, double hi, double total, double *out)
{
    double a = -10, b = 10;
    for (int it = 0; it < 200; it++) {
        double m = (a + b) / 2, s = 0;
        for (size_t i = 0; i < n; i++) {
            s += fmin(hi, fmax(lo, y[i] - m));
        }
        if (s > total) {
            a = m;
        } else {
            b = m;
        }
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = fmin(hi, fmax(lo, y[i] - (a + b) / 2));
    }
}

static uint64_t rng = 88172645463325252ULL;
static double uniform(double lo, double hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0;
}

static void test_known_projections(void **state)
{
    (void)state;
    double y[5] = {0.25, 0.2, 0.2, 0.2, 0.2}, x[5];
    assert_int_equal(weights_project(y, 5, 0.1, 0.4, 1.0, x), 0);
    assert_float_equal(x[0], 0.24, 1e-12);
    assert_float_equal(x[1], 0.19, 1e-12);
    /* Clip-and-normalise would leave the box here; the projection does not. */
    double z[5] = {0.9, 0.1, 0.1, 0.1, 0.1};
    assert_int_equal(weights_project(z, 5, 0.1, 0.4, 1.0, x), 0);
    assert_float_equal(x[0], 0.4, 0);
    for (int i = 1; i < 5; i++) {
        assert_float_equal(x[i], 0.15, 1e-12);
    }
    /* An empty set is refused. */
    assert_int_equal(weights_project(z, 5, 0.3, 0.4, 1.0, x), -1);
    z[2] = NAN;
    assert_int_equal(weights_project(z, 5, 0.1, 0.4, 1.0, x), -1);
}

/* Random proposals: every projection is feasible (sum within 1e-9, bounds
 * exact) and is the nearest feasible point (equal to an independent
 * bisection, and no random feasible point is nearer). */
static void test_property_random_proposals(void **state)
{
    (void)state;
    const char *env = getenv("PROJECTION_PROPERTY_N");
    long n = env ? atol(env) : 100000;
    for (long k = 0; k < n; k++) {
        double y[5], x[5], ref[5];
        for (int i = 0; i < 5; i++) {
            y[i] = uniform(-1.0, 2.0);
        }
        assert_int_equal(weights_project(y, 5, 0.1, 0.4, 1.0, x), 0);
        bisect(y, 5, 0.1, 0.4, 1.0, ref);
        double s = 0, d = 0;
        for (int i = 0; i < 5; i++) {
            assert_true(x[i] >= 0.1 && x[i] <= 0.4);
            assert_float_equal(x[i], ref[i], 1e-9);
            s += x[i];
            d += (x[i] - y[i]) * (x[i] - y[i]);
        }
        assert_float_equal(s, 1.0, 1e-9);
        if (k % 100 == 0) { /* a random feasible point is never nearer */
            double f[5];
            bisect((double[]){uniform(0, 1), uniform(0, 1), uniform(0, 1), uniform(0, 1), uniform(0, 1)}, 5,
                   0.1, 0.4, 1.0, f);
            double df = 0;
            for (int i = 0; i < 5; i++) {
                df += (f[i] - y[i]) * (f[i] - y[i]);
            }
            assert_true(d <= df + 1e-12);
        }
    }
}

static void test_propose_caps_then_projects(void **state)
{
    (void)state;
    weights_bounds_t b = weights_bounds_default();
    b.max_adjustment = 0.05;
    double cur[5] = {0.2, 0.2, 0.2, 0.2, 0.2}, prop[5] = {0.4, 0.2, 0.2, 0.2, 0.2}, out[5];
    char why[128];
    assert_int_equal(weights_propose(cur, prop, &b, out, why, sizeof(why)), 0);
    /* capped to 0.25, then the 0.05 excess taken evenly */
    assert_float_equal(out[0], 0.24, 1e-12);
    assert_int_equal(weights_validate(out, &b, why, sizeof(why)), 0);
    double bad[5] = {0.5, 0.125, 0.125, 0.125, 0.125};
    assert_int_equal(weights_validate(bad, &b, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "technical"));
    double off[5] = {0.3, 0.3, 0.3, 0.3, 0.3};
    assert_int_equal(weights_validate(off, &b, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "sum"));
    prop[1] = INFINITY;
    assert_int_equal(weights_propose(cur, prop, &b, out, why, sizeof(why)), -1);
    assert_int_equal(weights_index("legal"), 4);
    assert_int_equal(weights_index("creativity"), -1);
}

/* Hedge: the better specialist gains, the bounds and the sum hold, eta = 0
 * keeps feasible weights, bad inputs are refused. */
static void test_hedge(void **state)
{
    (void)state;
    weights_bounds_t b = weights_bounds_default();
    double cur[5] = {0.2, 0.2, 0.2, 0.2, 0.2}, loss[5] = {0.1, 0.5, 0.5, 0.5, 0.5}, out[5];
    char why[128];
    assert_int_equal(weights_hedge(cur, loss, 1.0, &b, out, why, sizeof(why)), 0);
    /* exp(0.4) / (exp(0.4) + 4) = 0.27165... with the others equal */
    double e = exp(0.4) / (exp(0.4) + 4.0);
    assert_float_equal(out[0], e, 1e-12);
    for (int i = 1; i < 5; i++) {
        assert_float_equal(out[i], (1.0 - e) / 4.0, 1e-12);
        assert_true(out[i] < out[0]);
    }
    assert_int_equal(weights_validate(out, &b, why, sizeof(why)), 0);
    /* eta = 0 keeps the weights */
    double c2[5] = {0.3, 0.25, 0.15, 0.15, 0.15};
    assert_int_equal(weights_hedge(c2, loss, 0.0, &b, out, why, sizeof(why)), 0);
    for (int i = 0; i < 5; i++) {
        assert_float_equal(out[i], c2[i], 1e-12);
    }
    /* a huge step is capped at current +- max_adjustment ({0.25, 0.15 x4}),
     * then projected back to sum 1 ({0.28, 0.18 x4}), as weights_propose does */
    b.max_adjustment = 0.05;
    assert_int_equal(weights_hedge(cur, loss, 1000.0, &b, out, why, sizeof(why)), 0);
    assert_float_equal(out[0], 0.28, 1e-12);
    double s = 0;
    for (int i = 0; i < 5; i++) {
        assert_true(out[i] >= b.lo && out[i] <= b.hi);
        if (i > 0) {
            assert_float_equal(out[i], 0.18, 1e-12);
        }
        s += out[i];
    }
    assert_float_equal(s, 1.0, 1e-9);
    /* repeated steps never leave the box; the best specialist ends at hi */
    b = weights_bounds_default();
    double w[5] = {0.2, 0.2, 0.2, 0.2, 0.2};
    double l3[5] = {0.4, 0.2, 0.6, 0.5, 0.5};
    for (int k = 0; k < 50; k++) {
        assert_int_equal(weights_hedge(w, l3, 2.0, &b, w, why, sizeof(why)), 0);
        assert_int_equal(weights_validate(w, &b, why, sizeof(why)), 0);
    }
    assert_float_equal(w[1], 0.4, 1e-9);
    assert_true(w[0] > w[2]);
    /* refusals */
    assert_int_equal(weights_hedge(cur, loss, -1.0, &b, out, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "learning rate"));
    loss[3] = NAN;
    assert_int_equal(weights_hedge(cur, loss, 1.0, &b, out, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "ethical"));
    loss[3] = 0.5;
    cur[2] = 0;
    assert_int_equal(weights_hedge(cur, loss, 1.0, &b, out, why, sizeof(why)), -1);
}

static void test_loss_from_counts(void **state)
{
    (void)state;
    long correct[5] = {8, 0, 3, 0, 5}, total[5] = {8, 0, 10, 4, 3};
    double loss[5];
    weights_loss_from_counts(correct, total, loss);
    assert_float_equal(loss[0], 1.0 - 9.0 / 10.0, 1e-12);
    assert_float_equal(loss[1], 0.5, 1e-12);
    assert_float_equal(loss[2], 1.0 - 4.0 / 12.0, 1e-12);
    assert_float_equal(loss[3], 1.0 - 1.0 / 6.0, 1e-12);
    assert_float_equal(loss[4], 1.0 - 4.0 / 5.0, 1e-12); /* correct clamped to total */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_projections),          cmocka_unit_test(test_property_random_proposals),
        cmocka_unit_test(test_propose_caps_then_projects), cmocka_unit_test(test_hedge),
        cmocka_unit_test(test_loss_from_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
