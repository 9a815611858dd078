/*
 * proctitle: overwrite argv's memory with a title.
 */
#include "proctitle.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "buf.h"

extern char **environ;

static char *area;     /* start of argv[0] */
static size_t area_len; /* bytes usable, up to the end of the environment */
/* The environment's copied strings, owned here: setenv() and unsetenv()
 * rearrange the array `environ` points to, and may drop a string from it
 * that must stay reachable all the same. */
/* `used`: written, never read, yet they must be kept. */
static char **env_strings __attribute__((used));
static char **env_array __attribute__((used));

char **drv_proctitle_init(int argc, char **argv)
{
    char **copy = drv_xcalloc((size_t)argc + 1, sizeof(*copy));
    for (int i = 0; i < argc; i++)
        copy[i] = drv_xstrdup(argv[i]);
    if (argc == 0)
        return copy;

    /* argv strings and then environ strings normally sit end to end; use
     * as much of that run as is contiguous. */
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; i++)
        end = argv[i] + strlen(argv[i]) + 1;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **env = drv_xcalloc(nenv + 1, sizeof(*env));
    env_strings = drv_xcalloc(nenv + 1, sizeof(*env_strings));
    for (size_t i = 0; i < nenv; i++) {
        if (environ[i] == end)
            end = environ[i] + strlen(environ[i]) + 1;
        env[i] = env_strings[i] = drv_xstrdup(environ[i]);
    }
    environ = env_array = env;
    area = argv[0];
    area_len = (size_t)(end - argv[0]);
    return copy;
}

void drv_proctitle_set(const char *fmt, ...)
{
    char title[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(title, sizeof(title), fmt, ap);
    va_end(ap);
    prctl(PR_SET_NAME, title, 0, 0, 0);
    if (!area || area_len < 2)
        return;
    size_t n = strlen(title);
    if (n > area_len - 1)
        n = area_len - 1;
    memcpy(area, title, n);
    memset(area + n, 0, area_len - n);
}
