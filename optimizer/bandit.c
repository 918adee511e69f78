/* bandit: Thompson sampling and disjoint LinUCB. See bandit.h. */
#include "bandit.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn_action.h"

#define D BANDIT_DIM

typedef struct {
    double A[D * D];
    double Ainv[D * D];
    double b[D];
    uint64_t n;
} linucb_arm_t;

/* The normal cdf tabulated on [-PHI_SPAN, PHI_SPAN] every 1/PHI_STEPS, with
 * the pdf as its derivative: cubic Hermite interpolation between two nodes
 * is within 1e-9 of erfc's value and costs a few multiplications. */
#define PHI_SPAN 8
#define PHI_STEPS 32
#define PHI_NODES (2 * PHI_SPAN * PHI_STEPS + 1)

typedef struct {
    double cdf[PHI_NODES], pdf[PHI_NODES];
} phi_table_t;

struct bandit_s {
    bandit_kind_t kind;
    bandit_config_t cfg;
    learn_table_t *table; /* Thompson */
    phi_table_t *phi;     /* Thompson */
    linucb_arm_t *arms;   /* LinUCB, ACTION_COUNT of them */
};

static void phi_table_fill(phi_table_t *t)
{
    for (int i = 0; i < PHI_NODES; i++) {
        double z = (double)(i - PHI_SPAN * PHI_STEPS) / PHI_STEPS;
        t->cdf[i] = 0.5 * erfc(-z * M_SQRT1_2);
        t->pdf[i] = exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
    }
}

void bandit_config_default(bandit_config_t *cfg)
{
    cfg->noise_sd = 0.1;
    cfg->prior_mean = 0.0;
    cfg->prior_sd = 0.1;
    cfg->propensity_draws = 256;
    cfg->alpha = 0.1;
    cfg->ridge = 1.0;
}

const char *bandit_config_check(const bandit_config_t *cfg)
{
    if (!(cfg->noise_sd > 0.0) || !isfinite(cfg->noise_sd)) {
        return "noise_sd must be a finite number > 0";
    }
    if (!isfinite(cfg->prior_mean)) {
        return "prior_mean must be finite";
    }
    if (!(cfg->prior_sd > 0.0) || !isfinite(cfg->prior_sd)) {
        return "prior_sd must be a finite number > 0";
    }
    if (cfg->propensity_draws < 1 || cfg->propensity_draws > 100000) {
        return "propensity_draws must be in [1, 100000]";
    }
    if (!(cfg->alpha >= 0.0) || !isfinite(cfg->alpha)) {
        return "alpha must be a finite number >= 0";
    }
    if (!(cfg->ridge > 0.0) || !isfinite(cfg->ridge)) {
        return "ridge must be a finite number > 0";
    }
    return NULL;
}

static void arm_reset(linucb_arm_t *arm, double ridge)
{
    memset(arm, 0, sizeof(*arm));
    for (int i = 0; i < D; i++) {
        arm->A[i * D + i] = ridge;
        arm->Ainv[i * D + i] = 1.0 / ridge;
    }
}

bandit_t *bandit_create(bandit_kind_t kind, const bandit_config_t *cfg)
{
    if (cfg == NULL || bandit_config_check(cfg) != NULL ||
        (kind != BANDIT_THOMPSON && kind != BANDIT_LINUCB)) {
        return NULL;
    }
    bandit_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->kind = kind;
    b->cfg = *cfg;
    if (kind == BANDIT_THOMPSON) {
        b->table = learn_table_create(0.0);
        b->phi = malloc(sizeof(*b->phi));
        if (b->table == NULL || b->phi == NULL) {
            goto fail;
        }
        phi_table_fill(b->phi);
    } else {
        b->arms = malloc(ACTION_COUNT * sizeof(*b->arms));
        if (b->arms == NULL) {
            goto fail;
        }
        for (size_t a = 0; a < ACTION_COUNT; a++) {
            arm_reset(&b->arms[a], cfg->ridge);
        }
    }
    return b;
fail:
    bandit_destroy(b);
    return NULL;
}

void bandit_destroy(bandit_t *b)
{
    if (b == NULL) {
        return;
    }
    learn_table_destroy(b->table);
    free(b->phi);
    free(b->arms);
    free(b);
}

