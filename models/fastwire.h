/* The compiled build's fast path for api_call payloads (models/wire.py, wire.pxd).
 *
 * exw_fast_decode reads one payload in the commonest shape straight into an
 * ApiCall: a JSON object of the contract's wire keys, each at most once, in any
 * order, with ASCII strings without escapes, plain integers, a decimal cot score,
 * ":SS.fffZ" or ":SSZ" UTC timestamps, dotted-quad IPv4 addresses and 16
 * lowercase hex digits of simhash. Anything else (an unknown or raw-text key, an
 * escape, a non-ASCII byte, a value out of range, a float where an integer goes,
 * an IPv6 address, an offset timestamp...) is declined with Py_None, and the
 * caller takes the msgspec path and then the reference decoder, which alone
 * names faults. So this accepts a subset of what the reference decoder accepts,
 * with the same values and types (tests/models/test_fastwire.py checks both).
 *
 * Strings that repeat across events (account, org and payment ids, addresses, user
 * agents, TLS fingerprints, models, tasks, features, creation times) come from small
 * direct-mapped tables of the str objects made before: no allocation, no copy,
 * and their hash is already cached for the engine's dict lookups. A table slot
 * holds the last string that hashed there, so the tables stay bounded (a few MB)
 * and values never depend on them, only object identity does.
 *
 * Nothing here keeps or logs payload text beyond those field values.
 */
#ifndef EXW_FASTWIRE_H
#define EXW_FASTWIRE_H

#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

enum {
    EXW_V, EXW_EVENT_ID, EXW_TS, EXW_ACCOUNT_ID, EXW_ORG_ID, EXW_API_KEY_ID, EXW_ACCESS_PATH,
    EXW_CLIENT_IP, EXW_ASN, EXW_TLS, EXW_UA, EXW_PAYMENT, EXW_CREATED_AT, EXW_MODEL,
    EXW_FEATURES, EXW_TASK, EXW_PROMPT_SIMHASH, EXW_COT, EXW_INPUT_TOKENS, EXW_OUTPUT_TOKENS,
    EXW_STATUS, EXW_LATENCY_MS,
    EXW_N_WIRE,
    /* derived slots, never on the wire */
    EXW_T = EXW_N_WIRE, EXW_CREATED_T, EXW_SIMHASH,
    EXW_N_SLOTS
};

/* the key each field has on the wire */
static const char *const exw_wire_keys[EXW_N_WIRE] = {
    "v", "event_id", "ts", "account_id", "org_id", "api_key_id", "access_path",
    "client_ip", "asn", "tls_fingerprint", "user_agent", "payment_fingerprint",
    "account_created_at", "model", "features", "task", "prompt_simhash", "cot_elicitation",
    "input_tokens", "output_tokens", "status", "latency_ms",
};
static Py_ssize_t exw_wire_key_len[EXW_N_WIRE];

/* the ApiCall slot each field is stored in */
static const char *const exw_slot_names[EXW_N_SLOTS] = {
    "v", "event_id", "ts", "account_id", "org_id", "api_key_id", "access_path",
    "client_ip", "asn", "tls_fingerprint", "user_agent", "payment_fingerprint",
    "account_created_at", "model", "features", "task", "prompt_simhash", "cot",
    "input_tokens", "output_tokens", "status", "latency_ms",
    "t", "account_created_t", "simhash",
};

/* fields the contract requires (v, event_id, ts, account_id, access_path, client_ip,
 * model, features, input_tokens, output_tokens, status) */
#define EXW_BIT(f) (1u << (f))
static const uint32_t exw_required =
    EXW_BIT(EXW_V) | EXW_BIT(EXW_EVENT_ID) | EXW_BIT(EXW_TS) | EXW_BIT(EXW_ACCOUNT_ID) |
    EXW_BIT(EXW_ACCESS_PATH) | EXW_BIT(EXW_CLIENT_IP) | EXW_BIT(EXW_MODEL) |
    EXW_BIT(EXW_FEATURES) | EXW_BIT(EXW_INPUT_TOKENS) | EXW_BIT(EXW_OUTPUT_TOKENS) |
    EXW_BIT(EXW_STATUS);
