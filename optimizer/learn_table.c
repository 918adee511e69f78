/* learn_table: open-addressing hash map from state key to a dense row.
 * See learn_table.h. */
#include "learn_table.h"

#include "fnv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(ACTION_COUNT <= 64, "learn_table_row_t.known is a 64-bit mask");

struct learn_table_s {
    double initial;
    learn_table_row_t *rows; /* dense, insertion order */
    size_t nrows, rows_cap;
    uint32_t *slots; /* 0 = empty, else row index + 1; power-of-two size */
    size_t nslots;
};

static uint64_t hash_key(const char *key)
{
    return fnv1a64_str(FNV1A64_INIT, key);
}

learn_table_t *learn_table_create(double initial_value)
{
    learn_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->initial = initial_value;
    t->nslots = 64;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void learn_table_destroy(learn_table_t *t)
{
    if (t == NULL) {
        return;
    }
    free(t->rows);
    free(t->slots);
    free(t);
}

/* The slot holding `key`, or the empty slot where it would go. */
static size_t probe(const learn_table_t *t, const char *key, uint64_t h)
{
    size_t mask = t->nslots - 1;
    size_t i = (size_t)h & mask;
    while (t->slots[i] != 0) {
        const learn_table_row_t *r = &t->rows[t->slots[i] - 1];
        if (r->hash == h && strcmp(r->key, key) == 0) {
            break;
        }
        i = (i + 1) & mask;
    }
    return i;
}

const learn_table_row_t *learn_table_find(const learn_table_t *t, const char *key)
{
    size_t i = probe(t, key, hash_key(key));
    return t->slots[i] ? &t->rows[t->slots[i] - 1] : NULL;
}

static int grow_slots(learn_table_t *t)
{
    size_t n = t->nslots * 2;
    uint32_t *slots = calloc(n, sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        size_t i = (size_t)t->rows[r].hash & (n - 1);
        while (slots[i] != 0) {
            i = (i + 1) & (n - 1);
        }
        slots[i] = (uint32_t)(r + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    return 0;
}

learn_table_row_t *learn_table_upsert(learn_table_t *t, const char *key)
{
    if (key == NULL || strnlen(key, STATE_KEY_MAX) >= STATE_KEY_MAX) {
        return NULL;
    }
    uint64_t h = hash_key(key);
    size_t i = probe(t, key, h);
    if (t->slots[i] != 0) {
        return &t->rows[t->slots[i] - 1];
    }
    /* Keep the load factor under 1/2 so probes stay short. */
    if ((t->nrows + 1) * 2 > t->nslots) {
        if (grow_slots(t) < 0) {
            return NULL;
        }
        i = probe(t, key, h);
    }
    if (t->nrows == t->rows_cap) {
        size_t cap = t->rows_cap ? t->rows_cap * 2 : 16;
        learn_table_row_t *rows = realloc(t->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            return NULL;
        }
        t->rows = rows;
        t->rows_cap = cap;
    }
    learn_table_row_t *r = &t->rows[t->nrows];
    memset(r, 0, sizeof(*r));
    memcpy(r->key, key, strlen(key) + 1);
    r->hash = h;
    for (size_t a = 0; a < ACTION_COUNT; a++) {
        r->value[a] = t->initial;
    }
    t->slots[i] = (uint32_t)(++t->nrows);
    return r;
}

double learn_table_value(const learn_table_t *t, const char *key, uint16_t action)
{
    const learn_table_row_t *r = learn_table_find(t, key);
    return r != NULL && action < ACTION_COUNT ? r->value[action] : t->initial;
}

uint64_t learn_table_visits(const learn_table_t *t, const char *key, uint16_t action)
{
    const learn_table_row_t *r = learn_table_find(t, key);
    return r != NULL && action < ACTION_COUNT ? r->visits[action] : 0;
}

int learn_table_set(learn_table_t *t, const char *key, uint16_t action, double value, uint64_t visits)
{
    if (action >= ACTION_COUNT || key == NULL || key[0] == '\0') {
        return -EINVAL;
    }
    if (strnlen(key, STATE_KEY_MAX) >= STATE_KEY_MAX) {
        return -EINVAL;
    }
    learn_table_row_t *r = learn_table_upsert(t, key);
    if (r == NULL) {
        return -ENOMEM;
    }
    r->value[action] = value;
    r->visits[action] = visits;
    r->known |= 1ULL << action;
    return 0;
}

int learn_table_load(learn_table_t *t, const char *state_key, const char *action_name, double value,
                     uint64_t visits)
{
    uint16_t id;
    if (!isfinite(value)) {
        return -EINVAL;
    }
    if (learn_action_find(action_name, &id) < 0) {
        return -ENOENT;
    }
    return learn_table_set(t, state_key, id, value, visits);
}

size_t learn_table_state_count(const learn_table_t *t)
{
    return t->nrows;
}

size_t learn_table_entry_count(const learn_table_t *t)
{
    size_t n = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        n += (size_t)__builtin_popcountll(t->rows[r].known);
    }
    return n;
}

void learn_table_iter_init(learn_table_iter_t *it, const learn_table_t *t)
{
    it->table = t;
    it->row = 0;
    it->action = 0;
}

bool learn_table_iter_next(learn_table_iter_t *it, learn_table_entry_t *out)
{
    const learn_table_t *t = it->table;
    while (it->row < t->nrows) {
        const learn_table_row_t *r = &t->rows[it->row];
        while (it->action < ACTION_COUNT) {
            unsigned a = it->action++;
            if (r->known & (1ULL << a)) {
                out->state_key = r->key;
                out->action = (uint16_t)a;
                out->action_name = learn_action_get((uint16_t)a)->name;
                out->value = r->value[a];
                out->visits = r->visits[a];
                return true;
            }
        }
        it->row++;
        it->action = 0;
    }
    return false;
}
