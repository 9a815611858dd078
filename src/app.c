/*
 * app: picks the app kind from the spec and loads it.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

/* Python names a file as "path/to/script.py[:attr]", a module as
 * "pkg.mod[:attr]"; anything else with a slash, or a ".so", is native. */
bool drv_app_spec_is_native(const char *spec)
{
    const char *py = strstr(spec, ".py");
    while (py && py[3] != ':' && py[3] != '\0')
        py = strstr(py + 1, ".py");
    if (py)
        return false;
    const char *colon = strrchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (memchr(spec, '/', n))
        return true;
    if (n >= 3 && memcmp(spec + n - 3, ".so", 3) == 0)
        return true;
    return false;
}

const struct drv_app_kind *drv_app_kind_of(const char *spec)
{
    return drv_app_spec_is_native(spec) ? &drv_native_kind : &drv_python_kind;
}

struct drv_app *drv_app_load(const char *spec, const struct drv_settings *s,
                             char *err, size_t errlen)
{
    if (!spec || !*spec) {
        snprintf(err, errlen, "no app given: drover [OPTIONS] APP "
                              "(module:callable, path/to/script.py:callable or "
                              "path/to/app.so:symbol)");
        return NULL;
    }
    return drv_app_kind_of(spec)->load(spec, s, err, errlen);
}
