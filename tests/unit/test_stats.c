/* Tests of experiment-manager/stats.c against reference values computed with
 * scipy 1.17 (scipy.stats.ttest_ind(b, a, equal_var=False), norm, chisquare)
 * on the same fixed data; agreement to 1e-9. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hive_err.h"
#include "stats.h"

#define CLOSE(x, y, tol) assert_true(fabs((x) - (y)) <= (tol))

static void welch(const double *a, size_t na, const double *b, size_t nb, stats_test_t *t)
{
    stats_sample_t sa = stats_summarise(a, na), sb = stats_summarise(b, nb);
    assert_int_equal(stats_welch(&sa, &sb, 0.05, t), 0);
}

static void test_welch_matches_scipy(void **state)
{
    (void)state;
    stats_test_t t;
    const double a1[] = {1, 2, 3, 4, 5}, b1[] = {2, 4, 6, 8, 10.5, 11};
    welch(a1, 5, b1, 6, &t);
    CLOSE(t.statistic, 2.4104148911330827, 1e-9);
    CLOSE(t.p_value, 0.04615127910393113, 1e-9);
    CLOSE(t.df, 7.123089186224047, 1e-9);

    const double a2[] = {1, 2}, b2[] = {3, 5}; /* samples of 2 */
    welch(a2, 2, b2, 2, &t);
    CLOSE(t.statistic, 2.23606797749979, 1e-9);
    CLOSE(t.p_value, 0.19872738893452602, 1e-9);
    CLOSE(t.df, 1.4705882352941178, 1e-9);

    const double a3[] = {1, 2, 3}, b3[] = {0, 2, 4}; /* equal means */
    welch(a3, 3, b3, 3, &t);
    CLOSE(t.statistic, 0, 1e-12);
    CLOSE(t.p_value, 1, 1e-9);
    CLOSE(t.df, 2.9411764705882346, 1e-9);

    const double a4[] = {5, 5, 5, 5}, b4[] = {4, 6, 5.5, 7}; /* zero variance on one side */
    welch(a4, 4, b4, 4, &t);
    CLOSE(t.statistic, 1, 1e-9);
    CLOSE(t.p_value, 0.3910022189557705, 1e-9);
    CLOSE(t.df, 3, 1e-9);

    const double a5[] = {0.1, 0.2, 0.15, 0.12}, b5[] = {10, 10.5, 9.8, 10.1}; /* tiny p */
    welch(a5, 4, b5, 4, &t);
    CLOSE(t.statistic, 66.92148869952052, 1e-7);
    CLOSE(t.p_value, 4.7847640874167895e-06, 1e-12);
    CLOSE(t.df, 3.130899176186671, 1e-9);
}

static void test_welch_larger_samples(void **state)
{
    (void)state;
    const double a[] = {100.018452, 104.481183, 95.887932,  86.641122,  93.179938,  85.125302,  100.902154,
                        120.103229, 92.616902,  90.692877,  107.347631, 105.353305, 101.581214, 86.042979,
                        99.561223,  110.429548, 79.836782,  93.135764,  71.481659,  80.656934,  72.373974,
                        96.473633,  80.988303,  104.068965, 102.351266, 97.196036,  62.248604,  91.919607,
                        99.272486,  101.699635, 77.047964,  92.833701,  85.322214,  87.867441,  115.913479,
                        87.88698,   99.512174,  113.265848, 91.245994,  98.324471};
    const double b[] = {94.761604,  93.594544,  61.373604,  93.903506,  125.970586, 53.321383,  113.484567,
                        94.983851,  75.96324,   142.010414, 111.056493, 62.017777,  93.862906,  106.41724,
                        87.280447,  109.072757, 90.337067,  108.681189, 127.963065, 75.108444,  97.078465,
                        80.417311,  95.18171,   62.320137,  77.51746,   87.095101,  114.469097, 120.63055,
                        58.911805,  72.133941,  108.172586, 42.189505,  80.420753,  89.567827,  123.425374,
                        109.235098, 83.819664,  82.785603,  85.745115,  130.088235, 81.299376,  84.40799,
                        100.814727, 88.980739,  87.067894,  64.148321,  91.711963,  80.910469,  121.153194,
                        108.327213, 91.39641,   108.709526, 83.503261,  118.303159, 91.865011};
    stats_test_t t;
    welch(a, 40, b, 55, &t);
    CLOSE(t.statistic, -0.2598949890817774, 1e-9);
    CLOSE(t.p_value, 0.7955414160633136, 1e-9);
    CLOSE(t.df, 89.54449891616711, 1e-9);
    assert_true(t.ci_low < t.diff && t.diff < t.ci_high);
}

