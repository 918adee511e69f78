#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "drift.h"
#include "hive_err.h"

/* A sample of the generator below: n values, shift, scale, kind 0 = uniform,
 * 1 = integers 0..9 (ties), 2 = squared uniform (skewed). */
typedef struct {
    uint64_t seed;
    size_t n;
    double shift, scale;
    int kind;
} sample_t;

/* Expected values from scipy.stats.ks_2samp (scipy 1.17.1) and Evidently's
 * PSI formula in numpy, on the same generated data (the generator replicated
 * in Python). */
typedef struct {
    sample_t a, b;
    double ks, p, psi;
} vector_t;

static const vector_t vectors[] = {
    {{1, 50, 0, 1, 0}, {2, 50, 0.29999999999999999, 1, 0}, 0.38, 0.0013147736033165794, 3.8837776792798078},
    {{3, 40, 0, 1, 0},
     {4, 70, 0.10000000000000001, 1, 0},
     0.22857142857142856,
     0.12002372260603318,
     1.4161109648687296},
    {{5, 300, 0, 1, 2}, {6, 500, 0, 1, 0}, 0.316, 4.8747193682059943e-17, 0.64957887438300776},
    {{7, 1000, 0, 1, 0},
     {8, 800, 0.050000000000000003, 1, 0},
     0.063750000000000001,
     0.051741991896145229,
     0.057958681350888649},
    {{9, 200, 0, 1, 1}, {10, 150, 1, 1, 1}, 0.18166666666666667, 0.0061781918421342993, 0.99943724162267167},
    {{11, 5, 0, 1, 0}, {12, 7, 0, 1, 0}, 0.25714285714285712, 0.95959595959595945, 3.6817721007822262},
    {{13, 3000, 0, 1, 0},
     {14, 2500, 0.02, 1, 0},
     0.035000000000000003,
     0.069092202120037097,
     0.017796821910976677},
};

/* Above 10,000 values scipy uses kstwo.sf, this module Kolmogorov's limit. */
static const vector_t asymptotic = {{15, 12000, 0, 1, 0},
                                    {16, 11000, 0.02, 1, 0},
                                    0.030833333333333268,
                                    3.5663998810437137e-05,
                                    0.013592602821033946};

static double *generate(const sample_t *s)
{
    double *x = malloc(s->n * sizeof(*x));
    assert_non_null(x);
    uint64_t st = s->seed;
    for (size_t i = 0; i < s->n; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(st >> 11) / (double)(1ULL << 53);
        x[i] = s->kind == 0   ? u * s->scale + s->shift
               : s->kind == 1 ? floor(u * 10.0) + s->shift
                              : u * u * s->scale + s->shift;
    }
    return x;
}

static void check_close(double got, double want, double tol, const char *what, size_t i)
{
    if (!(fabs(got - want) <= tol)) {
        fail_msg("vector %zu %s: got %.17g, scipy says %.17g", i, what, got, want);
    }
}

static void test_ks_matches_scipy(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector_t *v = &vectors[i];
        double *a = generate(&v->a), *b = generate(&v->b);
        drift_ks_t ks;
        assert_int_equal(drift_ks_2samp(a, v->a.n, b, v->b.n, &ks), 0);
        assert_true(ks.exact);
        check_close(ks.statistic, v->ks, 1e-12, "statistic", i);
        check_close(ks.p_value, v->p, 1e-9 * fmax(1.0, v->p), "p-value", i);
        /* symmetric in its arguments */
        drift_ks_t rev;
        assert_int_equal(drift_ks_2samp(b, v->b.n, a, v->a.n, &rev), 0);
        check_close(rev.p_value, v->p, 1e-9, "p-value (swapped)", i);
        free(a);
        free(b);
    }
}

