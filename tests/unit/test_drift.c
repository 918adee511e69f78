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
/* scipy.stats.wasserstein_distance(a, b) and Evidently's normed form
 * (/ max(np.std(a), 0.001)) on the generated vectors above (scipy 1.17.1). */
static const double wasserstein_ref[][2] = {
    {0.2954527562642654, 1.1226479682774408},    {0.11131044781491929, 0.4384888540669194},
    {0.1906074537588595, 0.6280001907684286},    {0.04363052278283736, 0.15299899841047257},
    {1.3599999999999999, 0.4709181926570042},    {0.0990050529312328, 0.2903934542241094},
    {0.022772477645017886, 0.07940591519965806},
};

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
    v = &vectors[6]; /* 3,000 reference values: normed Wasserstein 0.079 < 0.1 */
    a = generate(&v->a);
    b = generate(&v->b);
    assert_int_equal(drift_feature_check(&cfg, a, v->a.n, b, v->b.n, &f[2]), 0);
    assert_int_equal(f[2].method, DRIFT_WASSERSTEIN);
    assert_string_equal(drift_method_name(f[2].method), "wasserstein");
    check_close(f[2].wasserstein, wasserstein_ref[6][1], 1e-12, "feature wasserstein", 6);
    assert_false(f[2].drifted);
    assert_true(fabs(drift_score(f, 3) - 1.0 / 3.0) < 1e-15);
    assert_true(drift_score(f, 0) == 0.0);
    free(a);
    free(b);
}

static void check_rel(double got, double want, const char *what)
{
    if (!(fabs(got - want) <= 1e-9 * fabs(want) + 1e-15)) {
        fail_msg("%s: got %.17g, scipy says %.17g", what, got, want);
    }
}

static void test_wasserstein_matches_scipy(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        double *a = generate(&vectors[i].a), *b = generate(&vectors[i].b), w, wn;
        assert_int_equal(drift_wasserstein(a, vectors[i].a.n, b, vectors[i].b.n, &w), 0);
        assert_int_equal(drift_wasserstein_norm(a, vectors[i].a.n, b, vectors[i].b.n, &wn), 0);
        check_close(w, wasserstein_ref[i][0], 1e-12, "wasserstein", i);
        check_close(wn, wasserstein_ref[i][1], 1e-12, "normed wasserstein", i);
        free(a);
        free(b);
    }
    /* Hand-made cases: one value each, ties, a constant reference (std floored at 0.001). */
    const double x[] = {0.5, 1.25, 3.0, -2.0, 4.5, 0.0, 7.25, 1.0},
                 y[] = {1.5, 2.0, -0.5, 6.0, 3.25, 3.25, 9.0};
    double w;
    assert_int_equal(drift_wasserstein(x, 8, y, 7, &w), 0);
    check_rel(w, 1.5803571428571432, "wasserstein x y");
    assert_int_equal(drift_wasserstein_norm(x, 8, y, 7, &w), 0);
    check_rel(w, 0.5839485579803645, "normed wasserstein x y");
    const double three[] = {3}, z[] = {0, 0, 1}, o[] = {0, 1, 1}, c[] = {2, 2, 2}, c2[] = {2, 3};
    assert_int_equal(drift_wasserstein(three, 1, three, 1, &w), 0);
    assert_true(w == 0.0);
    assert_int_equal(drift_wasserstein(z, 3, o, 3, &w), 0);
    check_rel(w, 0.3333333333333333, "wasserstein ties");
    assert_int_equal(drift_wasserstein_norm(c, 3, c2, 2, &w), 0);
    check_rel(w, 500.0, "normed wasserstein, constant reference");
    assert_int_equal(drift_wasserstein(x, 0, y, 7, &w), HIVE_EINVAL);
    const double nan1[] = {NAN};
    assert_int_equal(drift_wasserstein(x, 8, nan1, 1, &w), HIVE_EINVAL);
}

