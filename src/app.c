/*
 * app: picks the app kind from the spec and loads it.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

bool drv_app_spec_is_native(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (memchr(spec, '/', n))
        return true;
    if (n >= 3 && memcmp(spec + n - 3, ".so", 3) == 0)
        return true;
    return false;
}

struct drv_app *drv_app_load(const char *spec, const struct drv_settings *s,
                             char *err, size_t errlen)
{
    if (!spec || !*spec) {
        snprintf(err, errlen, "no app given: drover [OPTIONS] APP "
                              "(module:callable or path/to/app.so:symbol)");
        return NULL;
    }
    if (drv_app_spec_is_native(spec))
        return drv_native_load(spec, err, errlen);
    return drv_python_load(spec, s, err, errlen);
}
