/*
 *    Licensed under the Apache License, Version 2.0 (the "License"); you may
 *    not use this file except in compliance with the License. You may obtain
 *    a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0
 *
 *    Unless required by applicable law or agreed to in writing, software
 *    distributed under the License is distributed on an "AS IS" BASIS,
 *    WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
 *    implied. See the License for the specific language governing
 *    permissions and limitations under the License.
 *
 * Ceilometer metering messages as JSON, signed, without building a dict per
 * sample: the compiled twin of telemetry_lib.formats.ceilometer's
 * samples_to_wire + orjson.dumps. Its output must be byte for byte what the
 * pure-Python path gives (tests/unit/test_cwire.py compares them), so
 * everything this file does not handle itself is handed back to Python:
 *
 * - a sample's resource metadata is encoded by the caller's ``dumps``
 *   (orjson.dumps) and flattened for the signature here, lists in it by
 *   the caller's ``list_text``; a sample whose metadata holds the same keys
 *   and the very same value objects as the previous sample's (a poll's
 *   samples of one resource) reuses both;
 * - a value that is not a plain str, None or a 64-bit int goes to the
 *   caller's ``dumps`` (orjson.dumps) for its JSON and to str() for the
 *   signature, as the Python code does;
 * - the HMAC runs on the caller's keyed hashlib states (copied per sample).
 *
 * Any exception makes the caller run the pure-Python path, which raises
 * what it raises: errors stay the Python path's.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    Py_ssize_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 2048;
    while (cap < need)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int
buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

#define PUT_LIT(b, lit) buf_put((b), (lit), (Py_ssize_t)sizeof(lit) - 1)

static int
buf_put_bytes(Buf *b, PyObject *bytes)
{
    if (!PyBytes_Check(bytes)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes");
        return -1;
    }
    return buf_put(b, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

/* The bytes a JSON string cannot hold as they are: '"', '\\' and the
 * control characters. */
static unsigned char ESCAPED[256];

/* The inside of a JSON string as orjson writes it: '"' and '\\' escaped,
 * the control characters as \b \t \n \f \r or \u00xx (lower case),
 * everything else -- DEL and non-ASCII included -- as its UTF-8 bytes.
 * twice: as that text reads once embedded in a JSON string itself, each
 * escape sequence escaped again (a '"' becomes \\\", a newline \\n). */
