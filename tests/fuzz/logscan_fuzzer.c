/* libFuzzer target for the triage's scanning core (src/allies/_logscan.c), built with clang's
   AddressSanitizer and UndefinedBehaviorSanitizer by tests/fuzz/fuzz_logscan.py (`make fuzz`).
   The first input byte chooses the options; the rest is the block. Beyond memory safety, checks
   what holds for any block: every line counted once, as plain or not; spans inside the block. */
#define LOGSCAN_CORE_ONLY
#include "../../src/allies/_logscan.c"

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
                                  flags & 2, out) == 0) {
        ssize_t lines = 0, plain = 0;
        for (size_t i = 0; i < length; i++) lines += block[i] == '\n';
        for (int code = 0; code < MAX_STATUS; code++) plain += out->counts[code];
        assert(out->lines == lines);
        assert(plain + out->others.len <= lines);
        for (ssize_t i = 0; i < out->others.len; i++)
            assert(out->others.items[i].start >= 0 && out->others.items[i].end < (ssize_t)length);
        for (ssize_t i = 0; i < out->allies.len; i++) {
            const Line *l = &out->allies.items[i];
            assert(l->start <= l->host_end && l->host_end < l->method_start && l->method_end < l->ally_start);
            assert(l->ally_start < l->ally_end && l->ally_end < l->end && l->end < (ssize_t)length);
        }
    }
    if (out != NULL) {
        free(out->others.items);
        free(out->allies.items);
    }
    free(out);
    free(block);
    return 0;
}