static void test_ks_asymptotic(void **state)
{
    (void)state;
    const vector_t *v = &asymptotic;
    double *a = generate(&v->a), *b = generate(&v->b);
    drift_ks_t ks;
    assert_int_equal(drift_ks_2samp(a, v->a.n, b, v->b.n, &ks), 0);
    assert_false(ks.exact);
    check_close(ks.statistic, v->ks, 1e-12, "statistic", 0);
    /* documented gap between Kolmogorov's limit and kstwo at n ~ 5700: a few percent */
    check_close(ks.p_value, v->p, 0.1 * v->p, "asymptotic p-value", 0);
    free(a);
    free(b);
}

static void test_psi_matches_numpy(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector_t *v = &vectors[i];
        double *a = generate(&v->a), *b = generate(&v->b);
        double psi;
        assert_int_equal(drift_psi(a, v->a.n, b, v->b.n, 10, &psi), 0);
        check_close(psi, v->psi, 1e-9, "psi", i);
        free(a);
        free(b);
    }
}

static void test_identical_samples_do_not_drift(void **state)
{
    (void)state;
    sample_t s = {42, 500, 0, 1, 0};
    double *a = generate(&s);
    drift_config_t cfg;
    drift_config_default(&cfg);
    drift_feature_t f;
    assert_int_equal(drift_feature_check(&cfg, a, s.n, a, s.n, &f), 0);
    assert_int_equal(f.method, DRIFT_KS);
    assert_true(f.ks_statistic == 0.0 && f.ks_p_value == 1.0 && f.psi == 0.0);
    assert_false(f.drifted);
    free(a);
}

/* KS decides up to 1,000 reference values, PSI above; the score is the share. */
static void test_verdict_and_score(void **state)
{
    (void)state;
    drift_config_t cfg;
    drift_config_default(&cfg);
    drift_feature_t f[3];
    const vector_t *v = &vectors[0]; /* p 0.0013: drifted by KS */
    double *a = generate(&v->a), *b = generate(&v->b);
    assert_int_equal(drift_feature_check(&cfg, a, v->a.n, b, v->b.n, &f[0]), 0);
    assert_true(f[0].drifted);
    assert_string_equal(drift_method_name(f[0].method), "ks");
    free(a);
    free(b);
    v = &vectors[1]; /* p 0.12: not drifted by KS although its PSI is large */
    a = generate(&v->a);
    b = generate(&v->b);
    assert_int_equal(drift_feature_check(&cfg, a, v->a.n, b, v->b.n, &f[1]), 0);
    assert_false(f[1].drifted);
    free(a);
    free(b);
    v = &vectors[6]; /* 3,000 reference values: PSI 0.018 < 0.1 */
    a = generate(&v->a);
    b = generate(&v->b);
    assert_int_equal(drift_feature_check(&cfg, a, v->a.n, b, v->b.n, &f[2]), 0);
    assert_int_equal(f[2].method, DRIFT_PSI);
    assert_false(f[2].drifted);
    assert_true(fabs(drift_score(f, 3) - 1.0 / 3.0) < 1e-15);
    assert_true(drift_score(f, 0) == 0.0);
    free(a);
    free(b);
}

static void test_invalid_input(void **state)
{
    (void)state;
    double x[] = {1, 2, NAN}, psi;
    drift_ks_t ks;
    assert_int_equal(drift_ks_2samp(x, 0, x, 2, &ks), HIVE_EINVAL);
    assert_int_equal(drift_ks_2samp(x, 3, x, 2, &ks), HIVE_EINVAL);
    assert_int_equal(drift_psi(x, 2, x, 2, 0, &psi), HIVE_EINVAL);
    assert_int_equal(drift_psi(x, 2, x, 2, 10, &psi), 0);
    assert_true(psi == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ks_matches_scipy),  cmocka_unit_test(test_ks_asymptotic),
        cmocka_unit_test(test_psi_matches_numpy), cmocka_unit_test(test_identical_samples_do_not_drift),
        cmocka_unit_test(test_verdict_and_score), cmocka_unit_test(test_invalid_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