static int
put_escaped_as(Buf *b, const char *s, Py_ssize_t n, int twice)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case seven bytes per input byte. */
    if (buf_reserve(b, 7 * n) < 0)
        return -1;
    char *out = b->data + b->len;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    for (; p < end; p++) {
        unsigned char c = *p;
        if (!ESCAPED[c]) {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        if (twice)
            *out++ = '\\';       /* the escape's own backslash, escaped */
        switch (c) {
        case '"':
        case '\\':
            if (twice)
                *out++ = '\\';
            *out++ = (char)c;
            break;
        case '\b': *out++ = 'b'; break;
        case '\t': *out++ = 't'; break;
        case '\n': *out++ = 'n'; break;
        case '\f': *out++ = 'f'; break;
        case '\r': *out++ = 'r'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    b->len = out - b->data;
    return 0;
}

static int
put_escaped(Buf *b, const char *s, Py_ssize_t n)
{
    return put_escaped_as(b, s, n, 0);
}

/* A JSON string, quotes included. */
static int
put_json_utf8(Buf *b, const char *s, Py_ssize_t n)
{
    if (PUT_LIT(b, "\"") < 0 || put_escaped(b, s, n) < 0)
        return -1;
    return PUT_LIT(b, "\"");
}

/* Literal JSON text, and the same embedded in a JSON string (made when
 * the module loads). */
typedef struct {
    const char *raw;
    char *esc;
    Py_ssize_t raw_n, esc_n;
} Lit;

static int
put_lit(Buf *b, const Lit *lit, int emb)
{
    return emb ? buf_put(b, lit->esc, lit->esc_n)
               : buf_put(b, lit->raw, lit->raw_n);
}

/* Whether JSON text holds an escaped quote: a string with a '"' in it, or
 * one ending in a backslash (STF's Smart Gateway chokes on both). Either
 * way a backslash is followed by a quote: backslashes are rare in JSON
 * text, quotes are everywhere, so the backslashes are what is searched. */
static int
has_escaped_quote(const char *s, Py_ssize_t n)
{
    const char *end = s + n, *q = s;
    while (q < end && (q = memchr(q, '\\', end - q)) != NULL) {
        if (q + 1 < end && q[1] == '"')
            return 1;
        q++;
    }
    return 0;
}

/* The JSON of a field value (embedded in a string when emb); *quoted set
 * when it has an escaped quote. */
static int
put_json(Buf *b, PyObject *value, PyObject *dumps, int *quoted, int emb)
{
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(value, &n);
        if (s == NULL)
            return -1;      /* a lone surrogate: Python's path decides */
        if (n && (s[n - 1] == '\\' || memchr(s, '"', n) != NULL))
            *quoted = 1;
        if (!emb)
            return put_json_utf8(b, s, n);
        if (PUT_LIT(b, "\\\"") < 0 || put_escaped_as(b, s, n, 1) < 0)
            return -1;
        return PUT_LIT(b, "\\\"");
    }
    if (value == Py_None)
        return PUT_LIT(b, "null");
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow) {
            char digits[32];
            int n = snprintf(digits, sizeof(digits), "%lld", v);
            return buf_put(b, digits, n);
        }
    }
    PyObject *enc = PyObject_CallOneArg(dumps, value);
    if (enc == NULL)
        return -1;
    int rc = -1;
    if (PyBytes_Check(enc)) {
        const char *s = PyBytes_AS_STRING(enc);
        Py_ssize_t n = PyBytes_GET_SIZE(enc);
        rc = emb ? put_escaped(b, s, n) : buf_put(b, s, n);
        if (has_escaped_quote(s, n))
            *quoted = 1;
    }
    else
        PyErr_SetString(PyExc_TypeError, "dumps must return bytes");
    Py_DECREF(enc);
    return rc;
}

/* str(value) as UTF-8: the signature's text of a field. */
static int
put_text(Buf *b, PyObject *value)
{
    Py_ssize_t n;
    const char *s;
    if (PyUnicode_CheckExact(value)) {
        s = PyUnicode_AsUTF8AndSize(value, &n);
        return s == NULL ? -1 : buf_put(b, s, n);
    }
    if (value == Py_None)
        return PUT_LIT(b, "None");
    if (PyLong_CheckExact(value)) {
        /* str() of an int, without making the string: most numbers in
         * metadata are (bool is not an exact int: it stays str()'s). */
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) {
            char digits[24];
            int i = sizeof(digits);
            unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                         : (unsigned long long)v;
            do {
                digits[--i] = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            if (v < 0)
                digits[--i] = '-';
            return buf_put(b, digits + i, sizeof(digits) - i);
        }
        PyErr_Clear();
    }
    PyObject *text = PyObject_Str(value);
    if (text == NULL)
        return -1;
    s = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = s == NULL ? -1 : buf_put(b, s, n);
    Py_DECREF(text);
    return rc;
}

/* Whether a sample's timestamp is the previous one's: the same object,
 * or an equal datetime with the very same tzinfo object and fold -- then
 * their
 * isoformat() agree -- so that samples stamped alike but made one by one
 * format it once. */
static int
same_timestamp(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (b == NULL || !PyDateTime_CheckExact(a) || !PyDateTime_CheckExact(b))
        return 0;
    if (PyDateTime_DATE_GET_TZINFO(a) != PyDateTime_DATE_GET_TZINFO(b) ||
            PyDateTime_DATE_GET_FOLD(a) != PyDateTime_DATE_GET_FOLD(b))
        return 0;
    int eq = PyObject_RichCompareBool(a, b, Py_EQ);
    if (eq < 0) {
        PyErr_Clear();
        return 0;
    }
    return eq;
}