static void test_welch_undefined(void **state)
{
    (void)state;
    stats_test_t t = {.p_value = 42};
    stats_sample_t one = {1, 3, 0}, two = {2, 1, 0.5}, flat = {5, 2, 0}, flat2 = {5, 3, 0};
    assert_int_equal(stats_welch(&one, &two, 0.05, &t), HIVE_EINVAL);    /* sample of 1 */
    assert_int_equal(stats_welch(&flat, &flat2, 0.05, &t), HIVE_EINVAL); /* zero variance on both */
    assert_true(t.p_value == 42);                                        /* untouched */
}

static void test_ztest_matches_reference(void **state)
{
    (void)state;
    stats_test_t t;
    assert_int_equal(stats_ztest_2prop(30, 1000, 45, 1000, 0.05, &t), 0);
    CLOSE(t.statistic, 1.7654696590094991, 1e-9);
    CLOSE(t.p_value, 0.0774848651326447, 1e-9);
    assert_int_equal(stats_ztest_2prop(5, 200, 0, 200, 0.05, &t), 0);
    CLOSE(t.statistic, -2.250175801852048, 1e-9);
    CLOSE(t.p_value, 0.024437787737852323, 1e-9);
    assert_int_equal(stats_ztest_2prop(120, 10000, 80, 9000, 0.05, &t), 0);
    CLOSE(t.p_value, 0.035899098445949996, 1e-9);
    /* All-zero rates and empty samples are undefined. */
    assert_int_equal(stats_ztest_2prop(0, 500, 0, 500, 0.05, &t), HIVE_EINVAL);
    assert_int_equal(stats_ztest_2prop(0, 0, 3, 10, 0.05, &t), HIVE_EINVAL);
}

static void test_quantiles_and_srm(void **state)
{
    (void)state;
    CLOSE(stats_t_quantile(0.975, 7.5), 2.333039626864974, 1e-9);
    CLOSE(stats_norm_quantile(0.975), 1.959963984540054, 1e-9);
    CLOSE(stats_norm_quantile(1e-5), -4.264890793922825, 1e-9);
    double p;
    const double c1[] = {5100, 4900}, f1[] = {0.5, 0.5};
    assert_int_equal(stats_srm(c1, f1, 2, &p), 0);
    CLOSE(p, 0.04550026389635857, 1e-9);
    const double c2[] = {900, 180}, f2[] = {0.9, 0.1};
    assert_int_equal(stats_srm(c2, f2, 2, &p), 0);
    CLOSE(p, 2.8148933417503763e-13, 1e-15);
    const double c3[] = {30, 40, 50}, f3[] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    assert_int_equal(stats_srm(c3, f3, 3, &p), 0);
    CLOSE(p, 0.0820849986238988, 1e-9);
}

static void test_msprt_is_monotone_and_conservative(void **state)
{
    (void)state;
    /* No effect: the p-value stays near 1; a clear effect drives it to 0. */
    double p0 = stats_msprt(1, 0, 0.01, 0.1);
    assert_true(p0 == 1);
    double p1 = stats_msprt(1, 0.5, 0.01, 0.1);
    assert_true(p1 < 0.01); /* z = 5: Lambda = exp(5.9) */
    /* Never increases. */
    assert_true(stats_msprt(p1, 0, 0.01, 0.1) == p1);
    /* The same evidence is weaker always-valid than fixed-horizon. */
    stats_test_t t = {.diff = 0.2, .se = 0.1};
    double fixed = erfc(fabs(t.diff / t.se) / M_SQRT2);
    assert_true(stats_msprt(1, t.diff, t.se * t.se, 0.1) > fixed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_welch_matches_scipy), cmocka_unit_test(test_welch_larger_samples),
        cmocka_unit_test(test_welch_undefined),     cmocka_unit_test(test_ztest_matches_reference),
        cmocka_unit_test(test_quantiles_and_srm),   cmocka_unit_test(test_msprt_is_monotone_and_conservative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