bandit_kind_t bandit_kind(const bandit_t *b)
{
    return b->kind;
}

static int actions_valid(const uint16_t *actions, size_t n)
{
    if (actions == NULL || n == 0 || n > ACTION_COUNT) {
        return 0;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (actions[i] >= ACTION_COUNT || (seen & (1ULL << actions[i]))) {
            return 0;
        }
        seen |= 1ULL << actions[i];
    }
    return 1;
}

/* ---- Thompson ---------------------------------------------------------- */

typedef struct {
    double mean, sd;
    uint64_t visits;
} posterior_t;

static posterior_t posterior_of(const bandit_t *b, const learn_table_row_t *row, uint16_t action)
{
    const bandit_config_t *c = &b->cfg;
    uint64_t n = row != NULL ? row->visits[action] : 0;
    double m = row != NULL ? row->value[action] : 0.0;
    double prior_prec = 1.0 / (c->prior_sd * c->prior_sd);
    double noise_prec = 1.0 / (c->noise_sd * c->noise_sd);
    double prec = prior_prec + (double)n * noise_prec;
    posterior_t p = {
        .mean = (c->prior_mean * prior_prec + (double)n * m * noise_prec) / prec,
        .sd = 1.0 / sqrt(prec),
        .visits = n,
    };
    return p;
}

/* One round of sampling: the index of the largest draw. */
static size_t thompson_round(const posterior_t *post, size_t n, learn_rng_t *rng, double *out_draw)
{
    size_t best = 0;
    double best_v = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = post[i].mean + post[i].sd * learn_rng_gaussian(rng);
        if (v > best_v) {
            best_v = v;
            best = i;
        }
    }
    if (out_draw != NULL) {
        *out_draw = best_v;
    }
    return best;
}

/* Tails beyond this many sds are treated as empty (mass < 1e-9). */
#define WIN_TAIL 6.0
/* Widest quadrature piece, in sds of the steepest factor over it. */
#define WIN_PIECE 2.0
/* Most pieces in one panel. */
#define WIN_PIECES_MAX 64

/* 20-point Gauss-Hermite for the weight exp(-z^2 / 2) (probabilists'):
 * positive nodes and their weights, the rule being symmetric. */
#define GH_HALF 10
/* The rule is used when no factor is steeper than this (a_j <= 0.4). */
#define GH_SMOOTH 0.4
static const double gh_x[GH_HALF] = {
    0.34696415708135592, 1.0429453488027509, 1.7452473208141268, 2.4586636111723679, 3.1890148165533896,
    3.9439673506573163,  4.7345813340460552, 5.5787388058932015, 6.5105901570136542, 7.6190485416797582};
static const double gh_w[GH_HALF] = {0.65371126667029045,   0.40542038768428112,    0.15417361128553891,
                                     0.035087375128591974,  0.0045873882538570859,  0.00032291959586810135,
                                     1.103448119312213e-05, 1.5359340338199267e-07, 6.2216076967766433e-10,
                                     3.1528387293827914e-13};

/* 8-point Gauss-Legendre on [-1, 1]: nodes (positive half) and weights. */
static const double gl_x[4] = {0.1834346424956498, 0.5255324099163290, 0.7966664774136267,
                               0.9602898564975363};
static const double gl_w[4] = {0.3626837833783620, 0.3137066458778873, 0.2223810344533745,
                               0.1012285362903763};

typedef struct {
    double a, b;   /* Phi_j in k's units: Phi(a z + b) */
    double lo, hi; /* where it moves from 0 to 1 (|a z + b| < WIN_TAIL) */
} win_factor_t;

/* Multiplies v[0..m) by Phi(a z[i] + b), the factor of one other arm, from
 * the table without branches (clamped to its ends), so the loop over the
 * nodes of a panel runs straight. */
static void win_factor_apply(const phi_table_t *t, const win_factor_t *f, const double *z, double *v,
                             size_t m)
{
    const double h = 1.0 / PHI_STEPS, top = (double)(PHI_NODES - 1) - 1e-9;
    for (size_t i = 0; i < m; i++) {
        double u = ((f->a * z[i] + f->b) + PHI_SPAN) * PHI_STEPS;
        u = u < 0.0 ? 0.0 : (u > top ? top : u);
        int j = (int)u;
        double s = u - (double)j, s2 = s * s, s3 = s2 * s;
        v[i] *= (2 * s3 - 3 * s2 + 1) * t->cdf[j] + (s3 - 2 * s2 + s) * h * t->pdf[j] +
                (-2 * s3 + 3 * s2) * t->cdf[j + 1] + (s3 - s2) * h * t->pdf[j + 1];
    }
}