/* fields that may be null (absent ones are null too: the prototype's default) */
static const uint32_t exw_nullable =
    EXW_BIT(EXW_ORG_ID) | EXW_BIT(EXW_API_KEY_ID) | EXW_BIT(EXW_ASN) | EXW_BIT(EXW_TLS) |
    EXW_BIT(EXW_UA) | EXW_BIT(EXW_PAYMENT) | EXW_BIT(EXW_CREATED_AT) | EXW_BIT(EXW_TASK) |
    EXW_BIT(EXW_PROMPT_SIMHASH) | EXW_BIT(EXW_COT) | EXW_BIT(EXW_LATENCY_MS);

/* ------------------------------------------------------------ string tables */

typedef struct {
    uint64_t hash;
    PyObject *str;   /* an exact, compact ASCII str (owned), or NULL */
    double value;    /* the epoch seconds of a creation time */
    int whole;       /* value is whole seconds (an int in the reference decoder); for
                      * an address: it is valid */
} exw_entry;

typedef struct {
    exw_entry *slots;
    uint64_t mask;
} exw_table;

enum {
    EXW_TAB_ACCOUNT, EXW_TAB_ORG, EXW_TAB_IP, EXW_TAB_TLS, EXW_TAB_UA,
    EXW_TAB_PAYMENT, EXW_TAB_CREATED, EXW_TAB_MODEL, EXW_TAB_TASK, EXW_TAB_FEATURE,
    EXW_N_TABLES
};
/* log2 of each table's size: about as many slots as distinct values are hot at once */
static const int exw_table_bits[EXW_N_TABLES] = {16, 14, 16, 12, 12, 15, 15, 8, 8, 8};

static exw_table exw_tables[EXW_N_TABLES];
static Py_ssize_t exw_offsets[EXW_N_SLOTS];
static PyTypeObject *exw_type = NULL;
static PyObject *exw_proto = NULL;
static PyCFunction exw_copy = NULL;  /* the prototype's __copy__, a METH_NOARGS C function */
static PyObject *exw_ip_ok = NULL;  /* str -> bool: the contract's check of an address */
static PyObject *exw_access_paths[5];
static const char *const exw_access_names[5] = {"api", "chat", "cloud", "agent", "other"};
static PyObject *exw_status[600];
/* each wire field's string table (-1: not kept, a new str each time) */
static const int exw_field_table[EXW_N_WIRE] = {
    -1, -1, -1, EXW_TAB_ACCOUNT, EXW_TAB_ORG, -1, -1,
    EXW_TAB_IP, -1, EXW_TAB_TLS, EXW_TAB_UA, EXW_TAB_PAYMENT,
    EXW_TAB_CREATED, EXW_TAB_MODEL, -1, EXW_TAB_TASK, -1, -1,
    -1, -1, -1, -1,
};

static inline uint64_t exw_hash(const char *s, Py_ssize_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, s, (size_t)n);
        h = (h ^ w) * 0x94D049BB133111EBULL;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

static inline PyObject *exw_new_ascii(const char *s, Py_ssize_t n)
{
    PyObject *str = PyUnicode_New(n, 127);
    if (str != NULL && n > 0)
        memcpy(PyUnicode_1BYTE_DATA(str), s, (size_t)n);
    return str;
}

/* the table's slot for these bytes (their hash in *h); *hit says whether it holds them */
static inline exw_entry *exw_slot(exw_table *table, const char *s, Py_ssize_t n, uint64_t *h,
                                  int *hit)
{
    exw_entry *e;
    *h = exw_hash(s, n);
    e = &table->slots[*h & table->mask];
    *hit = e->str != NULL && e->hash == *h && PyUnicode_GET_LENGTH(e->str) == n &&
           memcmp(PyUnicode_1BYTE_DATA(e->str), s, (size_t)n) == 0;
    return e;
}