/* Whether two metadata dicts hold the same keys, in the same order, bound
 * to the very same objects: then their JSON and signature text agree. */
static int
same_metadata(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (a == NULL || b == NULL || !PyDict_CheckExact(a) ||
            !PyDict_CheckExact(b) || PyDict_GET_SIZE(a) != PyDict_GET_SIZE(b))
        return 0;
    Py_ssize_t pa = 0, pb = 0;
    PyObject *ka, *va, *kb, *vb;
    while (PyDict_Next(a, &pa, &ka, &va)) {
        if (!PyDict_Next(b, &pb, &kb, &vb) || va != vb)
            return 0;
        if (ka != kb) {
            if (!PyUnicode_CheckExact(ka) || !PyUnicode_CheckExact(kb) ||
                    PyUnicode_Compare(ka, kb) != 0)
                return 0;
        }
    }
    return 1;
}

/* Ceilometer's flattened signature text of a mapping, appended to out:
 * its keys sorted, for each the name (``prefix`` then the key) and then
 * str() of the value, a nested mapping flattened with ``name:`` as its
 * prefix, a list or tuple as list_text(value) gives it. The same walk as
 * formats.ceilometer._flatten_into; anything it would not do the same
 * way (a dict subclass, keys that do not sort) is an error, and the
 * caller's Python path then runs. */
/* The sorted keys of dicts already met, by their keys in insertion
 * order: metadata dicts of one shape (every instance's, every volume's)
 * are sorted once, not per sample. Keys that are all plain str only, so
 * that equal tuples mean the very same texts; bounded, emptied when full. */
static PyObject *key_orders;
#define KEY_ORDERS_MAX 4096

/* A new reference to the keys of mapping, sorted. */
static PyObject *
sorted_keys(PyObject *mapping)
{
    PyObject *keys = PyDict_Keys(mapping);
    if (keys == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(keys, i))) {
            if (PyList_Sort(keys) < 0) {
                Py_DECREF(keys);
                return NULL;
            }
            return keys;
        }
    }
    PyObject *shape = PyList_AsTuple(keys);
    if (shape == NULL) {
        Py_DECREF(keys);
        return NULL;
    }
    PyObject *known = PyDict_GetItemWithError(key_orders, shape);
    if (known != NULL) {
        Py_DECREF(shape);
        Py_DECREF(keys);
        Py_INCREF(known);
        return known;
    }
    if (PyErr_Occurred() || PyList_Sort(keys) < 0)
        goto fail;
    if (PyDict_GET_SIZE(key_orders) >= KEY_ORDERS_MAX)
        PyDict_Clear(key_orders);
    if (PyDict_SetItem(key_orders, shape, keys) < 0)
        goto fail;
    Py_DECREF(shape);
    return keys;
fail:
    Py_DECREF(shape);
    Py_DECREF(keys);
    return NULL;
}

static int
put_flat(Buf *out, Buf *name, PyObject *mapping, PyObject *list_text,
         int depth)
{
    if (!PyDict_CheckExact(mapping) || depth > 32) {
        PyErr_SetString(PyExc_TypeError, "not a plain mapping");
        return -1;
    }
    PyObject *keys = sorted_keys(mapping);
    if (keys == NULL)
        return -1;
    int rc = -1;
    Py_ssize_t base = name->len;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *value = PyDict_GetItemWithError(mapping, key);
        if (value == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_KeyError, "key vanished");
            goto done;
        }
        name->len = base;
        if (put_text(name, key) < 0)
            goto done;
        if (PyDict_Check(value)) {
            if (PUT_LIT(name, ":") < 0 ||
                    put_flat(out, name, value, list_text, depth + 1) < 0)
                goto done;
            continue;
        }
        if (buf_put(out, name->data, name->len) < 0)
            goto done;
        if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
            PyObject *text = PyObject_CallOneArg(list_text, value);
            if (text == NULL)
                goto done;
            int r = PyUnicode_CheckExact(text) ? put_text(out, text) : -1;
            if (r < 0 && !PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "list_text gave no str");
            Py_DECREF(text);
            if (r < 0)
                goto done;
        }
        else if (put_text(out, value) < 0)
            goto done;
    }
    name->len = base;
    rc = 0;
