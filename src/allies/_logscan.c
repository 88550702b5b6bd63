/* The triage's scanning core: which lines of a block are plain access-log lines, their statuses,
   where the few lines Python must read are (the lines that are not plain), and the fields of the
   plain lines that are requests to the ally endpoint. One pass over the bytes, without the GIL; no
   allocation per line.

   "Plain" is exactly allies.logparse.PLAIN (kept in step by tests/test_triage.py's differential
   tests): Apache common/combined, the original log's quirks (`- 0500`, an extra field after the
   size), and only dates that need no calendar arithmetic to trust (29/Feb, 30/Feb, second 60,
   years 0001 and 9999 go to Python). Every other line is handed back to Python's `re`. */

#ifndef LOGSCAN_CORE_ONLY /* tests/fuzz/logscan_fuzzer.c builds the core alone, without Python */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first, as Python asks */
#endif
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

typedef struct {
    Line *items;
    ssize_t len, cap;
} Lines;

static int push(Lines *lines, Line line) {
    if (lines->len == lines->cap) {
        ssize_t cap = lines->cap ? lines->cap * 2 : 256;
        Line *grown = realloc(lines->items, (size_t)cap * sizeof(Line));
        if (grown == NULL) return -1;
        lines->items = grown;
        lines->cap = cap;
    }
    lines->items[lines->len++] = line;
    return 0;
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

typedef struct {
    ssize_t lines, counts[MAX_STATUS];
    Lines others, allies;
} Scan;

static int scan_block(const char *data, ssize_t size, ssize_t max_line, int64_t since, int64_t until,
                      int any_endpoint, Scan *out) {
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
            const char *method_end, *ally, *ally_end;
            if (endpoint(request, request_end, any_endpoint, &method_end, &ally, &ally_end)) {
                line.status = status;
                line.epoch = epoch;
                line.host_end = (const char *)memchr(p, ' ', (size_t)(end - p)) - data;
                line.method_start = request - data;
                line.method_end = method_end - data;
                line.ally_start = ally - data;
                line.ally_end = ally_end - data;
                if (push(&out->allies, line) < 0) return -1;
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

static PyObject *allies_list(const Lines *lines, const char *data) {
    PyObject *list = PyList_New(lines->len);
    for (ssize_t i = 0; list && i < lines->len; i++) {
        const Line *l = &lines->items[i];
        PyObject *host = text(data, l->start, l->host_end), *method = text(data, l->method_start, l->method_end),
                 *ally = text(data, l->ally_start, l->ally_end), *item = NULL;
        if (host && method && ally)
            item = Py_BuildValue("(niLOOO)", l->index, l->status, (long long)l->epoch, host, method, ally);
        Py_XDECREF(host);
        Py_XDECREF(method);
        Py_XDECREF(ally);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

PyDoc_STRVAR(scan_doc,
             "scan(block, max_line_bytes, since, until, any_endpoint) -> (lines, statuses, others, allies)\n\n"
             "block: whole lines, each ending with a newline. since/until: UTC epoch seconds bounding the\n"
             "plain lines counted. statuses: {status: count} of the plain lines in the window. others:\n"
             "[(index, start, end)] of the lines that are not plain. allies: [(index, status, epoch, host,\n"
             "method, ally id as written)] of the plain lines in the window that are requests to the ally\n"
             "endpoint (credentials; with any_endpoint, anything under /allies/<id>).");

static PyObject *scan(PyObject *module, PyObject *args) {
    Py_buffer block;
    ssize_t max_line;
    long long since, until;
    int any_endpoint;
    if (!PyArg_ParseTuple(args, "y*nLLp", &block, &max_line, &since, &until, &any_endpoint)) return NULL;
    Scan *out = calloc(1, sizeof(Scan));
    if (out == NULL) {
        PyBuffer_Release(&block);
        return PyErr_NoMemory();
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = scan_block(block.buf, block.len, max_line, since, until, any_endpoint, out);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL, *statuses = NULL, *others = NULL, *allies = NULL;
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
    if (!(others = others_list(&out->others)) || !(allies = allies_list(&out->allies, block.buf))) goto done;
    result = Py_BuildValue("(nOOO)", out->lines, statuses, others, allies);
done:
    PyBuffer_Release(&block);
    Py_XDECREF(statuses);
    Py_XDECREF(others);
    Py_XDECREF(allies);
    free(out->others.items);
    free(out->allies.items);
    free(out);
    return result;
}

static PyMethodDef methods[] = {{"scan", scan, METH_VARARGS, scan_doc}, {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "allies._logscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__logscan(void) { return PyModule_Create(&module); }
#endif