/* P(the draw of arm k is the largest), by quadrature over arm k's posterior
 * in its own units z = (x - mean_k) / sd_k:
 *
 *   P(k) = integral phi(z) prod_{j != k} Phi(a_j z + b_j) dz,
 *   a_j = sd_k / sd_j, b_j = (mean_k - mean_j) / sd_j,
 *
 * over [-6, 6], narrowed to where no factor is 0. Each other arm's factor
 * moves from 0 to 1 over its own zone (|a_j z + b_j| < 6); arms whose zone is
 * below the window are 1 and skipped, an arm whose zone is above it makes
 * P(k) 0. The window is cut at the ends of the zones steeper than phi, and
 * each panel into pieces no wider than 2 sds of the steepest factor over it
 * (and of phi), each integrated by 8-point Gauss-Legendre: a narrow arm's
 * step costs points where it is, not everywhere. Phi comes from a table
 * (phi_cdf, within 1e-9). Absolute error below 1e-6 (test_bandit checks it
 * against the two-arm closed form and against sampling).
 * Deterministic, and unbiased unlike a smoothed resampled frequency. */
static double thompson_win_probability(const phi_table_t *t, const posterior_t *post, size_t n, size_t k)
{
    win_factor_t f[ACTION_COUNT];
    size_t nf = 0;
    double lo = -WIN_TAIL, hi = WIN_TAIL;
    for (size_t j = 0; j < n; j++) {
        if (j == k) {
            continue;
        }
        win_factor_t w = {.a = post[k].sd / post[j].sd, .b = (post[k].mean - post[j].mean) / post[j].sd};
        w.lo = (-WIN_TAIL - w.b) / w.a;
        w.hi = (WIN_TAIL - w.b) / w.a;
        if (w.hi <= -WIN_TAIL) {
            continue; /* certainly below k: 1 over the window */
        }
        if (w.lo >= WIN_TAIL) {
            return 0.0; /* certainly above k: k never wins */
        }
        lo = fmax(lo, w.lo);
        f[nf++] = w;
    }
    if (!(hi > lo)) {
        return 0.0;
    }
    bool steep = false;
    for (size_t i = 0; i < nf && !steep; i++) {
        steep = f[i].a > GH_SMOOTH;
    }
    if (!steep) {
        /* Every factor is much smoother than phi: Gauss-Hermite over the
         * whole line (within 1e-8 of the piecewise rule, even for 40 equal
         * factors). */
        double z[2 * GH_HALF], v[2 * GH_HALF];
        for (size_t g = 0; g < GH_HALF; g++) {
            z[2 * g] = -gh_x[g];
            z[2 * g + 1] = gh_x[g];
            v[2 * g] = v[2 * g + 1] = gh_w[g];
        }
        for (size_t i = 0; i < nf; i++) {
            win_factor_apply(t, &f[i], z, v, 2 * GH_HALF);
        }
        double sum = 0.0;
        for (size_t g = 0; g < 2 * GH_HALF; g++) {
            sum += v[g];
        }
        double prob = sum / sqrt(2.0 * M_PI);
        return prob < 0.0 ? 0.0 : (prob > 1.0 ? 1.0 : prob);
    }
    /* Panel ends: the window's and every zone's inside it, sorted. */
    double cut[2 * ACTION_COUNT + 2];
    size_t nc = 0;
    cut[nc++] = lo;
    cut[nc++] = hi;
    for (size_t i = 0; i < nf; i++) {
        if (f[i].a <= 1.0) {
            continue; /* no steeper than phi: smooth over the pieces as they are */
        }
        const double ends[2] = {f[i].lo, f[i].hi};
        for (int e = 0; e < 2; e++) {
            if (ends[e] > lo && ends[e] < hi) {
                size_t at = nc++;
                while (at > 0 && cut[at - 1] > ends[e]) {
                    cut[at] = cut[at - 1];
                    at--;
                }
                cut[at] = ends[e];
            }
        }
    }
    double sum = 0.0;
    double z[WIN_PIECES_MAX * 8], v[WIN_PIECES_MAX * 8];
    for (size_t c = 0; c + 1 < nc; c++) {
        double p = cut[c], q = cut[c + 1];
        if (!(q > p)) {
            continue;
        }
        double scale = 1.0; /* the narrowest feature over [p, q]: phi's, or a moving factor's */
        for (size_t i = 0; i < nf; i++) {
            if (f[i].lo < q && f[i].hi > p) {
                scale = fmin(scale, 1.0 / f[i].a);
            }
        }
        double want = ceil((q - p) / (WIN_PIECE * scale));
        size_t pieces = want < 1.0 ? 1 : (want > WIN_PIECES_MAX ? WIN_PIECES_MAX : (size_t)want);
        double h = (q - p) / (double)pieces, half = 0.5 * h;
        size_t m = 0;
        for (size_t piece = 0; piece < pieces; piece++) {
            double mid = p + h * ((double)piece + 0.5);
            for (int g = 0; g < 4; g++) {
                z[m] = mid - half * gl_x[g];
                v[m++] = gl_w[g] * half;
                z[m] = mid + half * gl_x[g];
                v[m++] = gl_w[g] * half;
            }
        }
        for (size_t i = 0; i < m; i++) {
            v[i] *= exp(-0.5 * z[i] * z[i]);
        }
        for (size_t i = 0; i < nf; i++) {
            if (f[i].hi > p) { /* at and above its zone the factor is 1 */
                win_factor_apply(t, &f[i], z, v, m);
            }
        }
        for (size_t i = 0; i < m; i++) {
            sum += v[i];
        }
    }
    double prob = sum / sqrt(2.0 * M_PI);
    return prob < 0.0 ? 0.0 : (prob > 1.0 ? 1.0 : prob);
}