done:
    Py_DECREF(keys);
    return rc;
}

static PyObject *s_copy, *s_update, *s_digest, *s_hexdigest, *s_isoformat;
static Lit QUOTE;

/* HMAC from the keyed inner and outer states over text: a new reference
 * to its hex digest (str). */
static PyObject *
signature_hex(PyObject *inner, PyObject *outer, Buf *text)
{
    PyObject *h = NULL, *o = NULL, *r = NULL, *d = NULL, *x = NULL;
    PyObject *msg = PyMemoryView_FromMemory(text->data, text->len,
                                            PyBUF_READ);
    if (msg == NULL)
        return NULL;
    if ((h = PyObject_CallMethodNoArgs(inner, s_copy)) == NULL)
        goto done;
    if ((r = PyObject_CallMethodOneArg(h, s_update, msg)) == NULL)
        goto done;
    Py_CLEAR(r);
    if ((d = PyObject_CallMethodNoArgs(h, s_digest)) == NULL)
        goto done;
    if ((o = PyObject_CallMethodNoArgs(outer, s_copy)) == NULL)
        goto done;
    if ((r = PyObject_CallMethodOneArg(o, s_update, d)) == NULL)
        goto done;
    x = PyObject_CallMethodNoArgs(o, s_hexdigest);
done:
    Py_XDECREF(msg);
    Py_XDECREF(h);
    Py_XDECREF(o);
    Py_XDECREF(r);
    Py_XDECREF(d);
    return x;
}

/* The signature, quoted, as a JSON member's value. */
static int
put_signature(Buf *out, PyObject *inner, PyObject *outer, Buf *text,
              int emb)
{
    PyObject *x = signature_hex(inner, outer, text);
    if (x == NULL)
        return -1;
    int rc = -1;
    /* Hex digits: a JSON string needs nothing but its quotes. */
    if (put_lit(out, &QUOTE, emb) == 0 && put_text(out, x) == 0)
        rc = put_lit(out, &QUOTE, emb);
    Py_DECREF(x);
    return rc;
}

enum {
    F_NAME, F_TYPE, F_UNIT, F_VOLUME, F_USER_ID, F_PROJECT_ID,
    F_RESOURCE_ID, F_TIMESTAMP, F_METADATA, F_SOURCE, F_ID, F_MONOTONIC,
    F_USER_NAME, F_PROJECT_NAME, N_FIELDS
};

/* The signed text before the metadata block: Ceilometer's sorted names. */
static const struct { const char *name; int field; } HEAD[] = {
    {"counter_name", F_NAME}, {"counter_type", F_TYPE},
    {"counter_unit", F_UNIT}, {"counter_volume", F_VOLUME},
    {"message_id", F_ID}, {"monotonic_time", F_MONOTONIC},
    {"project_id", F_PROJECT_ID}, {"project_name", F_PROJECT_NAME},
    {NULL, -1},     /* publisher_id goes here when there is one */
    {"resource_id", F_RESOURCE_ID},
};

static const struct { const char *name; int field; } TAIL[] = {
    {"source", F_SOURCE}, {"timestamp", F_TIMESTAMP},
    {"user_id", F_USER_ID}, {"user_name", F_USER_NAME},
};

/* A sample's fields into f, its timestamp as isoformat() text -- made
 * only when it is not the previous sample's (last_ts, stamp: the
 * caller's, kept across samples). */