/* a new reference to the str of these (ASCII) bytes, from the table when it was seen */
static inline PyObject *exw_intern(exw_table *table, const char *s, Py_ssize_t n)
{
    int hit;
    uint64_t h;
    exw_entry *e = exw_slot(table, s, n, &h, &hit);
    if (!hit) {
        PyObject *str = exw_new_ascii(s, n);
        if (str == NULL)
            return NULL;
        Py_XSETREF(e->str, str);
        e->hash = h;
    }
    Py_INCREF(e->str);
    return e->str;
}

/* ------------------------------------------------------------ parsing */

static inline const char *exw_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* a string at p (its opening quote): its bytes are [*start, *start + *n); returns the
 * position after the closing quote, or NULL for anything but printable ASCII without
 * escapes */
static inline const char *exw_string(const char *p, const char *end, const char **start,
                                     Py_ssize_t *n)
{
    const char *q;
    if (p >= end || *p != '"')
        return NULL;
    q = ++p;
    while (q < end) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            *start = p;
            *n = q - p;
            return q + 1;
        }
        if (c < 0x20 || c > 0x7E || c == '\\')
            return NULL;
        q++;
    }
    return NULL;
}

static inline int exw_is_null(const char *p, const char *end)
{
    return end - p >= 4 && memcmp(p, "null", 4) == 0;
}

/* what may follow a value: whitespace, a comma or the closing brace */
static inline int exw_value_end(const char *p, const char *end)
{
    return p < end && (*p == ',' || *p == '}' || *p == ' ' || *p == '\t' || *p == '\n' ||
                       *p == '\r');
}

/* a non-negative JSON integer of at most 18 digits (so within int64) at p, nothing
 * after it but a value's end; returns the position after it or NULL */
static inline const char *exw_count(const char *p, const char *end, long long *value)
{
    const char *q = p;
    long long v = 0;
    while (q < end && *q >= '0' && *q <= '9' && q - p < 19) {
        v = v * 10 + (*q - '0');
        q++;
    }
    if (q == p || q - p > 18 || (*p == '0' && q - p > 1) || !exw_value_end(q, end))
        return NULL;
    *value = v;
    return q;
}

/* a JSON number with a fraction or an exponent (an integer is declined: msgspec makes
 * it a float, the reference decoder too, but not worth a second path here) */