/* Every action's probability of winning a round. */
static void thompson_probabilities(const bandit_t *b, const posterior_t *post, size_t n, double *probs)
{
    for (size_t i = 0; i < n; i++) {
        probs[i] = thompson_win_probability(b->phi, post, n, i);
    }
}

static void thompson_posteriors(const bandit_t *b, const state_t *s, const uint16_t *actions, size_t n,
                                posterior_t *post)
{
    const learn_table_row_t *row = learn_table_find(b->table, s->key);
    for (size_t i = 0; i < n; i++) {
        post[i] = posterior_of(b, row, actions[i]);
    }
}

/* ---- LinUCB ------------------------------------------------------------ */

static double quad_form(const double *M, const double *x)
{
    double s = 0.0;
    for (int i = 0; i < D; i++) {
        double r = 0.0;
        for (int j = 0; j < D; j++) {
            r += M[i * D + j] * x[j];
        }
        s += x[i] * r;
    }
    return s;
}

/* theta . x = (A^-1 b) . x = b . (A^-1 x), A^-1 being symmetric. */
static void linucb_score(const linucb_arm_t *arm, const double *x, double *out_mean, double *out_width)
{
    double mean = 0.0;
    for (int i = 0; i < D; i++) {
        double r = 0.0;
        for (int j = 0; j < D; j++) {
            r += arm->Ainv[i * D + j] * x[j];
        }
        mean += arm->b[i] * r;
    }
    double q = quad_form(arm->Ainv, x);
    *out_mean = mean;
    *out_width = sqrt(q > 0.0 ? q : 0.0);
}

static size_t linucb_scores(const bandit_t *b, const state_t *s, const uint16_t *actions, size_t n,
                            double *ucb, double *mean, double *width, double *out_best)
{
    double x[D];
    state_features(s, x);
    double best = -INFINITY;
    size_t ties = 0;
    for (size_t i = 0; i < n; i++) {
        linucb_score(&b->arms[actions[i]], x, &mean[i], &width[i]);
        ucb[i] = mean[i] + b->cfg.alpha * width[i];
        if (ucb[i] > best) {
            best = ucb[i];
            ties = 1;
        } else if (ucb[i] == best) {
            ties++;
        }
    }
    *out_best = best;
    return ties;
}

/* Inverts the D x D matrix M into out by Gauss-Jordan elimination with partial
 * pivoting. Returns -EINVAL when M is (numerically) singular. */
