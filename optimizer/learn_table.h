/* learn_table: per (state key, action) values and visit counts.
 *
 * The storage behind the Q-table (value = Q) and the Thompson posteriors
 * (value = mean reward). A hash map from state key to a dense row of
 * ACTION_COUNT values, rows kept in insertion order so iteration, and with it
 * persistence, is deterministic. An entry that was never written reads as the
 * table's initial value with 0 visits, and is not iterated.
 *
 * Persistence is the caller's: iterate (state_key, action_name, value, visits)
 * with learn_table_iter_next and write them anywhere; read them back with
 * learn_table_load. Names, not ids, identify actions on the way out and in.
 */
#ifndef HIVE_LEARN_TABLE_H
#define HIVE_LEARN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "learn_action.h"
#include "state.h"

typedef struct learn_table_s learn_table_t;

typedef struct {
    char key[STATE_KEY_MAX];
    uint64_t hash;
    uint64_t known; /* bit per action id written at least once */
    double value[ACTION_COUNT];
    uint64_t visits[ACTION_COUNT];
} learn_table_row_t;

typedef struct {
    const char *state_key; /* borrowed from the table, valid until it changes */
    uint16_t action;
    const char *action_name; /* static storage */
    double value;
    uint64_t visits;
} learn_table_entry_t;

typedef struct {
    const learn_table_t *table;
    size_t row;
    unsigned action;
} learn_table_iter_t;

/* Creates an empty table whose unwritten entries read `initial_value`.
 * Free with learn_table_destroy. NULL on allocation failure. */
learn_table_t *learn_table_create(double initial_value);
/* Frees the table. Accepts NULL. */
void learn_table_destroy(learn_table_t *t);

/* The row of `key`, NULL when the state was never written. The pointer is
 * valid until the next learn_table_upsert or learn_table_load. */
const learn_table_row_t *learn_table_find(const learn_table_t *t, const char *key);

/* The row of `key`, created (every value initial, 0 visits) when absent. NULL
 * on allocation failure or a key of STATE_KEY_MAX bytes or more. Valid until
 * the next learn_table_upsert or learn_table_load. */
learn_table_row_t *learn_table_upsert(learn_table_t *t, const char *key);

/* The value of an entry, the initial value when never written. */
double learn_table_value(const learn_table_t *t, const char *key, uint16_t action);
/* The visits of an entry, 0 when never written. */
uint64_t learn_table_visits(const learn_table_t *t, const char *key, uint16_t action);

/* Writes an entry. Returns 0, -EINVAL (bad action or key) or -ENOMEM. */
int learn_table_set(learn_table_t *t, const char *key, uint16_t action, double value, uint64_t visits);

/* Writes an entry identified by action name, as read back from storage.
 * Returns 0, -ENOENT for an action no longer in the catalogue (skip it),
 * -EINVAL for a bad key or a non-finite value, -ENOMEM. */
int learn_table_load(learn_table_t *t, const char *state_key, const char *action_name, double value,
                     uint64_t visits);

/* Number of states (rows) and of written entries. */
size_t learn_table_state_count(const learn_table_t *t);
size_t learn_table_entry_count(const learn_table_t *t);

/* Iteration over written entries, rows in insertion order, actions by id:
 *   learn_table_iter_t it; learn_table_entry_t e;
 *   learn_table_iter_init(&it, t);
 *   while (learn_table_iter_next(&it, &e)) { ... }
 * The table must not change during the iteration. */
void learn_table_iter_init(learn_table_iter_t *it, const learn_table_t *t);
bool learn_table_iter_next(learn_table_iter_t *it, learn_table_entry_t *out);

#endif
