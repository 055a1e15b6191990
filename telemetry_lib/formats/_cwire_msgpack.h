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
 * Ceilometer metering messages as msgpack (its tcp:// and udp://
 * publishers' bodies), signed, without a dict per sample: the compiled
 * twin of msgpack's Packer(use_bin_type=True).pack over what
 * formats.ceilometer.samples_to_wire gives. Included by _cwire.c, whose
 * helpers (the signature text, the metadata flattening and sharing) it
 * uses; its output must be byte for byte the Python path's
 * (tests/unit/test_cwire.py). The metadata, and any value that is not a
 * str, None, an exact int of 64 bits or an exact float, is packed by the
 * caller's ``pack``; any exception makes the caller use the Python path.
 */

/* msgpack's str header for n bytes (its "raw" types with bin types on). */
static int
mp_str_header(Buf *b, Py_ssize_t n)
{
    unsigned char h[5];
    int len;
    if (n < 32) {
        h[0] = (unsigned char)(0xa0 | n);
        len = 1;
    }
    else if (n < 256) {
        h[0] = 0xd9;
        h[1] = (unsigned char)n;
        len = 2;
    }
    else if (n < 65536) {
        h[0] = 0xda;
        h[1] = (unsigned char)(n >> 8);
        h[2] = (unsigned char)n;
        len = 3;
    }
    else if (n <= 0xffffffffLL) {
        h[0] = 0xdb;
        for (int i = 0; i < 4; i++)
            h[1 + i] = (unsigned char)(n >> (24 - 8 * i));
        len = 5;
    }
    else {
        PyErr_SetString(PyExc_ValueError, "str too long for msgpack");
        return -1;
    }
    return buf_put(b, (const char *)h, len);
}

static int
mp_str(Buf *b, const char *s, Py_ssize_t n)
{
    if (mp_str_header(b, n) < 0)
        return -1;
    return buf_put(b, s, n);
}

/* An integer as msgpack-python packs it: the smallest form. */
static int
mp_int(Buf *b, long long v)
{
    unsigned char h[9];
    int len, width;
    if (v >= 0 && v < 128) {
        h[0] = (unsigned char)v;
        return buf_put(b, (const char *)h, 1);
    }
    if (v < 0 && v >= -32) {
        h[0] = (unsigned char)(0xe0 | (v + 32));
        return buf_put(b, (const char *)h, 1);
    }
    if (v > 0) {
        if (v < 256) { h[0] = 0xcc; width = 1; }
        else if (v < 65536) { h[0] = 0xcd; width = 2; }
        else if (v <= 0xffffffffLL) { h[0] = 0xce; width = 4; }
        else { h[0] = 0xcf; width = 8; }
    }
    else {
        if (v >= -128) { h[0] = 0xd0; width = 1; }
        else if (v >= -32768) { h[0] = 0xd1; width = 2; }
        else if (v >= -2147483648LL) { h[0] = 0xd2; width = 4; }
        else { h[0] = 0xd3; width = 8; }
    }
    unsigned long long u = (unsigned long long)v;
    for (int i = 0; i < width; i++)
        h[1 + i] = (unsigned char)(u >> (8 * (width - 1 - i)));
    len = 1 + width;
    return buf_put(b, (const char *)h, len);
}

/* A value: what this file packs itself, else the caller's pack. */
static int
mp_value(Buf *b, PyObject *value, PyObject *pack)
{
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(value, &n);
        return s == NULL ? -1 : mp_str(b, s, n);
    }
    if (value == Py_None)
        return buf_put(b, "\xc0", 1);
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred()))
            return mp_int(b, v);
        PyErr_Clear();
    }
    else if (PyFloat_CheckExact(value)) {
        union { double d; unsigned long long u; } bits;
        unsigned char h[9];
        bits.d = PyFloat_AS_DOUBLE(value);
        h[0] = 0xcb;
        for (int i = 0; i < 8; i++)
            h[1 + i] = (unsigned char)(bits.u >> (56 - 8 * i));
        return buf_put(b, (const char *)h, 9);
    }
    PyObject *packed = PyObject_CallOneArg(pack, value);
    if (packed == NULL)
        return -1;
    int rc = PyBytes_Check(packed) ? buf_put_bytes(b, packed) : -1;
    if (rc < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "pack must return bytes");
    Py_DECREF(packed);
    return rc;
}

/* The member names in Ceilometer's order (BODY's), msgpack-encoded. */
static const char *MP_NAMES[] = {
    "source", "counter_name", "counter_type", "counter_unit",
    "counter_volume", "user_id", "user_name", "project_id", "project_name",
    "resource_id", "timestamp", "resource_metadata", "message_id",
    "monotonic_time",
};

/* Whether mapping[key] is a dict with a value that is not a str (what
 * sg-core drops a sample for). */
static int
mp_flagged(PyObject *md, PyObject *key)
{
    if (key == Py_None || !PyDict_Check(md))
        return 0;
    PyObject *sub = PyDict_GetItemWithError(md, key);
    if (sub == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyDict_CheckExact(sub))
        return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(sub, &pos, &k, &v))
        if (!PyUnicode_CheckExact(v))
            return 1;
    return 0;
}

