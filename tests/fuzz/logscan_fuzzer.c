/* libFuzzer target for the triage's scanning core (src/allies/triage/_logscan.c), built with clang's
   AddressSanitizer and UndefinedBehaviorSanitizer by tests/fuzz/fuzz_logscan.py (`make fuzz`).
   The first input byte chooses the options; the rest is the block. Beyond memory safety, checks
   what holds for any block: every line counted once, as plain or not; spans inside the block; each
   ally's failures add up across statuses and methods, its clients within the limit; the timeline's
   failures add up to the failed statuses counted. */
#define LOGSCAN_CORE_ONLY
#include "../../src/allies/triage/_logscan.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int flags = data[0];
    /* A block is whole lines: copy it so that it ends with a newline, nothing readable after. */
    size_t length = size - 1 + (size == 1 || data[size - 1] != '\n');
    char *block = malloc(length);
    if (block == NULL) return 0;
    memcpy(block, data + 1, size - 1);
    block[length - 1] = '\n';
    Scan *out = calloc(1, sizeof(Scan));
    int64_t since = (flags & 4) ? 1700000000 : -(INT64_C(1) << 62);
    if (out != NULL && scan_block(block, (ssize_t)length, (flags & 1) ? 40 : 1 << 20, since, INT64_C(1) << 62,
                                  flags & 2, flags & 8 ? 2 : 20, !(flags & 16), out) == 0) {
        ssize_t lines = 0, plain = 0, requests = 0;
        for (size_t i = 0; i < length; i++) lines += block[i] == '\n';
        for (int code = 0; code < MAX_STATUS; code++) plain += out->counts[code];
        assert(out->lines == lines);
        assert(plain + out->others.len <= lines);
        for (ssize_t i = 0; i < out->others.len; i++)
            assert(out->others.items[i].start >= 0 && out->others.items[i].end < (ssize_t)length);
        for (ssize_t i = 0; i < out->allies.len; i++) {
            const Ally *ally = &out->allies.items[i];
            ssize_t statuses = 0, methods = 0;
            assert(0 <= ally->id_start && ally->id_start < ally->id_end && ally->id_end < (ssize_t)length);
            assert(0 <= ally->failures && ally->failures <= ally->requests && ally->latest_index < lines);
            for (ssize_t j = 0; j < ally->statuses.len; j++) statuses += ally->statuses.items[j].count;
            for (ssize_t j = 0; j < ally->methods.len; j++) methods += ally->methods.items[j].count;
            assert(statuses == ally->failures && methods == ally->failures);
            assert(ally->clients.len <= (flags & 8 ? 2 : 20) && (ally->failures == 0) == (ally->clients.len == 0));
            assert(ally->failures == 0 || ally->first <= ally->last);
            requests += ally->requests;
        }
        assert(requests <= plain);
        ssize_t failed = 0, timeline = 0, used = 0;
        for (int code = 400; code < MAX_STATUS; code++) failed += out->counts[code];
        for (ssize_t i = 0; i < out->failures.cap; i++) {
            const Bucket *b = &out->failures.items[i];
            used += b->count > 0;
            timeline += b->count;
            assert(b->count == 0 || (b->status >= 400 && b->status < MAX_STATUS));
        }
        assert(timeline == ((flags & 16) ? 0 : failed) && used == out->failures.len);
    }
    if (out != NULL) {
        free(out->others.items);
        free_allies(&out->allies);
        free(out->failures.items);
    }
    free(out);
    free(block);
    return 0;
}
