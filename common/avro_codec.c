#include "avro_codec.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_defaults.h"
#include "avro_wire.h"
#include "log.h"

#define FRAME_HEADER 5 /* magic byte 0 + 4-byte big-endian schema id */

/* A current embedded schema: what services write, and read into. */
typedef struct {
    const char *name; /* from hive_schemas[], static */
    const char *json;
    int32_t local_id;
    avro_schema_t schema;
    avro_value_iface_t *iface; /* generic values of `schema` */
} reader_t;

/* A schema records may have been written with, by id. */
typedef struct {
    int32_t id;
    avro_schema_t schema; /* own reference */
} writer_t;

/* The id a registry gave a reader schema under a subject. */
typedef struct {
    char *subject;
    const reader_t *reader;
    int32_t id;
} subject_t;

struct avro_codec_s {
    registry_t *registry; /* borrowed; NULL: local ids */
    reader_t *readers;    /* immutable after create, read without the lock */
    size_t nreaders;
    json_t *named;        /* the readers' named types (defaults); read-only after create */
    pthread_mutex_t lock; /* guards the caches below, and libavro-c's schema parser */
    writer_t *writers;
    size_t nwriters;
    subject_t *subjects;
    size_t nsubjects;
};

/* ------------------------------------------------------------------ caches */

static const reader_t *find_reader(const avro_codec_t *c, const char *name)
{
    for (size_t i = 0; name && i < c->nreaders; i++) {
        if (strcmp(c->readers[i].name, name) == 0) {
            return &c->readers[i];
        }
    }
    return NULL;
}

/* Lock held. */
static avro_schema_t find_writer(const avro_codec_t *c, int32_t id)
{
    for (size_t i = 0; i < c->nwriters; i++) {
        if (c->writers[i].id == id) {
            return c->writers[i].schema;
        }
    }
    return NULL;
}

/* Lock held. Takes a new reference to `schema`. */
static int add_writer(avro_codec_t *c, int32_t id, avro_schema_t schema)
{
    writer_t *w = realloc(c->writers, (c->nwriters + 1) * sizeof(*w));
    if (!w) {
        return -1;
    }
    c->writers = w;
    c->writers[c->nwriters++] = (writer_t){id, avro_schema_incref(schema)};
    return 0;
}

/* ------------------------------------------------------------------ lifecycle */

avro_codec_t *avro_codec_create(registry_t *registry, char *err, size_t errlen)
{
    avro_codec_t *c = calloc(1, sizeof(*c));
    if (!c) {
        hive_err_set(err, errlen, 0, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    if (!(c->readers = calloc(hive_schemas_count, sizeof(*c->readers))) || !(c->named = json_object())) {
        hive_err_set(err, errlen, 0, "out of memory");
        goto fail;
    }
    c->registry = registry;
    for (size_t i = 0; i < hive_schemas_count; i++) {
        const hive_schema_def_t *def = &hive_schemas[i];
        avro_schema_t schema = NULL;
        if (avro_schema_from_json_length(def->json, strlen(def->json), &schema)) {
            hive_err_set(err, errlen, 0, "schema %s (id %d) does not parse: %s", def->name, def->local_id,
                         avro_strerror());
            goto fail;
        }
        if (avro_typeof(schema) != AVRO_RECORD || strcmp(avro_schema_name(schema), def->name) != 0) {
            hive_err_set(err, errlen, 0, "schema id %d is not the record %s", def->local_id, def->name);
            avro_schema_decref(schema);
            goto fail;
        }
        /* Without a registry, records carry the ids of ids.json; with one, the
         * registry's ids, so the local table would be wrong. */
        if (!registry && add_writer(c, def->local_id, schema)) {
            avro_schema_decref(schema);
            hive_err_set(err, errlen, 0, "out of memory");
            goto fail;
        }
        if (!def->current) {
            avro_schema_decref(schema);
            continue;
        }
        reader_t *r = &c->readers[c->nreaders++];
        r->name = def->name;
        r->json = def->json;
        r->local_id = def->local_id;
        r->schema = schema;
        r->iface = avro_generic_class_from_schema(schema);
        json_t *j = json_loads(def->json, 0, NULL);
        if (!r->iface || !j) {
            json_decref(j);
            hive_err_set(err, errlen, 0, "schema %s: cannot build its value class", def->name);
            goto fail;
        }
        avro_defaults_collect(c->named, j);
        json_decref(j);
    }
    return c;
fail:
    avro_codec_destroy(c);
    return NULL;
}

void avro_codec_destroy(avro_codec_t *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->nreaders; i++) {
        if (c->readers[i].iface) {
            avro_value_iface_decref(c->readers[i].iface);
        }
        avro_schema_decref(c->readers[i].schema);
    }
    for (size_t i = 0; i < c->nwriters; i++) {
        avro_schema_decref(c->writers[i].schema);
    }
    for (size_t i = 0; i < c->nsubjects; i++) {
        free(c->subjects[i].subject);
    }
    free(c->readers);
    free(c->writers);
    free(c->subjects);
    json_decref(c->named);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ------------------------------------------------------------------ values */

int avro_codec_new_value(avro_codec_t *c, const char *name, avro_value_t *out)
{
    const reader_t *r = c ? find_reader(c, name) : NULL;
    avro_value_t v;
    if (!r || !out || avro_generic_value_new(r->iface, &v)) {
        return HIVE_EINVAL;
    }
    if (avro_defaults_fill(&v, c->named, NULL, 0)) {
        avro_value_decref(&v);
        return HIVE_EINVAL;
    }
    *out = v;
    return 0;
}

int avro_codec_apply_defaults(avro_codec_t *c, avro_value_t *record)
{
    if (!c || !record || !record->iface || avro_defaults_fill(record, c->named, NULL, 0)) {
        return HIVE_EINVAL;
    }
    return 0;
}

int avro_codec_add_schema(avro_codec_t *c, int32_t id, const char *json, char *err, size_t errlen)
{
    avro_schema_t schema = NULL, have;
    int rc = 0;
    if (!c || !json) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "no schema");
    }
    pthread_mutex_lock(&c->lock);
    if (avro_schema_from_json_length(json, strlen(json), &schema)) {
        rc = hive_err_set(err, errlen, HIVE_EINVAL, "schema does not parse: %s", avro_strerror());
    } else if ((have = find_writer(c, id))) {
        if (!avro_schema_equal(have, schema)) {
            rc = hive_err_set(err, errlen, HIVE_EINVAL, "schema id %d is taken by another schema", id);
        }
    } else if (add_writer(c, id, schema)) {
        rc = hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&c->lock);
    if (schema) {
        avro_schema_decref(schema);
    }
    return rc;
}