static int
sample_fields(PyObject *s, PyObject **f, PyObject **last_ts,
              PyObject **stamp)
{
    if (!PyTuple_Check(s) || PyTuple_GET_SIZE(s) < N_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "not a Sample");
        return -1;
    }
    for (int k = 0; k < N_FIELDS; k++)
        f[k] = PyTuple_GET_ITEM(s, k);
    if (!same_timestamp(f[F_TIMESTAMP], *last_ts)) {
        PyObject *st = PyObject_CallMethodNoArgs(f[F_TIMESTAMP], s_isoformat);
        if (st == NULL)
            return -1;
        Py_XSETREF(*stamp, st);
        Py_INCREF(f[F_TIMESTAMP]);
        Py_XSETREF(*last_ts, f[F_TIMESTAMP]);
    }
    f[F_TIMESTAMP] = *stamp;
    return 0;
}

/* The signature text of a sample's metadata into md_block. */
static int
flatten_metadata(Buf *md_block, Buf *key_name, PyObject *md,
                 PyObject *list_text)
{
    md_block->len = 0;
    key_name->len = 0;
    if (PUT_LIT(key_name, "resource_metadata:") < 0)
        return -1;
    return put_flat(md_block, key_name, md, list_text, 0);
}

/* The JSON members in Ceilometer's order, each with its leading text. */
static struct { Lit key; int field; } BODY[] = {
    {{"{\"source\":"}, F_SOURCE}, {{",\"counter_name\":"}, F_NAME},
    {{",\"counter_type\":"}, F_TYPE}, {{",\"counter_unit\":"}, F_UNIT},
    {{",\"counter_volume\":"}, F_VOLUME}, {{",\"user_id\":"}, F_USER_ID},
    {{",\"user_name\":"}, F_USER_NAME},
    {{",\"project_id\":"}, F_PROJECT_ID},
    {{",\"project_name\":"}, F_PROJECT_NAME},
    {{",\"resource_id\":"}, F_RESOURCE_ID},
    {{",\"timestamp\":"}, F_TIMESTAMP},
    {{",\"resource_metadata\":"}, F_METADATA},
    {{",\"message_id\":"}, F_ID},
    {{",\"monotonic_time\":"}, F_MONOTONIC},
};

static Lit PUBLISHER = {",\"publisher_id\":"};
static Lit SIGNATURE = {",\"message_signature\":"};
static Lit UNSIGNED = {"\"\""};
static Lit QUOTE = {"\""};

