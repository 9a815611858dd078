/*
 * hello: the smallest native drover app.
 *
 *   drover build/examples/hello.so:hello_app
 */
#include <drover/app.h>

static int handle(void *state, const struct drover_request *req,
                  struct drover_response *res)
{
    static const char body[] = "Hello, World!\n";
    static const struct drover_header headers[] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
    };
    (void)state;
    (void)req;
    if (res->start(res, 200, NULL, headers, 1) != 0)
        return -1;
    return res->write(res, body, sizeof(body) - 1);
}

const struct drover_app hello_app = {
    .abi_version = DROVER_APP_ABI_VERSION,
    .handle = handle,
    .flags = DROVER_APP_THREADSAFE, /* no state: any thread may call it */
};
