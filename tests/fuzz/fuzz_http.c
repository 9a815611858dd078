/*
 * libFuzzer target for the request path: arbitrary bytes through the
 * parser, split at a fuzzer-chosen point (so incremental parsing is
 * exercised), with pipelined requests consumed the way a connection does.
 * Tight limits make every refusal path reachable.
 *
 *   make fuzz          (builds with clang, runs every target briefly)
 */
#include <stddef.h>
#include <stdint.h>

#include "http.h"

static const struct drv_http_limits limits = {
    .request_line = 256,
    .fields = 16,
    .field_size = 256,
    .max_body = 4096,
    .body_memory = 512,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0] % (size);
    const char *p = (const char *)data + 1;
    size_t len = size - 1;
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t pieces[2] = {split < len ? split : len, 0};
    pieces[1] = len - pieces[0];
    for (int i = 0; i < 2; i++) {
        size_t left = pieces[i];
        while (left) {
            size_t used = 0;
            enum drv_http_result r = drv_http_parse(&h, p, left, &used);
            p += used;
            left -= used;
            if (r == DRV_HTTP_ERROR)
                goto out;
            if (r == DRV_HTTP_DONE) {
                /* What an app would touch. */
                char buf[64];
                while (drv_body_read(&h.req.body, buf, sizeof(buf)) > 0)
                    ;
                (void)drv_http_header(&h.req, "host");
                drv_http_next(&h);
            }
        }
    }
out:
    drv_http_free(&h);
    return 0;
}
