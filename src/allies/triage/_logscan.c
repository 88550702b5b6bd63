/* The triage's scanning core: which lines of a block are plain access-log lines, their statuses,
   where the few lines Python must read are (the lines that are not plain), and, for each ally id
   the plain lines request on the ally endpoint, its counts (a small hash table per block). One
   pass over the bytes, without the GIL; memory grows with the distinct ids, clients and methods,
   not with the lines. When asked, it also counts the failed requests (status 400 and up) by minute
   and status: the report's timeline.

   "Plain" is exactly allies.logparse.PLAIN (kept in step by tests/test_triage.py's differential
   tests): Apache common/combined, the original log's quirks (`- 0500`, an extra field after the
   size), and only dates that need no calendar arithmetic to trust (29/Feb, 30/Feb, second 60,
   years 0001 and 9999 go to Python). Every other line is handed back to Python's `re`. */

#ifndef LOGSCAN_CORE_ONLY /* tests/fuzz/logscan_fuzzer.c builds the core alone, without Python */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first, as Python asks */
#endif
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define MAX_STATUS 600

typedef struct {
    ssize_t index, start, end; /* the line */
    int status;
    int64_t epoch;
    ssize_t host_end, method_start, method_end, ally_start, ally_end; /* of a request to allies */
} Line;

/* A growable array's items with room for one more (doubled when full), or NULL when memory is out
   (the old items then stay valid). */
static void *room_for_one(void *items, ssize_t len, ssize_t *cap, size_t item_size, ssize_t first_cap) {
    if (len < *cap) return items;
    ssize_t grown_cap = *cap ? *cap * 2 : first_cap;
    void *grown = realloc(items, (size_t)grown_cap * item_size);
    if (grown != NULL) *cap = grown_cap;
    return grown;
}

typedef struct {
    Line *items;
    ssize_t len, cap;
} Lines;

static int push(Lines *lines, Line line) {
    Line *items = room_for_one(lines->items, lines->len, &lines->cap, sizeof(Line), 256);
    if (items == NULL) return -1;
    lines->items = items;
    items[lines->len++] = line;
    return 0;
}

/* Counts keyed by a span of the block (a method, a client) or, for statuses, by the status; with
   the line (index) where the key was first seen. */
typedef struct {
    ssize_t start, end, count, first;
} Tally;

typedef struct {
    Tally *items;
    ssize_t len, cap;
} Tallies;

static int append(Tallies *t, Tally item) {
    Tally *items = room_for_one(t->items, t->len, &t->cap, sizeof(Tally), 2);
    if (items == NULL) return -1;
    t->items = items;
    items[t->len++] = item;
    return 0;
}

/* One more of the span [start, end) on line `index`; a span not seen yet is kept only while fewer
   than `limit`. */
static int tally_span(Tallies *t, const char *data, ssize_t start, ssize_t end, ssize_t index, ssize_t limit) {
    for (ssize_t i = 0; i < t->len; i++) {
        Tally *item = &t->items[i];
        if (item->end - item->start == end - start && memcmp(data + item->start, data + start, (size_t)(end - start)) == 0) {
            item->count++;
            return 0;
        }
    }
    return t->len < limit ? append(t, (Tally){start, end, 1, index}) : 0;
}

static int tally_status(Tallies *t, int status) {
    for (ssize_t i = 0; i < t->len; i++)
        if (t->items[i].start == status) {
            t->items[i].count++;
            return 0;
        }
    return append(t, (Tally){status, status, 1, 0});
}

/* What one block says about one ally id, as written (Python makes ids canonical and merges). */
typedef struct {
    ssize_t id_start, id_end;
    uint64_t hash;
    ssize_t requests, failures;
    int64_t first, last;             /* the times of its first and last failures */
    int64_t latest_epoch;            /* its latest request: time, line, success */
    ssize_t latest_index;
    int latest_ok;
    Tallies statuses, methods, clients; /* of its failures; clients: the first `max_clients` */
} Ally;

typedef struct {
    Ally *items;
    ssize_t len, cap;
    ssize_t *slots; /* open addressing: index + 1 into items, 0 when free */
    ssize_t slots_len;
} Allies;