/* The embedded form of a literal, made once. */
static int
lit_init(Lit *lit)
{
    Buf b = {NULL, 0, 0};
    lit->raw_n = (Py_ssize_t)strlen(lit->raw);
    if (put_escaped(&b, lit->raw, lit->raw_n) < 0)
        return -1;
    lit->esc = b.data;
    lit->esc_n = b.len;
    return 0;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* What Ceilometer signs for a sample, into text: the fields sorted by
 * name, each name then str() of the value, the metadata's flattened block
 * (md_block) in its place. f holds the fields, the timestamp already as
 * its isoformat() text. */
static int
sign_text(Buf *text, PyObject **f, PyObject *publisher_id, Buf *md_block)
{
    text->len = 0;
    for (int k = 0; k < COUNT(HEAD); k++) {
        PyObject *v;
        const char *name = HEAD[k].name;
        if (name == NULL) {
            if (publisher_id == Py_None)
                continue;
            name = "publisher_id";
            v = publisher_id;
        }
        else
            v = f[HEAD[k].field];
        if (buf_put(text, name, strlen(name)) < 0 || put_text(text, v) < 0)
            return -1;
    }
    if (buf_put(text, md_block->data, md_block->len) < 0)
        return -1;
    for (int k = 0; k < COUNT(TAIL); k++) {
        if (buf_put(text, TAIL[k].name, strlen(TAIL[k].name)) < 0 ||
                put_text(text, f[TAIL[k].field]) < 0)
            return -1;
    }
    return 0;
}


PyDoc_STRVAR(encode_samples_doc,
"encode_samples(samples, inner, outer, publisher_id, dumps, list_text,\n"
"               flag_metadata, embedded)\n"
"\n"
"Each sample's metering message as JSON bytes, in a list, and the indexes\n"
"of those with an escaped quote (a string holding '\"' or ending in '\\'):\n"
"(messages, quoted).\n"
"\n"
"samples: Sample tuples; inner, outer: the HMAC's keyed sha256 states, or\n"
"None for unsigned messages; publisher_id: str or None (no member);\n"
"dumps: the JSON encoder (of the metadata, and of values not written\n"
"here); list_text(list) -> the signature's text of a list value;\n"
"flag: None, or (key, f): f(metadata) true lists the samples with that\n"
"metadata among the quoted ones (called for metadata holding key only);\n"
"embedded: true for each message as the inside of a JSON string (escaped,\n"
"without the quotes).");

static PyObject *
encode_samples(PyObject *self, PyObject *args)
{
    PyObject *samples, *inner, *outer, *publisher_id, *dumps, *list_text;
    PyObject *flag, *flag_key = NULL, *flag_func = Py_None;
    int embedded;
    if (!PyArg_ParseTuple(args, "OOOOOOOp:encode_samples", &samples, &inner,
                          &outer, &publisher_id, &dumps, &list_text,
                          &flag, &embedded))
        return NULL;
    if (flag != Py_None && !PyArg_ParseTuple(flag, "OO:flag", &flag_key,
                                             &flag_func))
        return NULL;
    int signed_ = inner != Py_None;
    PyObject *seq = PySequence_Fast(samples, "samples must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = PyList_New(n), *quoted_at = PyList_New(0);
    Buf json = {NULL, 0, 0}, text = {NULL, 0, 0};
    /* The previous sample's metadata, timestamp and what they gave. */
    PyObject *last_md = NULL, *md_json = NULL;
    Buf md_block = {NULL, 0, 0};        /* its signature text, when signed */
    Buf key_name = {NULL, 0, 0};        /* the flattening's current name */
    Buf md_esc = {NULL, 0, 0};          /* md_json escaped, when embedded */
    int md_quoted = 0;                  /* md_json has an escaped quote */
    PyObject *last_ts = NULL, *stamp = NULL;
    if (result == NULL || quoted_at == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f[N_FIELDS];
        if (sample_fields(PySequence_Fast_GET_ITEM(seq, i), f, &last_ts,
                          &stamp) < 0)
            goto fail;
        if (md_json == NULL || !same_metadata(last_md, f[F_METADATA])) {
            PyObject *md = f[F_METADATA];
            Py_XSETREF(md_json, PyObject_CallOneArg(dumps, md));
            if (md_json == NULL)
                goto fail;
            if (!PyBytes_Check(md_json)) {
                PyErr_SetString(PyExc_TypeError, "dumps must return bytes");
                goto fail;
            }
            md_quoted = has_escaped_quote(PyBytes_AS_STRING(md_json),
                                          PyBytes_GET_SIZE(md_json));
            if (flag_key != NULL && !md_quoted) {
                /* Called only for metadata holding flag_key: most has
                 * none, and a Python call per sample is what this file
                 * saves. */
                PyObject *has = PyDict_Check(md) ?
                    PyDict_GetItemWithError(md, flag_key) : Py_None;
                if (has == NULL && PyErr_Occurred())
                    goto fail;
                if (has != NULL && flag_func == Py_None) {
                    /* The built-in test: a dict with a value that is not
                     * a str. */
                    if (PyDict_CheckExact(has)) {
                        Py_ssize_t pos = 0;
                        PyObject *k, *v;
                        while (PyDict_Next(has, &pos, &k, &v))
                            if (!PyUnicode_CheckExact(v)) {
                                md_quoted = 1;
                                break;
                            }
                    }
                }
                else if (has != NULL) {
                    PyObject *flag = PyObject_CallOneArg(flag_func, md);
                    if (flag == NULL)
                        goto fail;
                    md_quoted = PyObject_IsTrue(flag);
                    Py_DECREF(flag);
                    if (md_quoted < 0)
                        goto fail;
                }
            }
            if (signed_ && flatten_metadata(&md_block, &key_name, md,
                                            list_text) < 0)
                goto fail;
            /* Escaped once for the samples that share it: it is most of
             * each message's bytes. */
            md_esc.len = 0;
            if (embedded && put_escaped(&md_esc, PyBytes_AS_STRING(md_json),
                                        PyBytes_GET_SIZE(md_json)) < 0)
                goto fail;
            Py_XSETREF(last_md, Py_NewRef(f[F_METADATA]));
        }
        json.len = 0;
        int quoted = md_quoted;
        for (int k = 0; k < COUNT(BODY); k++) {
            if (put_lit(&json, &BODY[k].key, embedded) < 0)
                goto fail;
            if (BODY[k].field == F_METADATA) {
                if ((embedded ? buf_put(&json, md_esc.data, md_esc.len)
                              : buf_put_bytes(&json, md_json)) < 0)
                    goto fail;
            }
            else if (put_json(&json, f[BODY[k].field], dumps, &quoted,
                              embedded) < 0)
                goto fail;
        }
        if (publisher_id != Py_None) {
            if (put_lit(&json, &PUBLISHER, embedded) < 0 ||
                    put_json(&json, publisher_id, dumps, &quoted,
                             embedded) < 0)
                goto fail;
        }
        if (put_lit(&json, &SIGNATURE, embedded) < 0)
            goto fail;
        if (signed_) {
            if (sign_text(&text, f, publisher_id, &md_block) < 0)
                goto fail;
            if (put_signature(&json, inner, outer, &text, embedded) < 0)
                goto fail;
        }
        else if (put_lit(&json, &UNSIGNED, embedded) < 0)
            goto fail;
        if (PUT_LIT(&json, "}") < 0)
            goto fail;
        PyObject *item = PyBytes_FromStringAndSize(json.data, json.len);
        if (item == NULL)
            goto fail;
        PyList_SET_ITEM(result, i, item);
        if (quoted) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(quoted_at, index) < 0) {
                Py_XDECREF(index);
                goto fail;
            }
            Py_DECREF(index);
        }
    }
    Py_SETREF(result, PyTuple_Pack(2, result, quoted_at));
    goto done;
fail:
    Py_CLEAR(result);
done:
    Py_XDECREF(quoted_at);
    PyMem_Free(json.data);
    PyMem_Free(text.data);
    Py_XDECREF(last_md);
    Py_XDECREF(md_json);
    PyMem_Free(md_block.data);
    PyMem_Free(key_name.data);
    PyMem_Free(md_esc.data);
    Py_XDECREF(last_ts);
    Py_XDECREF(stamp);
    Py_DECREF(seq);
    return result;
}