PyDoc_STRVAR(encode_msgpack_doc,
"encode_msgpack(samples, inner, outer, publisher_id, pack, list_text,\n"
"               flag_key, framed) -> (bodies, flagged)\n\n"
"Each sample's metering message packed as msgpack (bytes), framed: after\n"
"its length as 8 bytes little-endian; inner/outer are the keyed HMAC\n"
"states (None: unsigned); flagged lists the indexes whose\n"
"metadata[flag_key] is a dict with a value that is not a str.");

static PyObject *
encode_msgpack(PyObject *self, PyObject *args)
{
    PyObject *samples, *inner, *outer, *publisher_id, *pack, *list_text;
    PyObject *flag_key;
    int framed;
    if (!PyArg_ParseTuple(args, "OOOOOOOp:encode_msgpack", &samples,
                          &inner, &outer, &publisher_id, &pack, &list_text,
                          &flag_key, &framed))
        return NULL;
    int signed_ = inner != Py_None;
    PyObject *seq = PySequence_Fast(samples, "samples must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = PyList_New(n), *flagged = PyList_New(0);
    Buf out = {NULL, 0, 0}, text = {NULL, 0, 0};
    Buf md_block = {NULL, 0, 0}, key_name = {NULL, 0, 0};
    PyObject *last_md = NULL, *md_packed = NULL;
    PyObject *last_ts = NULL, *stamp = NULL;
    int md_flag = 0;
    if (result == NULL || flagged == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f[N_FIELDS];
        if (sample_fields(PySequence_Fast_GET_ITEM(seq, i), f, &last_ts,
                          &stamp) < 0)
            goto fail;
        if (md_packed == NULL || !same_metadata(last_md, f[F_METADATA])) {
            PyObject *md = f[F_METADATA];
            Py_XSETREF(md_packed, PyObject_CallOneArg(pack, md));
            if (md_packed == NULL)
                goto fail;
            if (!PyBytes_Check(md_packed)) {
                PyErr_SetString(PyExc_TypeError, "pack must return bytes");
                goto fail;
            }
            if ((md_flag = mp_flagged(md, flag_key)) < 0)
                goto fail;
            if (signed_ && flatten_metadata(&md_block, &key_name, md,
                                            list_text) < 0)
                goto fail;
            Py_XSETREF(last_md, Py_NewRef(md));
        }
        out.len = 0;
        /* Room for a TCP frame's length, filled in at the end. */
        if (framed && buf_put(&out, "\0\0\0\0\0\0\0\0", 8) < 0)
            goto fail;
        int members = COUNT(MP_NAMES) + 1 + (publisher_id != Py_None);
        /* A fixmap holds 15 members; with publisher_id there are 16. */
        unsigned char head[3] = {0xde, 0, (unsigned char)members};
        if (members < 16) {
            head[0] = (unsigned char)(0x80 | members);
            if (buf_put(&out, (const char *)head, 1) < 0)
                goto fail;
        }
        else if (buf_put(&out, (const char *)head, 3) < 0)
            goto fail;
        for (int k = 0; k < COUNT(MP_NAMES); k++) {
            if (mp_str(&out, MP_NAMES[k], strlen(MP_NAMES[k])) < 0)
                goto fail;
            if (BODY[k].field == F_METADATA) {
                if (buf_put_bytes(&out, md_packed) < 0)
                    goto fail;
            }
            else if (mp_value(&out, f[BODY[k].field], pack) < 0)
                goto fail;
        }
        if (publisher_id != Py_None) {
            if (mp_str(&out, "publisher_id", 12) < 0 ||
                    mp_value(&out, publisher_id, pack) < 0)
                goto fail;
        }
        if (mp_str(&out, "message_signature", 17) < 0)
            goto fail;
        if (signed_) {
            if (sign_text(&text, f, publisher_id, &md_block) < 0)
                goto fail;
            PyObject *x = signature_hex(inner, outer, &text);
            if (x == NULL)
                goto fail;
            int rc = mp_value(&out, x, pack);
            Py_DECREF(x);
            if (rc < 0)
                goto fail;
        }
        else if (mp_str(&out, "", 0) < 0)
            goto fail;
        if (framed) {
            unsigned long long size = (unsigned long long)(out.len - 8);
            for (int k = 0; k < 8; k++)
                out.data[k] = (char)(size >> (8 * k));
        }
        PyObject *item = PyBytes_FromStringAndSize(out.data, out.len);
        if (item == NULL)
            goto fail;
        PyList_SET_ITEM(result, i, item);
        if (md_flag) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(flagged, index) < 0) {
                Py_XDECREF(index);
                goto fail;
            }
            Py_DECREF(index);
        }
    }
    Py_SETREF(result, PyTuple_Pack(2, result, flagged));
    goto done;
fail:
    Py_CLEAR(result);
done:
    Py_XDECREF(flagged);
    PyMem_Free(out.data);
    PyMem_Free(text.data);
    PyMem_Free(md_block.data);
    PyMem_Free(key_name.data);
    Py_XDECREF(last_md);
    Py_XDECREF(md_packed);
    Py_XDECREF(last_ts);
    Py_XDECREF(stamp);
    Py_DECREF(seq);
    return result;
}