static uint64_t hash_of(const char *p, ssize_t n) { /* FNV-1a */
    uint64_t h = 1469598103934665603u;
    for (ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211u;
    return h;
}

static int grow_slots(Allies *a) {
    ssize_t len = a->slots_len ? a->slots_len * 2 : 64;
    ssize_t *slots = calloc((size_t)len, sizeof(ssize_t));
    if (slots == NULL) return -1;
    for (ssize_t i = 0; i < a->len; i++) {
        ssize_t at = (ssize_t)(a->items[i].hash & (uint64_t)(len - 1));
        while (slots[at]) at = (at + 1) & (len - 1);
        slots[at] = i + 1;
    }
    free(a->slots);
    a->slots = slots;
    a->slots_len = len;
    return 0;
}

static Ally *find_or_add(Allies *a, const char *data, ssize_t start, ssize_t end) {
    if (2 * (a->len + 1) > a->slots_len && grow_slots(a) < 0) return NULL;
    uint64_t hash = hash_of(data + start, end - start);
    ssize_t at = (ssize_t)(hash & (uint64_t)(a->slots_len - 1));
    for (; a->slots[at]; at = (at + 1) & (a->slots_len - 1)) {
        Ally *ally = &a->items[a->slots[at] - 1];
        if (ally->hash == hash && ally->id_end - ally->id_start == end - start &&
            memcmp(data + ally->id_start, data + start, (size_t)(end - start)) == 0)
            return ally;
    }
    Ally *items = room_for_one(a->items, a->len, &a->cap, sizeof(Ally), 64);
    if (items == NULL) return NULL;
    a->items = items;
    a->items[a->len] = (Ally){.id_start = start, .id_end = end, .hash = hash, .latest_epoch = INT64_MIN};
    a->slots[at] = a->len + 1;
    return &a->items[a->len++];
}

/* One request to the ally endpoint (lines come in block order). */
static int count_request(Allies *a, const char *data, const Line *l, ssize_t max_clients) {
    Ally *ally = find_or_add(a, data, l->ally_start, l->ally_end);
    if (ally == NULL) return -1;
    ally->requests++;
    if (l->epoch >= ally->latest_epoch) { /* on a tie, the later line */
        ally->latest_epoch = l->epoch;
        ally->latest_index = l->index;
        ally->latest_ok = l->status < 400;
    }
    if (l->status < 400) return 0;
    if (ally->failures++ == 0 || l->epoch < ally->first) ally->first = l->epoch;
    if (ally->failures == 1 || l->epoch > ally->last) ally->last = l->epoch;
    if (tally_status(&ally->statuses, l->status) < 0) return -1;
    if (tally_span(&ally->methods, data, l->method_start, l->method_end, l->index, SSIZE_MAX) < 0) return -1;
    return tally_span(&ally->clients, data, l->start, l->host_end, l->index, max_clients);
}

static void free_allies(Allies *a) {
    for (ssize_t i = 0; i < a->len; i++) {
        free(a->items[i].statuses.items);
        free(a->items[i].methods.items);
        free(a->items[i].clients.items);
    }
    free(a->items);
    free(a->slots);
}

/* [^ "\\]+ followed by a space */
static const char *field(const char *p, const char *end) {
    const char *start = p;
    while (p < end && *p != ' ' && *p != '"' && *p != '\\') p++;
    return (p == start || p >= end || *p != ' ') ? NULL : p + 1;
}

static int digits(const char *p, int n) {
    for (int i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

static int number(const char *p, int n) {
    int value = 0;
    for (int i = 0; i < n; i++) value = value * 10 + (p[i] - '0');
    return value;
}

static int month_of(const char *p) {
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int m = 0; m < 12; m++)
        if (memcmp(names + 3 * m, p, 3) == 0) return m + 1;
    return 0;
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Whether [p, end) (one line, without its newline) is plain; if so, its status and UTC time. */
static int plain(const char *p, const char *end, int *status, int64_t *epoch, const char **request,
                 const char **request_end) {
    if (end > p && end[-1] == '\r') end--;
    if (!(p = field(p, end)) || !(p = field(p, end)) || !(p = field(p, end))) return 0;
    /* [dd/Mon/yyyy:hh:mm:ss ?[-+] ?zzzz] " */
    if (end - p < 30 || *p != '[') return 0;
    p++;
    if (!digits(p, 2) || p[2] != '/' || p[6] != '/' || !digits(p + 7, 4) || p[11] != ':' ||
        !digits(p + 12, 2) || p[14] != ':' || !digits(p + 15, 2) || p[17] != ':' || !digits(p + 18, 2))
        return 0;
    int day = number(p, 2), month = month_of(p + 3), year = number(p + 7, 4);
    int hour = number(p + 12, 2), minute = number(p + 15, 2), second = number(p + 18, 2);
    if (!month || day < 1 || hour > 23 || minute > 59 || second > 59) return 0;
    if (day > (month == 2 ? 28 : (month == 4 || month == 6 || month == 9 || month == 11) ? 30 : 31)) return 0;
    if (year < 2 || year > 9998) return 0;
    p += 20;
    if (*p == ' ') p++;
    if (*p != '-' && *p != '+') return 0;
    int sign = *p++ == '-' ? -1 : 1;
    if (*p == ' ') p++;
    if (end - p < 8 || !digits(p, 4) || p[4] != ']' || p[5] != ' ' || p[6] != '"') return 0;
    int zone_hours = number(p, 2), zone_minutes = number(p + 2, 2);
    if (zone_hours > 14 || zone_minutes > 59) return 0;
    p += 7;
    /* "(?:[^ "\\][^"\\]*)?" */
    *request = p;
    if (p < end && (*p == ' ' || *p == '\\')) return 0;
    const char *quote = memchr(p, '"', (size_t)(end - p));
    if (quote == NULL || memchr(p, '\\', (size_t)(quote - p)) != NULL) return 0;
    p = quote;
    *request_end = p++;
    /* " [1-5][0-9]{2} (?:[0-9]+|-)(?: |$)" */
    if (end - p < 6 || *p != ' ' || p[1] < '1' || p[1] > '5' || !digits(p + 2, 2) || p[4] != ' ') return 0;
    *status = number(p + 1, 3);
    p += 5;
    if (*p == '-') {
        p++;
    } else {
        const char *size = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == size) return 0;
    }
    if (p < end && *p != ' ') return 0;
    int64_t offset = sign * (zone_hours * 3600 + zone_minutes * 60);
    *epoch = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    return 1;
}

static int http_version(const char *p, const char *end) { /* " HTTP/[0-9.]+" up to end */
    if (end - p < 7 || memcmp(p, " HTTP/", 6) != 0) return 0;
    for (p += 6; p < end; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.')) return 0;
    return 1;
}

/* Whether the request [p, end) is one to the ally endpoint: logparse._CREDENTIALS, or with
   `any_endpoint` logparse._ANY_ALLY, matched whole. Fills the method and id spans. */
static int endpoint(const char *p, const char *end, int any_endpoint, const char **method_end, const char **ally,
                    const char **ally_end) {
    const char *start = p;
    while (p < end && *p >= 'A' && *p <= 'Z') p++;
    if (p == start || end - p < 9 || memcmp(p, " /allies/", 9) != 0) return 0;
    *method_end = p;
    p += 9;
    *ally = p;
    while (p < end && *p != '/' && *p != '?' && *p != ' ') p++;
    if (p == *ally) return 0;
    *ally_end = p;
    if (any_endpoint) {
        if (p < end && (*p == '/' || *p == '?'))
            while (p < end && *p != ' ') p++;
        return http_version(p, end);
    }
    if (end - p < 12 || memcmp(p, "/credentials", 12) != 0) return 0;
    p += 12;
    if (p < end && *p == '?')
        while (p < end && *p != ' ') p++;
    return http_version(p, end);
}

/* Failed requests by minute and status, in a hash table (open addressing). */
typedef struct {
    int64_t minute;
    int status;
    ssize_t count; /* 0: a free slot */
} Bucket;

typedef struct {
    Bucket *items;
    ssize_t len, cap;
} Timeline;

static ssize_t slot_of(int64_t minute, int status, ssize_t cap) { /* Fibonacci hashing */
    return (ssize_t)((((uint64_t)minute * MAX_STATUS + (uint64_t)status) * 11400714819323198485u) >> 20) & (cap - 1);
}

static int grow_timeline(Timeline *t) {
    ssize_t cap = t->cap ? t->cap * 2 : 64;
    Bucket *items = calloc((size_t)cap, sizeof(Bucket));
    if (items == NULL) return -1;
    for (ssize_t i = 0; i < t->cap; i++) {
        Bucket *b = &t->items[i];
        if (!b->count) continue;
        ssize_t at = slot_of(b->minute, b->status, cap);
        while (items[at].count) at = (at + 1) & (cap - 1);
        items[at] = *b;
    }
    free(t->items);
    t->items = items;
    t->cap = cap;
    return 0;
}

static int count_failure(Timeline *t, int64_t epoch, int status) {
    if (2 * (t->len + 1) > t->cap && grow_timeline(t) < 0) return -1;
    int64_t minute = epoch >= 0 ? epoch / 60 : -((59 - epoch) / 60); /* rounded down */
    ssize_t at = slot_of(minute, status, t->cap);
    Bucket *b;
    while ((b = &t->items[at])->count && (b->minute != minute || b->status != status)) at = (at + 1) & (t->cap - 1);
    if (!b->count) {
        *b = (Bucket){minute, status, 0};
        t->len++;
    }
    b->count++;
    return 0;
}

typedef struct {
    ssize_t lines, counts[MAX_STATUS];
    Lines others;
    Allies allies;
    Timeline failures;
} Scan;

static int scan_block(const char *data, ssize_t size, ssize_t max_line, int64_t since, int64_t until,
                      int any_endpoint, ssize_t max_clients, int timeline, Scan *out) {
    const char *p = data, *stop = data + size;
    ssize_t index = 0;
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        const char *end = nl ? nl : stop;
        int status = 0;
        int64_t epoch = 0;
        const char *request = NULL, *request_end = NULL;
        Line line = {index, p - data, end - data, 0, 0};
        if (end - p > max_line || !plain(p, end, &status, &epoch, &request, &request_end)) {
            if (push(&out->others, line) < 0) return -1;
        } else if (epoch >= since && epoch <= until) {
            out->counts[status]++;
            if (timeline && status >= 400 && count_failure(&out->failures, epoch, status) < 0) return -1;
            const char *method_end, *ally, *ally_end;
            if (endpoint(request, request_end, any_endpoint, &method_end, &ally, &ally_end)) {
                line.status = status;
                line.epoch = epoch;
                line.host_end = (const char *)memchr(p, ' ', (size_t)(end - p)) - data;
                line.method_start = request - data;
                line.method_end = method_end - data;
                line.ally_start = ally - data;
                line.ally_end = ally_end - data;
                if (count_request(&out->allies, data, &line, max_clients) < 0) return -1;
            }
        }
        index++;
        if (nl == NULL) break; /* a last line without its newline */
        p = nl + 1;
    }
    out->lines = index;
    return 0;
}

#ifndef LOGSCAN_CORE_ONLY /* the module: Python objects out of a scan */

static PyObject *text(const char *data, ssize_t start, ssize_t end) {
    return PyUnicode_DecodeUTF8(data + start, end - start, "replace");
}

static PyObject *others_list(const Lines *lines) {
    PyObject *list = PyList_New(lines->len);
    for (ssize_t i = 0; list && i < lines->len; i++) {
        const Line *l = &lines->items[i];
        PyObject *item = Py_BuildValue("(nnn)", l->index, l->start, l->end);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *tallies_dict(const Tallies *t, const char *data, int by_status) {
    PyObject *dict = PyDict_New();
    for (ssize_t i = 0; dict && i < t->len; i++) {
        const Tally *item = &t->items[i];
        PyObject *key = by_status ? PyLong_FromSsize_t(item->start) : text(data, item->start, item->end);
        PyObject *value = PyLong_FromSsize_t(item->count);
        if (!key || !value || PyDict_SetItem(dict, key, value) < 0) Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    return dict;
}

static PyObject *first_seen_list(const Tallies *t, const char *data) { /* [(line index, text)] */
    PyObject *list = PyList_New(t->len);
    for (ssize_t i = 0; list && i < t->len; i++) {
        PyObject *span = text(data, t->items[i].start, t->items[i].end), *item = NULL;
        if (span != NULL) item = Py_BuildValue("(nO)", t->items[i].first, span);
        Py_XDECREF(span);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *epoch_or_none(const Ally *ally, int64_t epoch) {
    if (ally->failures == 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(epoch);
}

/* What a block says about one ally id, by name (logparse.AllyCounts documents each field). */
static PyStructSequence_Field ally_counts_fields[] = {
    {"ally", "the id as written in the path"},
    {"requests", "requests to the ally endpoint"},
    {"failures", "those with a status of 400 and up"},
    {"statuses", "{status: failures}"},
    {"methods", "{method: failures}"},
    {"first_failure", "UTC epoch seconds, None without failures"},
    {"last_failure", "UTC epoch seconds, None without failures"},
    {"clients", "[(line index, client)] of the first distinct clients of its failures"},
    {"latest_epoch", "the time of its latest request"},
    {"latest_index", "that request's line index in the block"},
    {"latest_ok", "whether that request succeeded"},
    {NULL, NULL}};
static PyStructSequence_Desc ally_counts_desc = {"allies.triage._logscan.AllyCounts",
                                                 "What a block says about one ally id.", ally_counts_fields, 11};
static PyTypeObject *AllyCountsType;

static PyObject *ally_counts(const Ally *ally, const char *data) { /* a new AllyCounts, or NULL */
    PyObject *fields[11] = {
        text(data, ally->id_start, ally->id_end),
        PyLong_FromSsize_t(ally->requests),
        PyLong_FromSsize_t(ally->failures),
        tallies_dict(&ally->statuses, data, 1),
        tallies_dict(&ally->methods, data, 0),
        epoch_or_none(ally, ally->first),
        epoch_or_none(ally, ally->last),
        first_seen_list(&ally->clients, data),
        PyLong_FromLongLong((long long)ally->latest_epoch),
        PyLong_FromSsize_t(ally->latest_index),
        PyBool_FromLong(ally->latest_ok),
    };
    PyObject *item = PyStructSequence_New(AllyCountsType);
    for (int f = 0; f < 11; f++) {
        if (fields[f] == NULL) Py_CLEAR(item);
    }
    for (int f = 0; f < 11; f++) {
        if (item != NULL)
            PyStructSequence_SET_ITEM(item, f, fields[f]); /* steals the reference */
        else
            Py_XDECREF(fields[f]);
    }
    return item;
}

static PyObject *allies_list(const Allies *a, const char *data) {
    PyObject *list = PyList_New(a->len);
    for (ssize_t i = 0; list && i < a->len; i++) {
        PyObject *item = ally_counts(&a->items[i], data);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *timeline_dict(const Timeline *t) { /* {(minute, status): failures} */
    PyObject *dict = PyDict_New();
    for (ssize_t i = 0; dict && i < t->cap; i++) {
        const Bucket *b = &t->items[i];
        if (!b->count) continue;
        PyObject *key = Py_BuildValue("(Li)", (long long)b->minute, b->status), *value = PyLong_FromSsize_t(b->count);
        if (!key || !value || PyDict_SetItem(dict, key, value) < 0) Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    return dict;
}

PyDoc_STRVAR(scan_doc,
             "scan(block, max_line_bytes, since, until, any_endpoint, max_clients, timeline)\n"
             "-> (lines, statuses, others, allies, failures)\n\n"
             "block: whole lines, each ending with a newline. since/until: UTC epoch seconds bounding the\n"
             "plain lines counted. statuses: {status: count} of the plain lines in the window. others:\n"
             "[(index, start, end)] of the lines that are not plain. allies: for each ally id (as written)\n"
             "that the plain lines in the window request on the ally endpoint (credentials; with\n"
             "any_endpoint, anything under /allies/<id>): an AllyCounts (ally, requests, failures,\n"
             "statuses, methods, first_failure, last_failure, clients: the first max_clients distinct\n"
             "clients of its failures, latest_epoch, latest_index, latest_ok). failures (empty unless timeline): {(minute, status): count} of the plain lines\n"
             "in the window with a status of 400 and up (minute: UTC epoch seconds // 60).");

static PyObject *scan(PyObject *module, PyObject *args) {
    Py_buffer block;
    ssize_t max_line;
    long long since, until;
    int any_endpoint, timeline;
    ssize_t max_clients;
    if (!PyArg_ParseTuple(args, "y*nLLpnp", &block, &max_line, &since, &until, &any_endpoint, &max_clients,
                          &timeline))
        return NULL;
    Scan *out = calloc(1, sizeof(Scan));
    if (out == NULL) {
        PyBuffer_Release(&block);
        return PyErr_NoMemory();
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = scan_block(block.buf, block.len, max_line, since, until, any_endpoint, max_clients, timeline, out);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL, *statuses = NULL, *others = NULL, *allies = NULL, *failures = NULL;
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    if (!(statuses = PyDict_New())) goto done;
    for (int code = 0; code < MAX_STATUS; code++) {
        if (!out->counts[code]) continue;
        PyObject *key = PyLong_FromLong(code), *value = PyLong_FromSsize_t(out->counts[code]);
        int bad = !key || !value || PyDict_SetItem(statuses, key, value) < 0;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (bad) goto done;
    }
    if (!(others = others_list(&out->others)) || !(allies = allies_list(&out->allies, block.buf)) ||
        !(failures = timeline_dict(&out->failures)))
        goto done;
    result = Py_BuildValue("(nOOOO)", out->lines, statuses, others, allies, failures);
done:
    PyBuffer_Release(&block);
    Py_XDECREF(statuses);
    Py_XDECREF(others);
    Py_XDECREF(allies);
    Py_XDECREF(failures);
    free(out->others.items);
    free(out->failures.items);
    free_allies(&out->allies);
    free(out);
    return result;
}

static PyMethodDef methods[] = {{"scan", scan, METH_VARARGS, scan_doc}, {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "allies.triage._logscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__logscan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (AllyCountsType == NULL && (AllyCountsType = PyStructSequence_NewType(&ally_counts_desc)) == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(AllyCountsType);
    if (PyModule_AddObject(m, "AllyCounts", (PyObject *)AllyCountsType) < 0) {
        Py_DECREF(AllyCountsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
#endif