#include "_cwire_msgpack.h"

static PyMethodDef methods[] = {
    {"encode_samples", encode_samples, METH_VARARGS, encode_samples_doc},
    {"encode_msgpack", encode_msgpack, METH_VARARGS, encode_msgpack_doc},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cwire",
    "Compiled Ceilometer metering messages (see formats.ceilometer).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__cwire(void)
{
    for (int c = 0; c < 0x20; c++)
        ESCAPED[c] = 1;
    ESCAPED['"'] = ESCAPED['\\'] = 1;
    for (int k = 0; k < COUNT(BODY); k++)
        if (lit_init(&BODY[k].key) < 0)
            return NULL;
    if (lit_init(&PUBLISHER) < 0 || lit_init(&SIGNATURE) < 0 ||
            lit_init(&UNSIGNED) < 0 || lit_init(&QUOTE) < 0)
        return NULL;
    if (!(s_copy = PyUnicode_InternFromString("copy")) ||
            !(s_update = PyUnicode_InternFromString("update")) ||
            !(s_digest = PyUnicode_InternFromString("digest")) ||
            !(s_hexdigest = PyUnicode_InternFromString("hexdigest")) ||
            !(s_isoformat = PyUnicode_InternFromString("isoformat")))
        return NULL;
    if (!(key_orders = PyDict_New()))
        return NULL;
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
