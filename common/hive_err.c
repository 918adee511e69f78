/* hive_err: names, messages and retry class of the codes in hive_err.h. */
#include "hive_err.h"

#include <stdarg.h>
#include <stdio.h>

typedef struct {
    int code;
    bool transient;
    const char *name, *msg;
} entry_t;

static const entry_t table[] = {
#define HIVE_ERR_ENTRY(name, value, transient, msg) {value, transient, "HIVE_" #name, msg},
    HIVE_ERRNO_MAP(HIVE_ERR_ENTRY)
#undef HIVE_ERR_ENTRY
};

static const entry_t *find(int code)
{
    for (unsigned i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].code == code) {
            return &table[i];
        }
    }
    return 0;
}

const char *hive_errname(int code)
{
    const entry_t *e = find(code);
    return code == 0 ? "OK" : e ? e->name : "HIVE_E?";
}

const char *hive_strerror(int code)
{
    const entry_t *e = find(code);
    return code == 0 ? "ok" : e ? e->msg : "unknown error";
}

bool hive_err_transient(int code)
{
    const entry_t *e = find(code);
    return e && e->transient;
}

int hive_err_set(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