/* scipy.stats.chisquare and chi2.sf (scipy 1.17.1). */
static void test_chisquare_matches_scipy(void **state)
{
    (void)state;
    const double o1[] = {18, 22, 31, 29}, e1[] = {25, 25, 25, 25};
    const double o2[] = {5, 0, 12, 3, 40}, e2[] = {10, 2, 16, 6, 26};
    double st, p;
    assert_int_equal(drift_chisquare(o1, e1, 4, &st, &p), 0);
    check_rel(st, 4.3999999999999995, "chisquare statistic 1");
    check_rel(p, 0.2213853871894879, "chisquare p 1");
    assert_int_equal(drift_chisquare(o2, e2, 5, &st, &p), 0);
    check_rel(st, 14.538461538461538, "chisquare statistic 2");
    check_rel(p, 0.0057607403524384876, "chisquare p 2");
    check_rel(drift_chi2_sf(3.5, 1), 0.0613688291394023, "chi2.sf(3.5, 1)");
    check_rel(drift_chi2_sf(100, 7), 1.0787979671702833e-18, "chi2.sf(100, 7)");
    check_rel(drift_chi2_sf(0.01, 3), 0.9997348349413444, "chi2.sf(0.01, 3)");
    check_rel(drift_chi2_sf(30.5, 30), 0.4402732174478974, "chi2.sf(30.5, 30)");
    /* Equal counts: statistic 0, p 1; observed where none was expected: p 0. */
    assert_int_equal(drift_chisquare(e1, e1, 4, &st, &p), 0);
    assert_true(st == 0.0 && p == 1.0);
    const double o3[] = {1, 3}, e3[] = {0, 4};
    assert_int_equal(drift_chisquare(o3, e3, 2, &st, &p), 0);
    assert_true(isinf(st) && p == 0.0);
    assert_int_equal(drift_chisquare(o1, e1, 1, &st, &p), HIVE_EINVAL);
    const double neg[] = {-1, 2};
    assert_int_equal(drift_chisquare(neg, e3, 2, &st, &p), HIVE_EINVAL);
}

/* scipy.spatial.distance.jensenshannon (natural log, scipy 1.17.1). */
static void test_jensenshannon_matches_scipy(void **state)
{
    (void)state;
    const double p1[] = {1, 2, 3, 4}, q1[] = {4, 3, 2, 1};
    const double p2[] = {0.5, 0.5, 0}, q2[] = {0, 0.1, 0.9};
    const double p3[] = {1, 0}, q3[] = {0, 1};
    const double p4[] = {3, 3}, q4[] = {1, 1};
    double js;
    assert_int_equal(drift_jensenshannon(p1, q1, 4, &js), 0);
    check_rel(js, 0.32625164411267443, "js 1");
    assert_int_equal(drift_jensenshannon(p2, q2, 3, &js), 0);
    check_rel(js, 0.7469797975180145, "js 2");
    assert_int_equal(drift_jensenshannon(p3, q3, 2, &js), 0);
    check_rel(js, 0.8325546111576977, "js disjoint: sqrt(ln 2)");
    assert_int_equal(drift_jensenshannon(p4, q4, 2, &js), 0);
    assert_true(js == 0.0);
    const double zero[] = {0, 0};
    assert_int_equal(drift_jensenshannon(zero, q4, 2, &js), HIVE_EINVAL);
    assert_int_equal(drift_jensenshannon(p4, q4, 0, &js), HIVE_EINVAL);
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
        cmocka_unit_test(test_ks_matches_scipy),
        cmocka_unit_test(test_ks_asymptotic),
        cmocka_unit_test(test_psi_matches_numpy),
        cmocka_unit_test(test_identical_samples_do_not_drift),
        cmocka_unit_test(test_verdict_and_score),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_wasserstein_matches_scipy),
        cmocka_unit_test(test_chisquare_matches_scipy),
        cmocka_unit_test(test_jensenshannon_matches_scipy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