static inline const char *exw_decimal(const char *p, const char *end, double *value)
{
    char buf[40];
    const char *q = p;
    int point = 0;
    char *parsed_end;
    if (q < end && *q == '-')
        q++;
    if (q >= end || *q < '0' || *q > '9')
        return NULL;
    if (*q == '0') {
        q++;
    } else {
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && *q == '.') {
        const char *digits = ++q;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
        if (q == digits)
            return NULL;
        point = 1;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        const char *digits;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        digits = q;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
        if (q == digits)
            return NULL;
        point = 1;
    }
    if (!point || q - p >= (Py_ssize_t)sizeof(buf) || !exw_value_end(q, end))
        return NULL;
    memcpy(buf, p, (size_t)(q - p));
    buf[q - p] = '\0';
    /* correctly rounded and locale-independent, as msgspec's and orjson's parsers */
    *value = PyOS_string_to_double(buf, &parsed_end, NULL);
    if (*value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (parsed_end != buf + (q - p))
        return NULL;
    return q;
}

static inline int exw_digit2(const char *s, int *v)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return 0;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

/* days from 1970-01-01 to a (valid) proleptic Gregorian date */
static inline long long exw_days_from_civil(int y, int m, int d)
{
    long long era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS.fffZ" (24 characters) or "YYYY-MM-DDTHH:MM:SSZ" (20) in the
 * years 1970..9999, seconds 00..59: epoch seconds computed as the reference decoder
 * does (the minute's whole seconds, plus the seconds and the fraction), and whether
 * they are whole (no fraction: an int there). 0 for any other shape. */
static inline int exw_timestamp(const char *s, Py_ssize_t n, double *t, long long *whole,
                                int *is_whole)
{
    int y1, y2, mo, d, h, mi, sec, mdays;
    long long minute;
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 24 && n != 20)
        return 0;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[n - 1] != 'Z')
        return 0;
    if (!exw_digit2(s, &y1) || !exw_digit2(s + 2, &y2) || !exw_digit2(s + 5, &mo) ||
        !exw_digit2(s + 8, &d) || !exw_digit2(s + 11, &h) || !exw_digit2(s + 14, &mi) ||
        !exw_digit2(s + 17, &sec))
        return 0;
    y1 = y1 * 100 + y2;
    if (y1 < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
        return 0;
    mdays = month_days[mo - 1];
    if (mo == 2 && (y1 % 4 == 0 && (y1 % 100 != 0 || y1 % 400 == 0)))
        mdays = 29;
    if (d > mdays)
        return 0;
    minute = exw_days_from_civil(y1, mo, d) * 86400 + h * 3600 + mi * 60;
    if (n == 24) {
        int f1, f2, f3;
        if (s[19] != '.')
            return 0;
        f1 = s[20] - '0';
        f2 = s[21] - '0';
        f3 = s[22] - '0';
        if (f1 < 0 || f1 > 9 || f2 < 0 || f2 > 9 || f3 < 0 || f3 > 9)
            return 0;
        /* models.wire.finish: the minute (a double) plus (the seconds plus the fraction) */
        *t = (double)minute + ((double)sec + (double)(f1 * 100 + f2 * 10 + f3) / 1000.0);
        *is_whole = 0;
    } else {
        *whole = minute + sec;
        *t = (double)*whole;
        *is_whole = 1;
    }
    return 1;
}

/* a dotted quad as ipaddress.IPv4Address accepts it (no leading zeros, 0..255) */
static inline int exw_ipv4(const char *s, Py_ssize_t n)
{
    int dots = 0, digits = 0, octet = 0;
    Py_ssize_t i;
    if (n < 7 || n > 15)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (digits == 0)
                return 0;
            dots++;
            digits = octet = 0;
        } else if (c >= '0' && c <= '9') {
            if (digits == 1 && octet == 0)
                return 0;  /* a leading zero */
            octet = octet * 10 + (c - '0');
            if (++digits > 3 || octet > 255)
                return 0;
        } else {
            return 0;
        }
    }
    return dots == 3 && digits > 0;
}

/* ------------------------------------------------------------ set-up */

/* Find ApiCall's slots, keep a prototype (defaults everywhere) to copy and the
 * contract's check of an address that is not a dotted quad. */
static int exw_fast_init(PyObject *cls, PyObject *proto, PyObject *ip_ok)
{
    int i;
    PyObject *copy;
    if (!PyType_Check(cls) || Py_TYPE(proto) != (PyTypeObject *)cls) {
        PyErr_SetString(PyExc_TypeError, "fastwire: ApiCall and an instance of it expected");
        return -1;
    }
    for (i = 0; i < EXW_N_SLOTS; i++) {
        PyObject *d = PyDict_GetItemString(((PyTypeObject *)cls)->tp_dict, exw_slot_names[i]);
        PyMemberDef *m;
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_ImportError, "fastwire: ApiCall.%s is not a slot",
                         exw_slot_names[i]);
            return -1;
        }
        m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_ImportError, "fastwire: ApiCall.%s is not an object slot",
                         exw_slot_names[i]);
            return -1;
        }
        exw_offsets[i] = m->offset;
    }
    for (i = 0; i < EXW_N_WIRE; i++)
        exw_wire_key_len[i] = (Py_ssize_t)strlen(exw_wire_keys[i]);
    /* Struct.__copy__, called as the C function it is (ApiCall does not override it;
     * the type keeps the descriptor alive) */
    copy = PyObject_GetAttrString(cls, "__copy__");
    if (copy == NULL)
        return -1;
    Py_DECREF(copy);
    if (!Py_IS_TYPE(copy, &PyMethodDescr_Type) ||
        (((PyMethodDescrObject *)copy)->d_method->ml_flags & (METH_VARARGS | METH_KEYWORDS |
                                                              METH_NOARGS | METH_O |
                                                              METH_FASTCALL)) != METH_NOARGS) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ImportError, "fastwire: ApiCall.__copy__ is not a C method");
        return -1;
    }
    exw_copy = ((PyMethodDescrObject *)copy)->d_method->ml_meth;
    for (i = 0; i < 5; i++) {
        Py_XSETREF(exw_access_paths[i], PyUnicode_InternFromString(exw_access_names[i]));
        if (exw_access_paths[i] == NULL)
            return -1;
    }
    for (i = 100; i < 600; i++) {
        Py_XSETREF(exw_status[i], PyLong_FromLong(i));
        if (exw_status[i] == NULL)
            return -1;
    }
    for (i = 0; i < EXW_N_TABLES; i++) {
        if (exw_tables[i].slots == NULL) {
            uint64_t size = (uint64_t)1 << exw_table_bits[i];
            exw_tables[i].slots = (exw_entry *)PyMem_Calloc((size_t)size, sizeof(exw_entry));
            if (exw_tables[i].slots == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            exw_tables[i].mask = size - 1;
        }
    }
    Py_INCREF(cls);
    Py_XSETREF(exw_type, (PyTypeObject *)cls);
    Py_INCREF(proto);
    Py_XSETREF(exw_proto, proto);
    Py_INCREF(ip_ok);
    Py_XSETREF(exw_ip_ok, ip_ok);
    return 0;
}

