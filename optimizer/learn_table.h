/* learn_table: per (state key, action) values and visit counts.
 *
 * The storage behind the Q-table (value = Q) and the Thompson posteriors
 * (value = mean reward). A hash map from state key to a dense row of
 * ACTION_COUNT values, rows kept in insertion order so iteration, and with it
 * persistence, is deterministic. An entry that was never written reads as the
 * table's initial value with 0 visits, and is not iterated.
 *
 * Persistence is the caller's: iterate (state_key, action_name, value, visits)
 * with table_iter_next and write them anywhere; read them back with
 * table_load. Names, not ids, identify actions on the way out and in.
 */
#ifndef HIVE_LEARN_TABLE_H
#define HIVE_LEARN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "learn_action.h"
#include "state.h"

typedef struct table_s table_t;

typedef struct {
    char key[STATE_KEY_MAX];
    uint64_t hash;
    uint64_t known; /* bit per action id written at least once */
    double value[ACTION_COUNT];
    uint64_t visits[ACTION_COUNT];
} table_row_t;

typedef struct {
    const char *state_key; /* borrowed from the table, valid until it changes */
    uint16_t action;
    const char *action_name; /* static storage */
    double value;
    uint64_t visits;
} table_entry_t;

typedef struct {
    const table_t *table;
    size_t row;
    unsigned action;
} table_iter_t;

/* Creates an empty table whose unwritten entries read `initial_value`.
 * Free with table_destroy. NULL on allocation failure. */
table_t *table_create(double initial_value);
/* Frees the table. Accepts NULL. */
void table_destroy(table_t *t);

/* The row of `key`, NULL when the state was never written. The pointer is
 * valid until the next table_upsert or table_load. */
const table_row_t *table_find(const table_t *t, const char *key);

/* The row of `key`, created (every value initial, 0 visits) when absent. NULL
 * on allocation failure or a key of STATE_KEY_MAX bytes or more. Valid until
 * the next table_upsert or table_load. */
table_row_t *table_upsert(table_t *t, const char *key);

/* The value of an entry, the initial value when never written. */
double table_value(const table_t *t, const char *key, uint16_t action);
/* The visits of an entry, 0 when never written. */
uint64_t table_visits(const table_t *t, const char *key, uint16_t action);

/* Writes an entry. Returns 0, -EINVAL (bad action or key) or -ENOMEM. */
int table_set(table_t *t, const char *key, uint16_t action, double value, uint64_t visits);

/* Writes an entry identified by action name, as read back from storage.
 * Returns 0, -ENOENT for an action no longer in the catalogue (skip it),
 * -EINVAL for a bad key or a non-finite value, -ENOMEM. */
int table_load(table_t *t, const char *state_key, const char *action_name, double value, uint64_t visits);

/* Number of states (rows) and of written entries. */
size_t table_state_count(const table_t *t);
size_t table_entry_count(const table_t *t);

/* Iteration over written entries, rows in insertion order, actions by id:
 *   table_iter_t it; table_entry_t e;
 *   table_iter_init(&it, t);
 *   while (table_iter_next(&it, &e)) { ... }
 * The table must not change during the iteration. */
void table_iter_init(table_iter_t *it, const table_t *t);
bool table_iter_next(table_iter_t *it, table_entry_t *out);

#endif
