#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char service_name[64] = "hive";
static log_level_t min_level = LOG_INFO;
static FILE *out_stream;

static const char *level_names[] = {
#define X(name, str) str,
    LOG_LEVEL_MAP(X)
#undef X
};

void log_init(const char *service, log_level_t level)
{
    snprintf(service_name, sizeof(service_name), "%s", service ? service : "hive");
    min_level = level;
}

int log_level_parse(const char *s, log_level_t *out_level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out_level = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(log_level_t level)
{
    return (unsigned)level < sizeof(level_names) / sizeof(level_names[0]) ? level_names[level] : "?";
}

void log_set_stream(FILE *stream)
{
    out_stream = stream;
}

/* A fixed-size line builder: a line that would overflow is cut, never split. */
typedef struct {
    char buf[4096];
    size_t len;
} line_t;

static void put_raw(line_t *l, const char *s, size_t n)
{
    if (l->len + n >= sizeof(l->buf) - 2) {
        n = sizeof(l->buf) - 2 - l->len;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line_t *l, const char *s)
{
    put_raw(l, s, strlen(s));
}

static void put_json_string(line_t *l, const char *s)
{
    put_raw(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"':
            put_raw(l, "\\\"", 2);
            break;
        case '\\':
            put_raw(l, "\\\\", 2);
            break;
        case '\n':
            put_raw(l, "\\n", 2);
            break;
        case '\r':
            put_raw(l, "\\r", 2);
            break;
        case '\t':
            put_raw(l, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                put_str(l, esc);
            } else {
                put_raw(l, (const char *)p, 1);
            }
        }
    }
    put_raw(l, "\"", 1);
}

/* Appends ,"key":"value" only if it fits whole, so a long line stays valid JSON. */
static void put_field(line_t *l, const char *key, const char *value)
{
    line_t f = {.len = 0};
    put_raw(&f, ",", 1);
    put_json_string(&f, key);
    put_raw(&f, ":", 1);
    if (value) {
        put_json_string(&f, value);
    } else {
        put_str(&f, "null");
    }
    if (f.len < sizeof(f.buf) - 2 && l->len + f.len < sizeof(l->buf) - 2) {
        put_raw(l, f.buf, f.len);
    }
}

void log_event(log_level_t level, const char *msg, ...)
{
    if (level < min_level) {
        return;
    }
    line_t l = {.len = 0};
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

    put_str(&l, "{\"ts\":");
    put_json_string(&l, when);
    put_field(&l, "level", log_level_name(level));
    put_field(&l, "service", service_name);
    put_field(&l, "msg", msg ? msg : "");

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key) {
            break;
        }
        put_field(&l, key, va_arg(ap, const char *));
    }
    va_end(ap);
    memcpy(l.buf + l.len, "}\n", 2); /* put_raw always leaves these two bytes free */
    l.len += 2;

    FILE *f = out_stream ? out_stream : stdout;
    if (f == stdout) {
        ssize_t w = write(STDOUT_FILENO, l.buf, l.len);
        (void)w;
    } else {
        fwrite(l.buf, 1, l.len, f);
        fflush(f);
    }
}