/* How many of the tables' slots hold a string (for tests and memory figures). */
static Py_ssize_t exw_fast_interned(void)
{
    Py_ssize_t n = 0;
    int i;
    uint64_t j;
    for (i = 0; i < EXW_N_TABLES; i++)
        for (j = 0; exw_tables[i].slots != NULL && j <= exw_tables[i].mask; j++)
            n += exw_tables[i].slots[j].str != NULL;
    return n;
}

/* ------------------------------------------------------------ decoding */

static inline int exw_key(const char *s, Py_ssize_t n, int guess)
{
    int i;
    if (guess < EXW_N_WIRE && exw_wire_key_len[guess] == n &&
        memcmp(exw_wire_keys[guess], s, (size_t)n) == 0)
        return guess;
    for (i = 0; i < EXW_N_WIRE; i++)
        if (exw_wire_key_len[i] == n && memcmp(exw_wire_keys[i], s, (size_t)n) == 0)
            return i;
    return -1;
}

/* One payload (bytes) -> a new ApiCall, or a new reference to None to decline, or NULL
 * with an exception set (out of memory). */
static PyObject *exw_fast_decode(PyObject *payload)
{
    PyObject *values[EXW_N_SLOTS] = {NULL};
    PyObject *event = NULL;
    const char *p, *end, *s;
    Py_ssize_t n;
    uint32_t seen = 0;
    int field = -1, i;
    char *base;

    if (exw_proto == NULL || !PyBytes_CheckExact(payload))
        Py_RETURN_NONE;
    p = PyBytes_AS_STRING(payload);
    end = p + PyBytes_GET_SIZE(payload);
    p = exw_ws(p, end);
    if (p >= end || *p != '{')
        Py_RETURN_NONE;
    p = exw_ws(p + 1, end);
    for (;;) {
        PyObject *value = NULL;
        p = exw_string(p, end, &s, &n);
        if (p == NULL)
            goto decline;
        field = exw_key(s, n, field + 1);
        if (field < 0 || (seen & EXW_BIT(field)))
            goto decline;  /* an unknown key (raw text among them) or a repeated one */
        seen |= EXW_BIT(field);
        p = exw_ws(p, end);
        if (p >= end || *p != ':')
            goto decline;
        p = exw_ws(p + 1, end);
        if (p >= end)
            goto decline;
        if (*p == 'n') {  /* no other value a field takes starts so */
            if (!(exw_nullable & EXW_BIT(field)) || !exw_is_null(p, end))
                goto decline;
            p += 4;
            Py_INCREF(Py_None);
            values[field] = Py_None;
            goto next;
        }
        switch (field) {
        case EXW_V:
            if (*p != '1' || !exw_value_end(p + 1, end))
                goto decline;
            p++;
            value = PyLong_FromLong(1);
            break;
        case EXW_EVENT_ID:
        case EXW_TS:
        case EXW_CLIENT_IP:
        case EXW_PROMPT_SIMHASH:
        case EXW_ACCOUNT_ID:
        case EXW_ORG_ID:
        case EXW_API_KEY_ID:
        case EXW_TLS:
        case EXW_UA:
        case EXW_PAYMENT:
        case EXW_CREATED_AT:
        case EXW_MODEL:
        case EXW_TASK: {
            Py_ssize_t lo = 1, hi = 128;
            int table = exw_field_table[field];
            p = exw_string(p, end, &s, &n);
            if (p == NULL)
                goto decline;
            if (field == EXW_TLS || field == EXW_PAYMENT)
                lo = 0;
            else if (field == EXW_UA)
                lo = 0, hi = 512;
            else if (field == EXW_TASK)
                hi = 32;
            else if (field == EXW_TS || field == EXW_CLIENT_IP || field == EXW_CREATED_AT ||
                     field == EXW_PROMPT_SIMHASH)
                lo = 0, hi = PY_SSIZE_T_MAX;  /* shapes checked below */
            if (n < lo || n > hi)
                goto decline;
            if (field == EXW_TS) {
                double t;
                long long whole;
                int is_whole;
                if (!exw_timestamp(s, n, &t, &whole, &is_whole))
                    goto decline;
                values[EXW_T] = is_whole ? PyLong_FromLongLong(whole) : PyFloat_FromDouble(t);
                if (values[EXW_T] == NULL)
                    goto error;
            } else if (field == EXW_CLIENT_IP) {
                /* a dotted quad is checked here; any other address (IPv6) once per
                 * table slot by the contract's own check (ipaddress) */
                int hit;
                uint64_t h;
                exw_entry *e;
                if (n > 45)  /* (the longest address ipaddress reads, as the contract) */
                    goto decline;
                e = exw_slot(&exw_tables[EXW_TAB_IP], s, n, &h, &hit);
                if (!hit) {
                    PyObject *str = exw_new_ascii(s, n);
                    int ok;
                    if (str == NULL)
                        goto error;
                    ok = exw_ipv4(s, n);
                    if (!ok) {
                        PyObject *verdict = PyObject_CallOneArg(exw_ip_ok, str);
                        ok = verdict == NULL ? -1 : PyObject_IsTrue(verdict);
                        Py_XDECREF(verdict);
                        if (ok < 0) {
                            Py_DECREF(str);
                            goto error;
                        }
                    }
                    Py_XSETREF(e->str, str);
                    e->hash = h;
                    e->whole = ok;  /* (here: the address is valid) */
                }
                if (!e->whole)
                    goto decline;
                Py_INCREF(e->str);
                value = e->str;
                break;
            } else if (field == EXW_PROMPT_SIMHASH) {
                unsigned long long h = 0;
                Py_ssize_t j;
                if (n != 16)
                    goto decline;
                for (j = 0; j < 16; j++) {
                    char c = s[j];
                    if (c >= '0' && c <= '9')
                        h = h * 16 + (unsigned long long)(c - '0');
                    else if (c >= 'a' && c <= 'f')
                        h = h * 16 + (unsigned long long)(c - 'a' + 10);
                    else
                        goto decline;
                }
                values[EXW_SIMHASH] = PyLong_FromUnsignedLongLong(h);
                if (values[EXW_SIMHASH] == NULL)
                    goto error;
            } else if (field == EXW_CREATED_AT) {
                int hit;
                uint64_t h;
                exw_entry *e = exw_slot(&exw_tables[EXW_TAB_CREATED], s, n, &h, &hit);
                if (!hit) {
                    double t;
                    long long whole;
                    int is_whole;
                    PyObject *str;
                    if (!exw_timestamp(s, n, &t, &whole, &is_whole))
                        goto decline;
                    str = exw_new_ascii(s, n);
                    if (str == NULL)
                        goto error;
                    Py_XSETREF(e->str, str);
                    e->hash = h;
                    e->value = t;
                    e->whole = is_whole;
                }
                Py_INCREF(e->str);
                value = e->str;
                values[EXW_CREATED_T] = e->whole ? PyLong_FromLongLong((long long)e->value)
                                                 : PyFloat_FromDouble(e->value);
                if (values[EXW_CREATED_T] == NULL)
                    goto error;
                break;
            }
            value = table >= 0 ? exw_intern(&exw_tables[table], s, n) : exw_new_ascii(s, n);
            break;
        }
        case EXW_ACCESS_PATH:
            p = exw_string(p, end, &s, &n);
            if (p == NULL)
                goto decline;
            for (i = 0; i < 5; i++) {
                if (PyUnicode_GET_LENGTH(exw_access_paths[i]) == n &&
                    memcmp(exw_access_names[i], s, (size_t)n) == 0)
                    break;
            }
            if (i == 5)
                goto decline;
            value = exw_access_paths[i];
            Py_INCREF(value);
            break;
        case EXW_ASN:
        case EXW_LATENCY_MS:
        case EXW_INPUT_TOKENS:
        case EXW_OUTPUT_TOKENS:
        case EXW_STATUS: {
            long long v;
            p = exw_count(p, end, &v);
            if (p == NULL)
                goto decline;
            if (field == EXW_STATUS) {
                if (v < 100 || v > 599)
                    goto decline;
                value = exw_status[v];
                Py_INCREF(value);
            } else {
                value = PyLong_FromLongLong(v);
            }
            break;
        }
        case EXW_COT: {
            double v;
            p = exw_decimal(p, end, &v);
            if (p == NULL || !(v >= 0.0 && v <= 1.0))
                goto decline;
            value = PyFloat_FromDouble(v);
            break;
        }
        case EXW_FEATURES: {
            PyObject *items[16];
            int count = 0;
            if (*p != '[')
                goto decline;
            p = exw_ws(p + 1, end);
            if (p < end && *p == ']') {
                p++;
                value = PyTuple_New(0);
                break;
            }
            for (;;) {
                if (count == 16)
                    goto decline_items;
                p = exw_string(p, end, &s, &n);
                if (p == NULL || n < 1 || n > 32)
                    goto decline_items;
                items[count] = exw_intern(&exw_tables[EXW_TAB_FEATURE], s, n);
                if (items[count] == NULL)
                    goto error_items;
                count++;
                p = exw_ws(p, end);
                if (p < end && *p == ',') {
                    p = exw_ws(p + 1, end);
                    continue;
                }
                if (p < end && *p == ']') {
                    p++;
                    break;
                }
                goto decline_items;
            }
            value = PyTuple_New(count);
            if (value != NULL) {
                for (i = 0; i < count; i++)
                    PyTuple_SET_ITEM(value, i, items[i]);
            } else {
                for (i = 0; i < count; i++)
                    Py_DECREF(items[i]);
            }
            break;
        decline_items:
            for (i = 0; i < count; i++)
                Py_DECREF(items[i]);
            goto decline;
        error_items:
            for (i = 0; i < count; i++)
                Py_DECREF(items[i]);
            goto error;
        }
        default:
            goto decline;
        }
        if (value == NULL)
            goto error;
        values[field] = value;
    next:
        p = exw_ws(p, end);
        if (p >= end)
            goto decline;
        if (*p == ',') {
            p = exw_ws(p + 1, end);
            continue;
        }
        if (*p == '}') {
            p = exw_ws(p + 1, end);
            break;
        }
        goto decline;
    }
    if (p != end || (seen & exw_required) != exw_required)
        goto decline;

    event = exw_copy(exw_proto, NULL);
    if (event == NULL)
        goto error;
    base = (char *)event;
    for (i = 0; i < EXW_N_SLOTS; i++) {
        if (values[i] != NULL) {
            PyObject **slot = (PyObject **)(base + exw_offsets[i]);
            Py_XSETREF(*slot, values[i]);  /* (the reference moves into the event) */
            values[i] = NULL;
        }
    }
    return event;

decline:
    for (i = 0; i < EXW_N_SLOTS; i++)
        Py_XDECREF(values[i]);
    Py_RETURN_NONE;
error:
    for (i = 0; i < EXW_N_SLOTS; i++)
        Py_XDECREF(values[i]);
    return NULL;
}

#endif /* EXW_FASTWIRE_H */