static int invert(const double *M, double *out)
{
    double a[D][2 * D];
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++) {
            a[i][j] = M[i * D + j];
            a[i][D + j] = i == j ? 1.0 : 0.0;
        }
    }
    for (int c = 0; c < D; c++) {
        int p = c;
        for (int r = c + 1; r < D; r++) {
            if (fabs(a[r][c]) > fabs(a[p][c])) {
                p = r;
            }
        }
        if (!(fabs(a[p][c]) > 1e-12)) {
            return -EINVAL;
        }
        if (p != c) {
            for (int j = 0; j < 2 * D; j++) {
                double t = a[c][j];
                a[c][j] = a[p][j];
                a[p][j] = t;
            }
        }
        double inv = 1.0 / a[c][c];
        for (int j = 0; j < 2 * D; j++) {
            a[c][j] *= inv;
        }
        for (int r = 0; r < D; r++) {
            if (r != c && a[r][c] != 0.0) {
                double f = a[r][c];
                for (int j = 0; j < 2 * D; j++) {
                    a[r][j] -= f * a[c][j];
                }
            }
        }
    }
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++) {
            out[i * D + j] = a[i][D + j];
        }
    }
    return 0;
}

/* ---- the common interface ---------------------------------------------- */

int bandit_choose(bandit_t *b, const state_t *s, const uint16_t *actions, size_t n, learn_rng_t *rng,
                  learn_decision_t *out)
{
    if (b == NULL || s == NULL || rng == NULL || out == NULL || !actions_valid(actions, n)) {
        return -EINVAL;
    }
    learn_decision_t d = {.n_actions = n};
    size_t pick;
    if (b->kind == BANDIT_THOMPSON) {
        posterior_t post[ACTION_COUNT];
        thompson_posteriors(b, s, actions, n, post);
        pick = thompson_round(post, n, rng, &d.score);
        d.propensity = thompson_win_probability(b->phi, post, n, pick); /* the chosen arm's only */
        d.value = post[pick].mean;
        d.confidence = 1.0 - post[pick].sd / b->cfg.prior_sd;
        d.visits = post[pick].visits;
    } else {
        double ucb[ACTION_COUNT], mean[ACTION_COUNT], width[ACTION_COUNT], best;
        size_t ties = linucb_scores(b, s, actions, n, ucb, mean, width, &best);
        size_t k = (size_t)learn_rng_below(rng, ties);
        for (pick = 0; pick < n; pick++) {
            if (ucb[pick] == best && k-- == 0) {
                break;
            }
        }
        double x[D], xx = 0.0;
        state_features(s, x);
        for (int i = 0; i < D; i++) {
            xx += x[i] * x[i];
        }
        d.propensity = 1.0 / (double)ties;
        d.score = ucb[pick];
        d.value = mean[pick];
        d.confidence = 1.0 - width[pick] / sqrt(xx / b->cfg.ridge);
        d.visits = b->arms[actions[pick]].n;
    }
    const learn_action_t *a = learn_action_get(actions[pick]);
    d.action = a->id;
    d.action_name = a->name;
    d.risk = a->risk;
    d.expected_improvement = a->expected_improvement;
    if (d.confidence < 0.0) {
        d.confidence = 0.0;
    }
    *out = d;
    return 0;
}

int bandit_probabilities(const bandit_t *b, const state_t *s, const uint16_t *actions, size_t n,
                         learn_rng_t *rng, double *out_probs)
{
    if (b == NULL || s == NULL || out_probs == NULL || !actions_valid(actions, n)) {
        return -EINVAL;
    }
    (void)rng;
    if (b->kind == BANDIT_THOMPSON) {
        posterior_t post[ACTION_COUNT];
        thompson_posteriors(b, s, actions, n, post);
        thompson_probabilities(b, post, n, out_probs);
        return 0;
    }
    double ucb[ACTION_COUNT], mean[ACTION_COUNT], width[ACTION_COUNT], best;
    size_t ties = linucb_scores(b, s, actions, n, ucb, mean, width, &best);
    for (size_t i = 0; i < n; i++) {
        out_probs[i] = ucb[i] == best ? 1.0 / (double)ties : 0.0;
    }
    return 0;
}