/* ------------------------------------------------------------------ ids */

/* The writer schema of records framed with `id`: cached, else from the registry. */
static int writer_schema(avro_codec_t *c, int32_t id, avro_schema_t *out, char *err, size_t errlen)
{
    char regerr[256] = "";
    char *json = NULL;
    avro_schema_t schema = NULL;

    pthread_mutex_lock(&c->lock);
    *out = find_writer(c, id);
    pthread_mutex_unlock(&c->lock);
    if (*out) {
        return 0;
    }
    if (!c->registry) {
        return hive_err_set(err, errlen, HIVE_EBADMSG, "unknown schema id %d", id);
    }
    int rc = registry_fetch(c->registry, id, &json, regerr, sizeof(regerr));
    if (rc == HIVE_ENOTFOUND) {
        return hive_err_set(err, errlen, HIVE_EBADMSG, "unknown schema id %d (%s)", id, regerr);
    }
    if (rc) {
        return hive_err_set(err, errlen, HIVE_EUNAVAILABLE, "%s", regerr);
    }
    pthread_mutex_lock(&c->lock);
    if ((*out = find_writer(c, id)) == NULL) {
        if (avro_schema_from_json_length(json, strlen(json), &schema)) {
            rc = hive_err_set(err, errlen, HIVE_EBADMSG, "schema id %d from the registry does not parse", id);
        } else if (add_writer(c, id, schema)) {
            rc = hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
        } else {
            *out = schema;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (schema) {
        avro_schema_decref(schema); /* the cache holds its own reference */
    }
    free(json);
    return rc;
}

/* The id to frame records of `r` on `topic` with. */
static int schema_id(avro_codec_t *c, const char *topic, const reader_t *r, int32_t *out, char *err,
                     size_t errlen)
{
    char regerr[256] = "";
    if (!c->registry) {
        *out = r->local_id;
        return 0;
    }
    if (!topic) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "a topic is needed to register %s", r->name);
    }
    size_t n = strlen(topic) + sizeof("-value");
    char *subject = malloc(n);
    if (!subject) {
        return hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
    }
    snprintf(subject, n, "%s-value", topic);

    int found = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nsubjects && !found; i++) {
        if (c->subjects[i].reader == r && strcmp(c->subjects[i].subject, subject) == 0) {
            *out = c->subjects[i].id;
            found = 1;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (found) {
        free(subject);
        return 0;
    }

    int rc = registry_register(c->registry, subject, r->json, out, regerr, sizeof(regerr));
    if (rc) {
        free(subject);
        return hive_err_set(err, errlen, rc, "cannot register %s: %s", r->name, regerr);
    }
    pthread_mutex_lock(&c->lock);
    subject_t *s = realloc(c->subjects, (c->nsubjects + 1) * sizeof(*s));
    if (s) {
        c->subjects = s;
        c->subjects[c->nsubjects++] = (subject_t){subject, r, *out};
        subject = NULL;
    }
    if (!find_writer(c, *out)) {
        add_writer(c, *out, r->schema); /* our own records then decode without a fetch */
    }
    pthread_mutex_unlock(&c->lock);
    free(subject);
    return 0;
}

/* ------------------------------------------------------------------ framing */

int avro_codec_encode(avro_codec_t *c, const char *topic, const avro_value_t *v, void **out, size_t *out_len,
                      char *err, size_t errlen)
{
    char werr[256];
    if (!c || !v || !v->iface || !out || !out_len) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "invalid argument");
    }
    avro_schema_t s = avro_value_get_schema(v);
    const reader_t *r = s && avro_typeof(s) == AVRO_RECORD ? find_reader(c, avro_schema_name(s)) : NULL;
    if (!r) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "the value is not one of the embedded records");
    }
    if (r->schema != s && !avro_schema_equal(r->schema, s)) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "the value's schema is not the current %s", r->name);
    }
    int32_t id;
    int rc = schema_id(c, topic, r, &id, err, errlen);
    if (rc) {
        return rc;
    }
    avro_wire_buf_t b = {malloc(256), FRAME_HEADER, 256};
    if (!b.data) {
        return hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
    }
    uint32_t uid = (uint32_t)id;
    b.data[0] = 0;
    b.data[1] = (uint8_t)(uid >> 24);
    b.data[2] = (uint8_t)(uid >> 16);
    b.data[3] = (uint8_t)(uid >> 8);
    b.data[4] = (uint8_t)uid;
    if (avro_wire_write(&b, v, werr, sizeof(werr))) {
        free(b.data);
        return hive_err_set(err, errlen, HIVE_EINVAL, "cannot encode %s: %s", r->name, werr);
    }
    *out = b.data;
    *out_len = b.len;
    return 0;
}

