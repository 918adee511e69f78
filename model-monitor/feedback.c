/* feedback: reads the ratings of one specialist. See feedback.h. */
#include "feedback.h"

#include <bson/bson.h>

typedef struct {
    feedback_stats_t st;
    uint64_t skipped;
} acc_t;

static int each(void *arg, const bson_t *doc)
{
    acc_t *a = arg;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "rating") || !BSON_ITER_HOLDS_NUMBER(&it) ||
        feedback_stats_add(&a->st, bson_iter_as_double(&it)) != 0) {
        a->skipped++;
    }
    return 0;
}

int feedback_fetch(store_t *store, const char *collection, const char *specialist, int64_t since_ms,
                   int64_t until_ms, feedback_stats_t *out, uint64_t *out_skipped)
{
    bson_t filter = BSON_INITIALIZER, range;
    BSON_APPEND_UTF8(&filter, "specialist_type", specialist);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "created_at", &range);
    BSON_APPEND_DATE_TIME(&range, "$gte", since_ms);
    BSON_APPEND_DATE_TIME(&range, "$lt", until_ms);
    bson_append_document_end(&filter, &range);
    bson_t opts = BSON_INITIALIZER, proj;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "rating", 1);
    bson_append_document_end(&opts, &proj);
    acc_t a = {0};
    int rc = store_find(store, collection, &filter, &opts, each, &a);
    bson_destroy(&filter);
    bson_destroy(&opts);
    if (rc == 0) {
        *out = a.st;
        if (out_skipped) {
            *out_skipped = a.skipped;
        }
    }
    return rc;
}