int bandit_update(bandit_t *b, const state_t *s, uint16_t action, double reward)
{
    if (b == NULL || s == NULL || action >= ACTION_COUNT || !isfinite(reward)) {
        return -EINVAL;
    }
    if (b->kind == BANDIT_THOMPSON) {
        learn_table_row_t *row = learn_table_upsert(b->table, s->key);
        if (row == NULL) {
            return -ENOMEM;
        }
        /* Running mean, so the table holds the sufficient statistics (m, n). */
        row->visits[action]++;
        row->value[action] += (reward - row->value[action]) / (double)row->visits[action];
        row->known |= 1ULL << action;
        return 0;
    }
    linucb_arm_t *arm = &b->arms[action];
    double x[D], u[D];
    state_features(s, x);
    for (int i = 0; i < D; i++) {
        double r = 0.0;
        for (int j = 0; j < D; j++) {
            arm->A[i * D + j] += x[i] * x[j];
            r += arm->Ainv[i * D + j] * x[j];
        }
        u[i] = r;
        arm->b[i] += reward * x[i];
    }
    /* Sherman-Morrison: (A + x x^T)^-1 = A^-1 - (A^-1 x)(x^T A^-1) / (1 + x^T A^-1 x). */
    double denom = 1.0;
    for (int i = 0; i < D; i++) {
        denom += x[i] * u[i];
    }
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++) {
            arm->Ainv[i * D + j] -= u[i] * u[j] / denom;
        }
    }
    arm->n++;
    return 0;
}

int bandit_posterior(const bandit_t *b, const state_t *s, uint16_t action, double *out_mean, double *out_sd,
                     uint64_t *out_visits)
{
    if (b == NULL || s == NULL || b->kind != BANDIT_THOMPSON || action >= ACTION_COUNT) {
        return -EINVAL;
    }
    posterior_t p = posterior_of(b, learn_table_find(b->table, s->key), action);
    if (out_mean != NULL) {
        *out_mean = p.mean;
    }
    if (out_sd != NULL) {
        *out_sd = p.sd;
    }
    if (out_visits != NULL) {
        *out_visits = p.visits;
    }
    return 0;
}

const learn_table_t *bandit_table(const bandit_t *b)
{
    return b->kind == BANDIT_THOMPSON ? b->table : NULL;
}

int bandit_load(bandit_t *b, const char *state_key, const char *action_name, double mean, uint64_t visits)
{
    if (b == NULL || b->kind != BANDIT_THOMPSON) {
        return -EINVAL;
    }
    return learn_table_load(b->table, state_key, action_name, mean, visits);
}

int bandit_linucb_model(const bandit_t *b, uint16_t action, double *out_A, double *out_Ainv, double *out_b,
                        uint64_t *out_n)
{
    if (b == NULL || b->kind != BANDIT_LINUCB || action >= ACTION_COUNT) {
        return -EINVAL;
    }
    const linucb_arm_t *arm = &b->arms[action];
    if (out_A != NULL) {
        memcpy(out_A, arm->A, sizeof(arm->A));
    }
    if (out_Ainv != NULL) {
        memcpy(out_Ainv, arm->Ainv, sizeof(arm->Ainv));
    }
    if (out_b != NULL) {
        memcpy(out_b, arm->b, sizeof(arm->b));
    }
    if (out_n != NULL) {
        *out_n = arm->n;
    }
    return 0;
}

int bandit_linucb_load(bandit_t *b, uint16_t action, const double *A, const double *bvec, uint64_t n)
{
    if (b == NULL || b->kind != BANDIT_LINUCB || action >= ACTION_COUNT || A == NULL || bvec == NULL) {
        return -EINVAL;
    }
    for (int i = 0; i < D; i++) {
        if (!isfinite(bvec[i])) {
            return -EINVAL;
        }
        for (int j = 0; j < D; j++) {
            double aij = A[i * D + j], aji = A[j * D + i];
            if (!isfinite(aij) || fabs(aij - aji) > 1e-9 * (1.0 + fabs(aij))) {
                return -EINVAL;
            }
        }
    }
    linucb_arm_t arm;
    if (invert(A, arm.Ainv) < 0) {
        return -EINVAL;
    }
    memcpy(arm.A, A, sizeof(arm.A));
    memcpy(arm.b, bvec, sizeof(arm.b));
    arm.n = n;
    b->arms[action] = arm;
    return 0;
}