int avro_codec_decode(avro_codec_t *c, const void *buf, size_t len, const char *expected, avro_value_t *out,
                      char *err, size_t errlen)
{
    const uint8_t *p = buf;
    const reader_t *r = c ? find_reader(c, expected) : NULL;
    avro_schema_t ws;
    avro_value_t v;
    size_t used = 0;
    int rc;

    if (!r || !out || (!buf && len)) {
        return hive_err_set(err, errlen, HIVE_EINVAL, "unknown record type %s",
                            expected ? expected : "(null)");
    }
    if (len < FRAME_HEADER) {
        return hive_err_set(err, errlen, HIVE_EBADMSG, "record too short: %zu bytes, the header alone is %d",
                            len, FRAME_HEADER);
    }
    if (p[0] != 0) {
        return hive_err_set(err, errlen, HIVE_EBADMSG, "bad magic byte 0x%02x", p[0]);
    }
    int32_t id = (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]);
    if ((rc = writer_schema(c, id, &ws, err, errlen)) != 0) {
        return rc;
    }
    if (avro_typeof(ws) != AVRO_RECORD || strcmp(avro_schema_name(ws), expected) != 0) {
        return hive_err_set(err, errlen, HIVE_EBADMSG, "expected %s, got %s (schema id %d)", expected,
                            avro_typeof(ws) == AVRO_RECORD ? avro_schema_name(ws) : avro_schema_type_name(ws),
                            id);
    }
    if (avro_generic_value_new(r->iface, &v)) {
        return hive_err_set(err, errlen, HIVE_ENOMEM, "out of memory");
    }
    if (avro_wire_read(p + FRAME_HEADER, len - FRAME_HEADER, ws, &v, c->named, &used, err, errlen)) {
        avro_value_decref(&v);
        return HIVE_EBADMSG;
    }
    if (used != len - FRAME_HEADER) {
        avro_value_decref(&v);
        return hive_err_set(err, errlen, HIVE_EBADMSG, "%zu bytes of trailing garbage after the %s record",
                            len - FRAME_HEADER - used, expected);
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ hash */

int avro_codec_hash(avro_value_t *v, const char *field, char out_hex[65])
{
    avro_value_t f;
    const char *s = NULL;
    size_t size = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    avro_wire_buf_t b = {NULL, 0, 0};

    if (!v || !out_hex || avro_get_field(v, field, &f) || avro_value_get_type(&f) != AVRO_STRING) {
        return HIVE_EINVAL;
    }
    avro_value_get_string(&f, &s, &size);
    size_t len = size ? size - 1 : 0;
    char *saved = malloc(len + 1);
    if (!saved) {
        return HIVE_ENOMEM;
    }
    memcpy(saved, s, len);
    saved[len] = '\0';
    avro_value_set_string(&f, "");
    int rc = avro_wire_write(&b, v, NULL, 0);
    avro_value_set_string_len(&f, saved, len + 1);
    free(saved);
    if (rc || !EVP_Digest(b.data ? b.data : (uint8_t *)"", b.len, md, &mdlen, EVP_sha256(), NULL)) {
        free(b.data);
        return HIVE_EINVAL;
    }
    free(b.data);
    for (unsigned int i = 0; i < mdlen && i < 32; i++) {
        snprintf(out_hex + 2 * i, 3, "%02x", md[i]);
    }
    out_hex[64] = '\0';
    return 0;
}
