/*
 * settings: one table, four sources.
 *
 * `rows[]` is the only place a setting is described. Every source turns
 * into calls of set_text(row, text, source, level): the text is parsed by
 * the row's type, checked against the row's bounds and stored at the
 * row's offset in struct drv_settings. Defaults are text too, so they pass
 * the same checks as user input.
 *
 * Sources are applied lowest first: default, YAML file, environment,
 * command line. Each row remembers the level that last set it; a list
 * setting is cleared the first time a higher level touches it, so
 * `--bind` given twice replaces the YAML list instead of appending to it,
 * and "was bind given at all" (for the --dev default) is a level test.
 *
 * The command line is scanned once before anything is applied: it names
 * the YAML file, which must be read before the command line's values can
 * override it, and it may ask for --help, which must work even when the
 * file or the environment is broken.
 *
 * libyaml is used only in this file (event API, so every value keeps its
 * line and column for error messages).
 */
#include "settings.h"
#include "address.h"
#include "buf.h"
#include "proxy.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

enum type {
    T_BOOL,     /* bool */
    T_INT,      /* int */
    T_LONG,     /* long */
    T_SIZE,     /* int64_t bytes, k/m/g suffixes */
    T_DURATION, /* double seconds */
    T_STRING,   /* char *, NULL when unset */
    T_LIST,     /* struct drv_strlist */
    T_LOGLEVEL, /* enum drv_loglevel */
};

/* Row options. Code that treats a row specially keys on one of these,
 * never on which row it is.
 *
 * R_NONEMPTY on a list means an empty YAML list is an error (bind: a
 * server with no address). R_CONFIG_PATH's value is looked up on the
 * command line and in the environment before anything else is applied.
 * R_LISTEN's default is 0.0.0.0:$PORT when PORT is set, and with dev on
 * and no value from any source it is 127.0.0.1 (on $PORT or 5000). */
#define R_NOT_IN_YAML   0x01 /* cannot be set inside the YAML file */
#define R_POSITIONAL    0x02 /* the APP argument, no flag */
#define R_NONEMPTY      0x04 /* string: never unset or empty; list: 1+ item */
#define R_MIN_EXCLUSIVE 0x08 /* value must be > min rather than >= min */
#define R_CONFIG_PATH   0x10 /* names the YAML file to read */
#define R_LISTEN        0x20 /* listen addresses (defaults follow PORT, dev) */

#define NO_MAX INT64_MAX

/* Long flags a row may have. Every scan of row.flags stops at this bound
 * as well as at the first NULL, so a row may fill all of them. */
#define MAX_FLAGS 4

struct row {
    const char *name;      /* YAML key; env is DROVER_<NAME> */
    const char *shortflag; /* "-w" or NULL */
    const char *flags[MAX_FLAGS]; /* long flag, then aliases; unused NULL */
    enum type type;
    unsigned opts;
    const char *def;         /* default as text, NULL = unset */
    const char *env_default; /* platform variable replacing the default */
    int64_t min, max;        /* numeric bounds (durations compare as double) */
    const char *metavar;
    /* T_LIST: what one item is ("address"), for --help, the reference
     * and the errors about an item. */
    const char *item;
    const char *group;
    const char *help;
    size_t off;
    /* Validates one list item or string value of row r; reason (without
     * source) into err. */
    int (*check)(const struct row *r, const char *text, char *err, size_t len);
    /* T_STRING with check_choice: the values allowed, NULL-terminated. */
    const char *const *choices;
};

/* A value from the row's `choices`. */
static int check_choice(const struct row *r, const char *text, char *err,
                        size_t len)
{
    size_t used = 0;
    for (size_t i = 0; r->choices[i]; i++)
        if (strcmp(text, r->choices[i]) == 0)
            return 0;
    used += (size_t)snprintf(err, len, "'%s' is not one of ", text);
    for (size_t i = 0; r->choices[i] && used < len; i++)
        used += (size_t)snprintf(err + used, len - used, "%s%s",
                                 i ? ", " : "", r->choices[i]);
    return -1;
}

static const char *const interface_choices[] = {"auto", "wsgi", "asgi", NULL};
static const char *const lifespan_choices[] = {"auto", "on", "off", NULL};
static const char *const loop_choices[] = {"auto", "asyncio", "uvloop", NULL};

/* uvloop is refused with its reason rather than left out of the choices:
 * uvicorn users ask for it by name. */
static int check_loop(const struct row *r, const char *text, char *err,
                      size_t len)
{
    if (check_choice(r, text, err, len) != 0)
        return -1;
    if (strcmp(text, "uvloop") != 0)
        return 0;
    snprintf(err, len,
             "uvloop is not supported: drover runs asyncio on a selector "
             "that turns its own C event loop (where the network work "
             "uvloop speeds up is done), and uvloop's loop takes no "
             "selector; use asyncio (the default)");
    return -1;
}

static int check_bind(const struct row *r, const char *text, char *err,
                      size_t len);
static int check_env(const struct row *r, const char *text, char *err,
                     size_t len);
/* gunicorn's names for the two worker kinds drover's model covers. */
static int check_worker_class(const struct row *r, const char *text,
                              char *err, size_t len)
{
    (void)r;
    static const char *const ok[] = {
        "sync", "gthread", "gunicorn.workers.sync.SyncWorker",
        "gunicorn.workers.gthread.ThreadWorker",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(text, ok[i]) == 0)
            return 0;
    snprintf(err, len,
             "worker class '%s' is not drover's: its workers are sync, or "
             "gthread with --threads N; drop -k for an event loop (drover's "
             "workers already run one)",
             text);
    return -1;
}

static int check_forwarded(const struct row *r, const char *text, char *err,
                           size_t len);
static int check_metrics_bind(const struct row *r, const char *text,
                              char *err, size_t len);
static int check_umask(const struct row *r, const char *text, char *err,
                       size_t len);
static int check_worker_class(const struct row *r, const char *text,
                              char *err, size_t len);

#define OFF(field) offsetof(struct drv_settings, field)

/* clang-format off */
static const struct row rows[] = {
    {
        .name = "app", .type = T_STRING, .opts = R_POSITIONAL,
        .metavar = "APP", .group = "Application", .off = OFF(app),
        .help = "The application to serve: module:callable or "
                "path/to/script.py:callable for a Python WSGI app "
                "(module:factory() calls a factory; a Dash app's .server "
                "is found), or path/to/app.so:symbol for a native app.",
    },
    {
        .name = "config", .shortflag = "-c", .flags = {"--config"},
        .type = T_STRING, .opts = R_NOT_IN_YAML | R_CONFIG_PATH,
        .metavar = "FILE",
        .group = "Application", .off = OFF(config),
        .help = "YAML file to read settings from. The environment and the "
                "command line override what it sets.",
    },
    {
        .name = "bind", .shortflag = "-b", .flags = {"--bind"},
        .type = T_LIST, .opts = R_NONEMPTY | R_LISTEN,
        .def = "0.0.0.0:5000", .metavar = "ADDRESS", .item = "address",
        .group = "Server socket", .off = OFF(bind), .check = check_bind,
        .help = "Address to listen on: HOST:PORT, [IPV6]:PORT, :PORT, HOST "
                "(port 5000), unix:PATH or fd://N (an inherited socket). "
                "Repeat the flag, use a YAML list or separate addresses "
                "with commas in DROVER_BIND to listen on several. When "
                "PORT is set the default is 0.0.0.0:$PORT; with dev on and "
                "no bind given the default host is 127.0.0.1.",
    },
    {
        .name = "backlog", .flags = {"--backlog"}, .type = T_INT,
        .def = "2048", .min = 1, .max = 65535, .metavar = "INT",
        .group = "Server socket", .off = OFF(backlog),
        .help = "Maximum number of pending connections the kernel queues "
                "on each listening socket.",
    },
    {
        .name = "workers", .shortflag = "-w", .flags = {"--workers"},
        .type = T_INT, .def = "1", .env_default = "WEB_CONCURRENCY",
        .min = 1, .max = 1024, .metavar = "INT", .group = "Workers",
        .off = OFF(workers),
        .help = "Number of worker processes. When WEB_CONCURRENCY is set it "
                "replaces the default.",
    },
    {
        .name = "threads", .flags = {"--threads"},
        .type = T_INT, .def = "1", .min = 1, .max = 4096, .metavar = "INT",
        .group = "Workers", .off = OFF(threads),
        .help = "App threads per worker, for apps that block (databases, "
                "other services). The worker's event loop keeps all network "
                "work and hands complete requests to free threads. 1 calls "
                "the app on the loop itself.",
    },
    {
        .name = "worker_connections", .flags = {"--worker-connections"},
        .type = T_INT, .def = "1000", .min = 1, .max = 1000000,
        .metavar = "INT", .group = "Workers", .off = OFF(worker_connections),
        .help = "Most connections one worker holds open; at the limit it "
                "stops accepting until one closes (waitress: "
                "connection_limit).",
    },
    {
        .name = "worker_class", .shortflag = "-k",
        .flags = {"--worker-class"}, .type = T_STRING, .def = "sync",
        .metavar = "CLASS", .group = "Workers", .off = OFF(worker_class),
        .check = check_worker_class,
        .help = "gunicorn's worker class, for command lines moved over: "
                "sync and gthread are both what drover's workers do (with "
                "--threads for app threads); others are refused.",
    },
    {
        .name = "timeout", .shortflag = "-t", .flags = {"--timeout"},
        .type = T_DURATION, .def = "30", .min = 0, .max = NO_MAX,
        .metavar = "SECONDS", .group = "Workers", .off = OFF(timeout),
        .help = "A worker busy with one request for longer than this is "
                "killed and replaced. 0 disables the check.",
    },
    {
        .name = "graceful_timeout", .flags = {"--graceful-timeout"},
        .type = T_DURATION, .def = "30", .min = 0, .max = NO_MAX,
        .metavar = "SECONDS", .group = "Workers",
        .off = OFF(graceful_timeout),
        .help = "On a graceful stop or reload, time workers get to finish "
                "their requests before they are killed.",
    },
    {
        .name = "max_requests", .flags = {"--max-requests"}, .type = T_LONG,
        .def = "0", .min = 0, .max = LONG_MAX, .metavar = "INT",
        .group = "Workers", .off = OFF(max_requests),
        .help = "Restart a worker after it has served this many requests "
                "(plus a random jitter). 0 disables restarts.",
    },
    {
        .name = "max_requests_jitter", .flags = {"--max-requests-jitter"},
        .type = T_LONG, .def = "0", .min = 0, .max = LONG_MAX,
        .metavar = "INT", .group = "Workers",
        .off = OFF(max_requests_jitter),
        .help = "Each worker adds a random number from 0 to this to "
                "max_requests, so that workers do not all restart at once.",
    },
    {
        .name = "max_worker_memory", .flags = {"--max-worker-memory"},
        .type = T_LONG, .def = "0", .min = 0, .max = 1L << 30,
        .metavar = "MB", .group = "Workers", .off = OFF(max_worker_memory),
        .help = "Restart a worker, gracefully as with max_requests, when "
                "its resident memory passes this many megabytes (MiB) "
                "after a request. 0 disables the check.",
    },
    {
        .name = "preload", .flags = {"--preload"}, .type = T_BOOL,
        .def = "true", .group = "Workers", .off = OFF(preload),
        .help = "Load the app once in the master before forking the "
                "workers (shared memory, load errors stop the start). "
                "--no-preload loads it in each worker instead.",
    },
    {
        .name = "keepalive", .flags = {"--keep-alive", "--keepalive"},
        .type = T_DURATION, .def = "2", .min = 0, .max = NO_MAX,
        .metavar = "SECONDS", .group = "Connections", .off = OFF(keepalive),
        .help = "How long an idle keep-alive connection waits for its next "
                "request. 0 disables keep-alive.",
    },
    {
        .name = "header_timeout", .flags = {"--header-timeout"},
        .type = T_DURATION, .opts = R_MIN_EXCLUSIVE, .def = "10", .min = 0,
        .max = NO_MAX, .metavar = "SECONDS", .group = "Connections",
        .off = OFF(header_timeout),
        .help = "Time allowed to receive a complete request head (request "
                "line and headers).",
    },
    {
        .name = "io_timeout", .flags = {"--io-timeout"}, .type = T_DURATION,
        .opts = R_MIN_EXCLUSIVE, .def = "30", .min = 0, .max = NO_MAX,
        .metavar = "SECONDS", .group = "Connections", .off = OFF(io_timeout),
        .help = "Inactivity allowed while reading a request body or writing "
                "a response.",
    },
    {
        .name = "forwarded_allow_ips", .flags = {"--forwarded-allow-ips"},
        .type = T_LIST, .def = "127.0.0.1,::1",
        .env_default = "FORWARDED_ALLOW_IPS", .metavar = "ADDRESSES",
        .item = "IP address, ADDRESS/BITS network or *",
        .group = "Proxy", .off = OFF(forwarded_allow_ips),
        .check = check_forwarded,
        .help = "Peers trusted to send X-Forwarded-For, X-Forwarded-Proto "
                "and Forwarded: comma-separated addresses or networks "
                "(10.0.0.0/8), or * for every peer. From a trusted peer "
                "(unix socket peers always are) these headers set "
                "REMOTE_ADDR (the right-most hop that is not itself "
                "trusted) and wsgi.url_scheme; from any other they are "
                "ignored. An empty value trusts no TCP peer. Defaults to "
                "$FORWARDED_ALLOW_IPS when it is set, as with gunicorn.",
    },
    {
        .name = "limit_request_line", .flags = {"--limit-request-line"},
        .type = T_INT, .def = "4094", .min = 0, .max = 8190,
        .metavar = "BYTES", .group = "Request limits",
        .off = OFF(limit_request_line),
        .help = "Maximum size of the HTTP request line (method, target and "
                "version). 0 means unlimited.",
    },
    {
        .name = "limit_request_fields", .flags = {"--limit-request-fields"},
        .type = T_INT, .def = "100", .min = 0, .max = 32768,
        .metavar = "INT", .group = "Request limits",
        .off = OFF(limit_request_fields),
        .help = "Maximum number of header fields in a request. 0 means the "
                "largest allowed value, 32768.",
    },
    {
        .name = "limit_request_field_size",
        .flags = {"--limit-request-field-size"}, .type = T_INT,
        .def = "8190", .min = 0, .max = 1048576, .metavar = "BYTES",
        .group = "Request limits", .off = OFF(limit_request_field_size),
        .help = "Maximum size of one request header field (name and "
                "value). 0 means unlimited.",
    },
    {
        .name = "max_body_size", .flags = {"--max-body-size"},
        .type = T_SIZE, .def = "0", .min = 0, .max = NO_MAX,
        .metavar = "SIZE", .group = "Request limits",
        .off = OFF(max_body_size),
        .help = "Largest request body accepted; larger requests get 413. "
                "0 means unlimited.",
    },
    {
        .name = "body_buffer_size", .flags = {"--body-buffer-size"},
        .type = T_SIZE, .def = "1m", .min = 0, .max = NO_MAX,
        .metavar = "SIZE", .group = "Request limits",
        .off = OFF(body_buffer_size),
        .help = "Request bodies larger than this are spooled to a "
                "temporary file instead of memory.",
    },
    {
        .name = "accesslog", .flags = {"--access-logfile", "--accesslog"},
        .type = T_STRING, .metavar = "FILE", .group = "Logging",
        .off = OFF(accesslog),
        .help = "Access log file, or - for standard output. Unset means no "
                "access log.",
    },
    {
        .name = "access_log_format",
        .flags = {"--access-logformat", "--access-log-format"},
        .type = T_STRING, .opts = R_NONEMPTY,
        .def = "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" "
               "\"%(a)s\"",
        .metavar = "FORMAT", .group = "Logging",
        .off = OFF(access_log_format),
        .help = "Access log line format. `json` writes one JSON object "
                "per request (keys time, remote_addr, method, path, query, "
                "status, bytes, duration, user_agent, referer, request_id; "
                "every string escaped, invalid UTF-8 replaced by U+FFFD). "
                "Anything else is a line with gunicorn's `%(x)s` atoms: h "
                "remote address, u user, t time, r request line, m method, "
                "U path, q query, s status, b body bytes, f referer, a user "
                "agent, L duration in seconds, `%({Name}i)s` a request "
                "header, `%({Name}o)s` a response header, and drover's "
                "`%(R)s`, the request id (also `%({X-Request-ID}i)s`).",
    },
    {
        .name = "errorlog",
        .flags = {"--error-logfile", "--log-file", "--errorlog"},
        .type = T_STRING, .opts = R_NONEMPTY, .def = "-", .metavar = "FILE",
        .group = "Logging", .off = OFF(errorlog),
        .help = "Error log file, or - for standard error.",
    },
    {
        .name = "loglevel", .flags = {"--log-level", "--loglevel"},
        .type = T_LOGLEVEL, .def = "info", .metavar = "LEVEL",
        .group = "Logging", .off = OFF(loglevel),
        .help = "Least severe messages written to the error log: debug, "
                "info, warning, error or critical.",
    },
    {
        .name = "metrics_bind", .flags = {"--metrics-bind"},
        .type = T_STRING, .metavar = "ADDRESS", .group = "Metrics",
        .off = OFF(metrics_bind), .check = check_metrics_bind,
        .help = "Address (HOST:PORT or unix:PATH) on which the master "
                "serves Prometheus metrics (GET /metrics), health and "
                "readiness probes (GET /healthz, GET /readyz) and the data "
                "of `drover status` (GET /status). A listener of its own, "
                "never the app's, answered by the master even while every "
                "worker is busy. Unset: off. Keep it private (a loopback "
                "address, or a port the load balancer does not expose). "
                "Like bind, a change takes a restart, not a reload.",
    },
    {
        .name = "chdir", .flags = {"--chdir"}, .type = T_STRING,
        .metavar = "DIR", .group = "Python", .off = OFF(chdir),
        .help = "Change to this directory before loading the app; it is "
                "then first on sys.path.",
    },
    {
        .name = "pythonpath", .flags = {"--pythonpath"}, .type = T_LIST,
        .metavar = "DIRS", .item = "directory", .group = "Python",
        .off = OFF(pythonpath),
        .help = "Directories to put first on sys.path (comma-separated, or "
                "repeat the flag).",
    },
    {
        .name = "virtualenv", .flags = {"--virtualenv"}, .type = T_STRING,
        .env_default = "VIRTUAL_ENV", .metavar = "DIR", .group = "Python",
        .off = OFF(virtualenv),
        .help = "A PEP 405 virtual environment whose site-packages the app "
                "imports from. Defaults to $VIRTUAL_ENV when it is set.",
    },
    {
        .name = "env", .shortflag = "-e", .flags = {"--env"},
        .type = T_LIST, .metavar = "KEY=VALUE", .item = "KEY=VALUE",
        .group = "Python",
        .off = OFF(env), .check = check_env,
        .help = "Set an environment variable before the app is loaded "
                "(repeatable).",
    },
    {
        .name = "script_name", .flags = {"--script-name"}, .type = T_STRING,
        .env_default = "SCRIPT_NAME", .metavar = "PATH", .group = "Python",
        .off = OFF(script_name),
        .help = "Mount point of the app (WSGI SCRIPT_NAME), e.g. /api; "
                "requests outside it get 404. Defaults to $SCRIPT_NAME, as "
                "with gunicorn.",
    },
    {
        .name = "interface", .flags = {"--interface"}, .type = T_STRING,
        .def = "auto", .metavar = "auto|wsgi|asgi", .group = "Python",
        .off = OFF(interface), .check = check_choice,
        .choices = interface_choices,
        .help = "How drover calls a Python app: wsgi, asgi (ASGI 3: "
                "FastAPI, Starlette, Quart), or auto: asgi when the app is "
                "a coroutine function or its __call__ is one, else wsgi.",
    },
    {
        .name = "lifespan", .flags = {"--lifespan"}, .type = T_STRING,
        .def = "auto", .metavar = "auto|on|off", .group = "Python",
        .off = OFF(lifespan), .check = check_choice,
        .choices = lifespan_choices,
        .help = "ASGI lifespan events, in each worker: on runs startup "
                "before the worker serves (a failure is a boot failure) "
                "and shutdown when it stops; auto does the same but goes "
                "on without them when the app does not support them; off "
                "sends none.",
    },
    {
        .name = "loop", .flags = {"--loop"}, .type = T_STRING,
        .def = "auto", .metavar = "auto|asyncio|uvloop",
        .group = "Python", .off = OFF(loop), .check = check_loop,
        .choices = loop_choices,
        .help = "The event loop an ASGI app's coroutines run on: asyncio "
                "(auto is asyncio), driven by drover's C loop, which does "
                "the network work. uvloop is refused with the reason: its "
                "loop cannot be driven that way.",
    },
    {
        .name = "ws_max_size", .flags = {"--ws-max-size"},
        .type = T_SIZE, .def = "16m", .min = 1, .max = 1L << 31,
        .metavar = "SIZE", .group = "WebSockets", .off = OFF(ws_max_size),
        .help = "Largest WebSocket message an ASGI app receives; a larger "
                "one closes the connection with code 1009.",
    },
    {
        .name = "ws_ping_interval", .flags = {"--ws-ping-interval"},
        .type = T_DURATION, .def = "20", .min = 0, .max = NO_MAX,
        .metavar = "SECONDS", .group = "WebSockets",
        .off = OFF(ws_ping_interval),
        .help = "Send a ping on a WebSocket quiet for this long. 0 sends "
                "none.",
    },
    {
        .name = "ws_ping_timeout", .flags = {"--ws-ping-timeout"},
        .type = T_DURATION, .def = "20", .min = 0, .max = NO_MAX,
        .metavar = "SECONDS", .group = "WebSockets",
        .off = OFF(ws_ping_timeout),
        .help = "Close a WebSocket (code 1011) whose peer has not answered "
                "a ping within this time. 0 waits for ever.",
    },
    {
        .name = "pidfile", .shortflag = "-p", .flags = {"--pid", "--pidfile"},
        .type = T_STRING, .metavar = "FILE", .group = "Server mechanics",
        .off = OFF(pidfile),
        .help = "Write the master's pid to this file (removed at exit). "
                "Start-up fails if it names a running process.",
    },
    {
        .name = "user", .shortflag = "-u", .flags = {"--user"},
        .type = T_STRING, .metavar = "USER", .group = "Server mechanics",
        .off = OFF(user),
        .help = "Workers switch to this user (name or uid) after the "
                "master has bound its sockets. Needs root.",
    },
    {
        .name = "group", .shortflag = "-g", .flags = {"--group"},
        .type = T_STRING, .metavar = "GROUP", .group = "Server mechanics",
        .off = OFF(group),
        .help = "Workers switch to this group (name or gid); defaults to "
                "the user's primary group when user is set.",
    },
    {
        .name = "umask", .shortflag = "-m", .flags = {"--umask"},
        .type = T_STRING, .def = "0", .metavar = "MODE",
        .group = "Server mechanics", .off = OFF(umask),
        .check = check_umask,
        .help = "File mode creation mask of the server, in octal (022, "
                "0o22).",
    },
    {
        .name = "proc_name", .shortflag = "-n", .flags = {"--name"},
        .type = T_STRING, .metavar = "NAME", .group = "Server mechanics",
        .off = OFF(proc_name),
        .help = "Name in the process titles (drover: master [NAME]); "
                "defaults to the app.",
    },
    {
        .name = "dev", .flags = {"--dev"}, .type = T_BOOL, .def = "false",
        .group = "Development", .off = OFF(dev),
        .help = "Development mode: a single process that reloads when code "
                "or config changes, shows tracebacks in the browser and "
                "binds 127.0.0.1 by default. Not for production.",
    },
    {
        .name = "reload_extra_files", .flags = {"--reload-extra-file"},
        .type = T_LIST, .metavar = "PATHS", .item = "file or directory",
        .group = "Development",
        .off = OFF(reload_extra_files),
        .help = "With dev on, also reload when one of these files changes, "
                "or any file in one of these directories (and their "
                "subdirectories). Repeat the flag or separate paths with "
                "commas.",
    },
};
/* clang-format on */

#define NROWS (sizeof(rows) / sizeof(rows[0]))

static const struct {
    const char *shortflag;
    const char *flag;
    enum drv_action action;
    int rank; /* the highest-ranked action given wins; see NO_LOAD_RANK */
    const char *help;
} actions[] = {
    {"-h", "--help", DRV_ACTION_HELP, 4, "show this help and exit"},
    {"-v", "--version", DRV_ACTION_VERSION, 3, "show the version and exit"},
    {NULL, "--print-reference", DRV_ACTION_PRINT_REFERENCE, 2,
     "print the configuration reference (Markdown) and exit"},
    {NULL, "--print-man", DRV_ACTION_PRINT_MAN, 2,
     "print the drover(1) manual page (roff) and exit"},
    {NULL, "--print-config", DRV_ACTION_PRINT_CONFIG, 1,
     "print the resolved settings as YAML and exit"},
    {NULL, "--check-config", DRV_ACTION_CHECK_CONFIG, 1,
     "check the settings (and the app) and exit"},
};

#define NACTIONS (sizeof(actions) / sizeof(actions[0]))

/* Actions ranked this high need no settings: they skip the file and the
 * environment, and win over a broken command line. */
#define NO_LOAD_RANK 2

static const char *const loglevel_names[] = {
    [DRV_LOG_DEBUG] = "debug",       [DRV_LOG_INFO] = "info",
    [DRV_LOG_WARNING] = "warning",   [DRV_LOG_ERROR] = "error",
    [DRV_LOG_CRITICAL] = "critical",
};

/* Who set a row last; higher levels override lower ones. */
enum level { L_UNSET, L_DEFAULT, L_YAML, L_ENV, L_CLI };

struct loader {
    struct drv_settings *s;
    char **envp;
    unsigned char level[NROWS];
    char *err;
    size_t errlen;
};

/* One value from the command line, applied after the YAML file. */
struct assign {
    const struct row *row;
    const char *src; /* the flag as typed, or the positional's metavar */
    const char *val;
};

union value {
    bool b;
    int64_t i;
    double d;
    enum drv_loglevel lv;
};

/* ---- small helpers ------------------------------------------------------ */

static void *field(struct drv_settings *s, const struct row *r)
{
    return (char *)s + r->off;
}

static const void *cfield(const struct drv_settings *s, const struct row *r)
{
    return (const char *)s + r->off;
}

static size_t row_index(const struct row *r)
{
    return (size_t)(r - rows);
}

static const struct row *row_named(const char *name)
{
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    return NULL;
}

/* The row holding a role the table gives to exactly one row:
 * R_POSITIONAL, R_CONFIG_PATH or R_LISTEN. */
static const struct row *row_with(unsigned opt)
{
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].opts & opt)
            return &rows[i];
    return NULL;
}

static int vfail(struct loader *ld, const char *src, const char *fmt,
                 va_list ap) __attribute__((format(printf, 3, 0)));
static int fail(struct loader *ld, const char *src, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "src: message" into the caller's buffer; src NULL for a bare message. */
static int vfail(struct loader *ld, const char *src, const char *fmt,
                 va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (ld->err && ld->errlen)
        snprintf(ld->err, ld->errlen, "%s%s%s", src ? src : "", src ? ": " : "",
                 msg);
    return -1;
}

static int fail(struct loader *ld, const char *src, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail(ld, src, fmt, ap);
    va_end(ap);
    return rc;
}

/* Value of NAME in envp, or NULL. An empty variable counts as unset, as
 * container tooling often exports `NAME=` to mean "not given". */
static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);

    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return (*e)[n + 1] ? *e + n + 1 : NULL;
    }
    return NULL;
}

static void env_name(const struct row *r, char *buf, size_t len)
{
    size_t i = 0, j;

    snprintf(buf, len, "DROVER_");
    j = strlen(buf);
    for (; r->name[i] && j + 1 < len; i++, j++)
        buf[j] = (char)toupper((unsigned char)r->name[i]);
    buf[j] = '\0';
}

/* Levenshtein distance, for "did you mean". Long inputs count as far. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[65], cur[65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] =
                sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(prev));
    }
    return prev[lb];
}

struct suggest {
    char best[80];
    size_t dist;
};

static void consider(struct suggest *sg, const char *typed, const char *cand)
{
    size_t d = distance(typed, cand);

    if (d < sg->dist && strlen(cand) < sizeof(sg->best)) {
        sg->dist = d;
        strcpy(sg->best, cand);
    }
}

/* A close enough candidate, or NULL. */
static const char *suggestion(const struct suggest *sg)
{
    return sg->dist <= 2 ? sg->best : NULL;
}

/* ---- parsing one value -------------------------------------------------- */

static bool parse_bool(const char *t, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Strict decimal integer: optional sign, digits, nothing else.
 * Returns 0, -1 if not an integer, -2 if it does not fit in int64_t. */
static int parse_i64(const char *t, const char **end, int64_t *out)
{
    const char *p = t;
    char *e;
    long long v;

    if (*p == '+' || *p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    v = strtoll(t, &e, 10);
    if (end)
        *end = e;
    else if (*e)
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

static int parse_size(const char *t, int64_t *out, char *msg, size_t len)
{
    const char *end;
    int64_t v, mult = 1;
    int rc = parse_i64(t, &end, &v);

    if (rc == -1)
        goto bad;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = INT64_C(1) << 10;
        break;
    case 'm':
    case 'M':
        mult = INT64_C(1) << 20;
        break;
    case 'g':
    case 'G':
        mult = INT64_C(1) << 30;
        break;
    default:
        goto bad;
    }
    if (*end && end[1])
        goto bad;
    if (rc == -2 || v > INT64_MAX / mult || v < INT64_MIN / mult) {
        snprintf(msg, len, "'%s' is too large", t);
        return -1;
    }
    *out = v * mult;
    return 0;
bad:
    snprintf(msg, len,
             "'%s' is not a size (bytes, or a number followed by "
             "k, m or g)",
             t);
    return -1;
}

/* Seconds as a plain decimal: 30, 0.5, 1e3. No inf, nan or hex. */
static int parse_duration(const char *t, double *out, char *msg, size_t len)
{
    const char *p = t;
    size_t digits = 0;
    char *e;

    if (*p == '+' || *p == '-')
        p++;
    for (; *p >= '0' && *p <= '9'; p++)
        digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (digits && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            digits = 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (!digits || *p) {
        snprintf(msg, len, "'%s' is not a number of seconds", t);
        return -1;
    }
    *out = strtod(t, &e);
    if (!isfinite(*out)) {
        snprintf(msg, len, "'%s' is too large", t);
        return -1;
    }
    return 0;
}

static int check_int_bounds(const struct row *r, const char *t, int64_t v,
                            char *msg, size_t len)
{
    if (v < r->min)
        snprintf(msg, len, "'%s' is below the minimum %" PRId64, t, r->min);
    else if (v > r->max)
        snprintf(msg, len, "'%s' is above the maximum %" PRId64, t, r->max);
    else
        return 0;
    return -1;
}

static int check_bounds(const struct row *r, const char *t, double v, char *msg,
                        size_t len)
{
    if ((r->opts & R_MIN_EXCLUSIVE) && v <= (double)r->min)
        snprintf(msg, len, "'%s' must be greater than %" PRId64, t, r->min);
    else if (v < (double)r->min)
        snprintf(msg, len, "'%s' is below the minimum %" PRId64, t, r->min);
    else if (r->max != NO_MAX && v > (double)r->max)
        snprintf(msg, len, "'%s' is above the maximum %" PRId64, t, r->max);
    else
        return 0;
    return -1;
}

/* Parse text for a scalar (non-string, non-list) row. */
static int parse_value(const struct row *r, const char *t, union value *v,
                       char *msg, size_t len)
{
    int rc;

    switch (r->type) {
    case T_BOOL:
        if (parse_bool(t, &v->b))
            return 0;
        snprintf(msg, len,
                 "'%s' is not a boolean (true/false, yes/no, "
                 "on/off, 1/0)",
                 t);
        return -1;
    case T_INT:
    case T_LONG:
        rc = parse_i64(t, NULL, &v->i);
        if (rc == -1) {
            snprintf(msg, len, "'%s' is not an integer", t);
            return -1;
        }
        if (rc == -2) {
            snprintf(msg, len, "'%s' is out of range %" PRId64 "-%" PRId64, t,
                     r->min, r->max);
            return -1;
        }
        return check_int_bounds(r, t, v->i, msg, len);
    case T_SIZE:
        if (parse_size(t, &v->i, msg, len) < 0)
            return -1;
        return check_int_bounds(r, t, v->i, msg, len);
    case T_DURATION:
        if (parse_duration(t, &v->d, msg, len) < 0)
            return -1;
        return check_bounds(r, t, v->d, msg, len);
    case T_LOGLEVEL:
        for (size_t i = 0; i <= DRV_LOG_CRITICAL; i++) {
            if (strcasecmp(t, loglevel_names[i]) == 0) {
                v->lv = (enum drv_loglevel)i;
                return 0;
            }
        }
        snprintf(msg, len,
                 "'%s' is not one of debug, info, warning, error, "
                 "critical",
                 t);
        return -1;
    case T_STRING:
    case T_LIST:
        break;
    }
    snprintf(msg, len, "internal error: bad type");
    return -1;
}

static void store(struct drv_settings *s, const struct row *r,
                  const union value *v)
{
    void *f = field(s, r);

    switch (r->type) {
    case T_BOOL:
        *(bool *)f = v->b;
        break;
    case T_INT:
        *(int *)f = (int)v->i;
        break;
    case T_LONG:
        *(long *)f = (long)v->i;
        break;
    case T_SIZE:
        *(int64_t *)f = v->i;
        break;
    case T_DURATION:
        *(double *)f = v->d;
        break;
    case T_LOGLEVEL:
        *(enum drv_loglevel *)f = v->lv;
        break;
    case T_STRING:
    case T_LIST:
        break;
    }
}

static int check_env(const struct row *r, const char *text, char *err,
                     size_t len)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        snprintf(err, len, "'%s' is not %s", text, r->item);
        return -1;
    }
    return 0;
}

int drv_settings_parse_umask(const char *text)
{
    const char *p = text;
    if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        p += 2;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 8);
    if (errno != 0 || end == p || *end != '\0' || v < 0 || v > 0777)
        return -1;
    return (int)v;
}

static int check_umask(const struct row *r, const char *text, char *err,
                       size_t len)
{
    (void)r;
    if (drv_settings_parse_umask(text) >= 0)
        return 0;
    snprintf(err, len, "'%s' is not an octal file mode (0 to 0777)", text);
    return -1;
}

static int check_forwarded(const struct row *r, const char *text, char *err,
                           size_t len)
{
    (void)r; /* proxy.c names each piece of the item itself */
    return drv_proxy_check_allow(text, err, len);
}

static int check_bind(const struct row *r, const char *text, char *err,
                      size_t len)
{
    struct drv_addr a;
    char why[256];

    if (drv_addr_parse(text, &a, why, sizeof(why)) == 0)
        return 0;
    snprintf(err, len, "bad %s '%s': %s", r->item, text, why);
    return -1;
}

static int check_metrics_bind(const struct row *r, const char *text,
                              char *err, size_t len)
{
    struct drv_addr a;
    char why[256];

    (void)r;
    if (drv_addr_parse(text, &a, why, sizeof(why)) != 0) {
        snprintf(err, len, "bad address '%s': %s", text, why);
        return -1;
    }
    if (a.kind == DRV_ADDR_FD) {
        snprintf(err, len, "'%s': the metrics listener is bound by drover "
                 "(HOST:PORT or unix:PATH), not inherited", text);
        return -1;
    }
    return 0;
}

static void list_clear(struct drv_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void list_push(struct drv_strlist *l, const char *item)
{
    l->v = drv_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = drv_xstrdup(item);
}

/* Add one item to a list row. The first item from a higher level than
 * the row's current one replaces the whole list. */
static int add_item(struct loader *ld, const struct row *r, const char *t,
                    const char *src, enum level level)
{
    struct drv_strlist *l = field(ld->s, r);
    unsigned char *cur = &ld->level[row_index(r)];
    char msg[512];

    if (r->check && r->check(r, t, msg, sizeof(msg)) < 0)
        return fail(ld, src, "%s", msg);
    if (*cur < level)
        list_clear(l);
    *cur = (unsigned char)level;
    list_push(l, t);
    return 0;
}

/* Set row r from text t coming from src at the given level. */
static int set_text(struct loader *ld, const struct row *r, const char *t,
                    const char *src, enum level level)
{
    char msg[512];
    union value v;
    char **str;

    if (r->type == T_LIST)
        return add_item(ld, r, t, src, level);
    if (r->type == T_STRING) {
        if (t[0] == '\0' && (r->opts & R_NONEMPTY))
            return fail(ld, src, "must not be empty");
        if (t[0] && r->check && r->check(r, t, msg, sizeof(msg)) < 0)
            return fail(ld, src, "%s", msg);
        str = field(ld->s, r);
        free(*str);
        *str = t[0] ? drv_xstrdup(t) : NULL;
    } else {
        if (parse_value(r, t, &v, msg, sizeof(msg)) < 0)
            return fail(ld, src, "%s", msg);
        store(ld->s, r, &v);
    }
    ld->level[row_index(r)] = (unsigned char)level;
    return 0;
}

/* ---- defaults and the environment --------------------------------------- */

/* PORT (container platforms) as given, after checking it; NULL if unset. */
static int platform_port(struct loader *ld, const char **port)
{
    const char *p = env_get(ld->envp, "PORT");
    long v = 0;

    *port = p;
    if (!p)
        return 0;
    for (const char *c = p; *c; c++) {
        if (*c < '0' || *c > '9' || v > 65535)
            return fail(ld, "PORT", "'%s' is not a port number (0-65535)", p);
        v = v * 10 + (*c - '0');
    }
    if (v > 65535)
        return fail(ld, "PORT", "'%s' is not a port number (0-65535)", p);
    return 0;
}

static int apply_defaults(struct loader *ld, bool platform)
{
    const char *port = NULL, *def, *src;
    char bind[64];

    if (platform && platform_port(ld, &port) < 0)
        return -1;
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *r = &rows[i];

        def = r->def;
        src = "default";
        if (platform && r->env_default && env_get(ld->envp, r->env_default)) {
            def = env_get(ld->envp, r->env_default);
            src = r->env_default;
        }
        if (port && (r->opts & R_LISTEN)) {
            snprintf(bind, sizeof(bind), "0.0.0.0:%s", port);
            def = bind;
            src = "PORT";
        }
        if (def && set_text(ld, r, def, src, L_DEFAULT) < 0)
            return -1;
    }
    return 0;
}

/* With dev on and no listen address from any source, listen on
 * loopback only. */
static int apply_dev_listen(struct loader *ld)
{
    const struct row *r = row_with(R_LISTEN);
    const char *port;
    char addr[64];

    if (!ld->s->dev || ld->level[row_index(r)] > L_DEFAULT)
        return 0;
    if (platform_port(ld, &port) < 0)
        return -1;
    snprintf(addr, sizeof(addr), "127.0.0.1:%s", port ? port : "5000");
    list_clear(field(ld->s, r));
    return add_item(ld, r, addr, "dev", L_DEFAULT);
}

/* A comma-separated list from one variable, items trimmed. */
static int apply_env_list(struct loader *ld, const struct row *r,
                          const char *val, const char *name)
{
    char *copy = drv_xstrdup(val), *p = copy, *item, *end;
    int rc = 0;

    for (item = strsep(&p, ","); item && rc == 0; item = strsep(&p, ",")) {
        while (isspace((unsigned char)*item))
            item++;
        end = item + strlen(item);
        while (end > item && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*item == '\0')
            rc = fail(ld, name, "empty item in the list '%s'", val);
        else
            rc = add_item(ld, r, item, name, L_ENV);
    }
    free(copy);
    return rc;
}

static int apply_env(struct loader *ld)
{
    char name[64];
    const char *val;

    for (size_t i = 0; i < NROWS; i++) {
        env_name(&rows[i], name, sizeof(name));
        val = env_get(ld->envp, name);
        if (!val)
            continue;
        if (rows[i].type == T_LIST) {
            if (apply_env_list(ld, &rows[i], val, name) < 0)
                return -1;
        } else if (set_text(ld, &rows[i], val, name, L_ENV) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- the YAML file ------------------------------------------------------ */

struct yaml_ctx {
    struct loader *ld;
    yaml_parser_t parser;
    const char *path;
    size_t seen[NROWS]; /* line where each key was set, 0 = not yet */
};

static const char *ev_text(const yaml_event_t *ev)
{
    return (const char *)ev->data.scalar.value;
}

static void where(const struct yaml_ctx *y, const yaml_mark_t *m, char *buf,
                  size_t len)
{
    snprintf(buf, len, "%s:%zu:%zu", y->path, m->line + 1, m->column + 1);
}

static int yfail(struct yaml_ctx *y, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int yfail(struct yaml_ctx *y, const yaml_mark_t *m, const char *fmt, ...)
{
    char src[1024], msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    where(y, m, src, sizeof(src));
    return fail(y->ld, src, "%s", msg);
}

/* Next event into *ev, or -1 with the parser's error. */
static int next(struct yaml_ctx *y, yaml_event_t *ev)
{
    yaml_parser_t *p = &y->parser;

    if (yaml_parser_parse(p, ev))
        return 0;
    if (p->error == YAML_MEMORY_ERROR)
        abort();
    if (p->error == YAML_READER_ERROR)
        return fail(y->ld, y->path, "YAML error at byte %zu: %s",
                    p->problem_offset, p->problem ? p->problem : "read error");
    /* A key without its ':' is only noticed a line later; the key's own
     * position is the useful one. */
    if (p->context && strcmp(p->context, "while scanning a simple key") == 0)
        return yfail(y, &p->context_mark, "YAML syntax error: %s",
                     p->problem ? p->problem : "unknown error");
    return yfail(y, &p->problem_mark, "YAML syntax error: %s",
                 p->problem ? p->problem : "unknown error");
}

static bool is_null(const yaml_event_t *ev)
{
    const char *t = ev_text(ev);

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

static const char *kind_name(yaml_event_type_t t)
{
    switch (t) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_ALIAS_EVENT:
        return "an alias (aliases are not supported)";
    default:
        return "something else";
    }
}

/* One scalar value (or list item) for row r. */
static int yaml_scalar(struct yaml_ctx *y, const struct row *r,
                       const yaml_event_t *ev)
{
    char src[1024];

    if (memchr(ev_text(ev), '\0', ev->data.scalar.length))
        return yfail(y, &ev->start_mark, "'%s' contains a NUL character",
                     r->name);
    if (is_null(ev)) {
        if (r->type != T_STRING || (r->opts & R_NONEMPTY))
            return yfail(y, &ev->start_mark, "'%s' needs a value", r->name);
        return set_text(y->ld, r, "", y->path, L_YAML);
    }
    where(y, &ev->start_mark, src, sizeof(src));
    return set_text(y->ld, r, ev_text(ev), src, L_YAML);
}

/* The items of a YAML sequence given for list row r; the
 * SEQUENCE_START event has been consumed. */
static int yaml_sequence(struct yaml_ctx *y, const struct row *r,
                         const yaml_mark_t *start)
{
    yaml_event_t ev;
    size_t n = 0;
    int rc = 0;

    while (rc == 0) {
        if (next(y, &ev) < 0)
            return -1;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            if (n == 0 && (r->opts & R_NONEMPTY))
                rc = yfail(y, start, "'%s' needs at least one value", r->name);
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_SCALAR_EVENT)
            rc = is_null(&ev)
                     ? yfail(y, &ev.start_mark, "empty item in '%s'", r->name)
                     : yaml_scalar(y, r, &ev);
        else
            rc = yfail(y, &ev.start_mark,
                       "'%s' items must be plain values, not %s", r->name,
                       kind_name(ev.type));
        n++;
        yaml_event_delete(&ev);
    }
    return rc;
}

/* The value of row r; the key has been consumed. */
static int yaml_value(struct yaml_ctx *y, const struct row *r)
{
    yaml_event_t ev;
    int rc;

    if (next(y, &ev) < 0)
        return -1;
    if (ev.type == YAML_SCALAR_EVENT)
        rc = yaml_scalar(y, r, &ev);
    else if (ev.type == YAML_SEQUENCE_START_EVENT && r->type == T_LIST)
        rc = yaml_sequence(y, r, &ev.start_mark);
    else
        rc = yfail(y, &ev.start_mark, "'%s' takes %s, not %s", r->name,
                   r->type == T_LIST ? "a value or a list of values"
                                     : "a single value",
                   kind_name(ev.type));
    yaml_event_delete(&ev);
    return rc;
}

static int yaml_key(struct yaml_ctx *y, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    char key[64];
    const struct row *r = NULL;
    struct suggest sg = {.dist = SIZE_MAX};
    size_t i;

    if (ev->data.scalar.length < sizeof(key)) {
        for (i = 0; i <= ev->data.scalar.length; i++)
            key[i] = ev_text(ev)[i] == '-' ? '_' : ev_text(ev)[i];
        r = row_named(key);
    }
    if (!r) {
        for (i = 0; i < NROWS; i++)
            if (!(rows[i].opts & R_NOT_IN_YAML))
                consider(&sg, ev_text(ev), rows[i].name);
        if (suggestion(&sg))
            return yfail(y, m, "unknown setting '%s' (did you mean '%s'?)",
                         ev_text(ev), suggestion(&sg));
        return yfail(y, m, "unknown setting '%s'", ev_text(ev));
    }
    if (r->opts & R_NOT_IN_YAML)
        return yfail(y, m, "'%s' cannot be set inside the config file",
                     r->name);
    if (y->seen[row_index(r)])
        return yfail(y, m, "'%s' is set twice (first on line %zu)", r->name,
                     y->seen[row_index(r)]);
    y->seen[row_index(r)] = m->line + 1;
    return yaml_value(y, r);
}

/* The top-level mapping; MAPPING_START has been consumed. */
static int yaml_mapping(struct yaml_ctx *y)
{
    yaml_event_t ev;
    int rc = 0;

    while (rc == 0) {
        if (next(y, &ev) < 0)
            return -1;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_SCALAR_EVENT)
            rc = yaml_key(y, &ev);
        else
            rc = yfail(y, &ev.start_mark,
                       "a setting name must be a plain value, not %s",
                       kind_name(ev.type));
        yaml_event_delete(&ev);
    }
    return rc;
}

/* The document's root: a mapping of settings, or nothing at all. */
static int yaml_root(struct yaml_ctx *y)
{
    yaml_event_t ev;
    int rc = 0;

    if (next(y, &ev) < 0)
        return -1;
    if (ev.type == YAML_MAPPING_START_EVENT)
        rc = yaml_mapping(y);
    else if (ev.type != YAML_SCALAR_EVENT || !is_null(&ev))
        rc = yfail(y, &ev.start_mark,
                   "expected a mapping of settings (key: value), not %s",
                   ev.type == YAML_SCALAR_EVENT ? "a plain value"
                                                : kind_name(ev.type));
    yaml_event_delete(&ev);
    return rc;
}

/* Walk STREAM_START, at most one document, STREAM_END. */
static int yaml_stream(struct yaml_ctx *y)
{
    yaml_event_t ev;
    int documents = 0, rc = 0;

    while (rc == 0) {
        if (next(y, &ev) < 0)
            return -1;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                rc = yfail(y, &ev.start_mark,
                           "only one YAML document is allowed");
            else
                rc = yaml_root(y);
            break;
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&ev);
            return 0;
        default: /* STREAM_START, DOCUMENT_END */
            break;
        }
        yaml_event_delete(&ev);
    }
    return rc;
}

static int load_yaml(struct loader *ld, const char *path)
{
    struct yaml_ctx *y;
    struct stat st;
    FILE *f;
    int rc;

    f = fopen(path, "rb");
    if (!f)
        return fail(ld, path, "cannot open: %s", strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = fail(ld, path, "cannot open: %s", strerror(EISDIR));
        goto out_close;
    }
    y = drv_xcalloc(1, sizeof(*y));
    if (!yaml_parser_initialize(&y->parser)) /* fails only on malloc */
        abort();
    y->ld = ld;
    y->path = path;
    yaml_parser_set_input_file(&y->parser, f);
    rc = yaml_stream(y);
    yaml_parser_delete(&y->parser);
    free(y);
out_close:
    fclose(f);
    return rc;
}

/* ---- the command line --------------------------------------------------- */

struct cli {
    struct assign *a;
    size_t n;
    enum drv_action action;
    int rank;
    bool bad; /* an error is in ld->err */
};

static void cli_error(struct loader *ld, struct cli *c, const char *src,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Keep the first command-line error; scanning goes on for --help. */
static void cli_error(struct loader *ld, struct cli *c, const char *src,
                      const char *fmt, ...)
{
    va_list ap;

    if (c->bad)
        return;
    c->bad = true;
    va_start(ap, fmt);
    vfail(ld, src, fmt, ap);
    va_end(ap);
}

static void cli_action(struct cli *c, size_t i)
{
    /* later wins among equals: --check-config --print-config prints */
    if (actions[i].rank >= c->rank) {
        c->rank = actions[i].rank;
        c->action = actions[i].action;
    }
}

static void cli_push(struct cli *c, const struct row *r, const char *src,
                     const char *val)
{
    c->a[c->n].row = r;
    c->a[c->n].src = src;
    c->a[c->n].val = val;
    c->n++;
}

/* gunicorn flags drover has no setting for, with what to do instead: a
 * command line moved over from gunicorn gets an answer, not a guess. */
static const struct {
    const char *flag;
    const char *instead;
} gunicorn_only[] = {
    {"--reload", "use --dev, drover's reloading single-process mode"},
    {"-D", "drover runs in the foreground; use systemd (conf/drover.service)"},
    {"--daemon", "drover runs in the foreground; use systemd "
                 "(conf/drover.service)"},
    {"--certfile", "drover speaks plain HTTP; terminate TLS at the proxy "
                   "(docs/deployment.md)"},
    {"--keyfile", "drover speaks plain HTTP; terminate TLS at the proxy "
                  "(docs/deployment.md)"},
};

static void unknown_option(struct loader *ld, struct cli *c, const char *name)
{
    struct suggest sg = {.dist = SIZE_MAX};
    char neg[80];

    size_t flen = strcspn(name, "=");
    for (size_t i = 0; i < sizeof(gunicorn_only) / sizeof(gunicorn_only[0]);
         i++) {
        if (strlen(gunicorn_only[i].flag) == flen &&
            strncmp(name, gunicorn_only[i].flag, flen) == 0) {
            cli_error(ld, c, NULL, "%.*s is a gunicorn option drover does "
                      "not have: %s", (int)flen, name,
                      gunicorn_only[i].instead);
            return;
        }
    }

    for (size_t i = 0; i < NACTIONS; i++)
        consider(&sg, name, actions[i].flag);
    for (size_t i = 0; i < NROWS; i++) {
        for (size_t j = 0; j < MAX_FLAGS && rows[i].flags[j]; j++) {
            consider(&sg, name, rows[i].flags[j]);
            if (rows[i].type != T_BOOL)
                continue;
            snprintf(neg, sizeof(neg), "--no-%s", rows[i].flags[j] + 2);
            consider(&sg, name, neg);
        }
    }
    if (name[1] == '-' && suggestion(&sg))
        cli_error(ld, c, NULL, "unknown option '%s' (did you mean '%s'?)", name,
                  suggestion(&sg));
    else
        cli_error(ld, c, NULL, "unknown option '%s'", name);
}

/* Find a long flag (name without "=value"). *negated is set for --no-X. */
static const struct row *long_flag(const char *name, const char **src,
                                   bool *negated)
{
    for (size_t i = 0; i < NROWS; i++) {
        for (size_t j = 0; j < MAX_FLAGS && rows[i].flags[j]; j++) {
            const char *f = rows[i].flags[j];
            if (strcmp(name, f) == 0) {
                *src = f;
                *negated = false;
                return &rows[i];
            }
            if (rows[i].type == T_BOOL && strncmp(name, "--no-", 5) == 0 &&
                strcmp(name + 5, f + 2) == 0) {
                *negated = true;
                return &rows[i];
            }
        }
    }
    return NULL;
}

/* "--name", "--name=value", "--name value", "--no-name". Returns the
 * number of extra argv entries consumed (0 or 1). */
static int scan_long(struct loader *ld, struct cli *c, int i, int argc,
                     char **argv)
{
    const char *arg = argv[i], *eq = strchr(arg, '='), *src = arg;
    const struct row *r;
    char name[80];
    bool negated = false;
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);

    if (n >= sizeof(name)) {
        unknown_option(ld, c, arg);
        return 0;
    }
    memcpy(name, arg, n);
    name[n] = '\0';
    for (size_t k = 0; k < NACTIONS; k++) {
        if (strcmp(name, actions[k].flag) == 0) {
            if (eq)
                cli_error(ld, c, actions[k].flag, "does not take a value");
            cli_action(c, k);
            return 0;
        }
    }
    r = long_flag(name, &src, &negated);
    if (!r || (r->opts & R_POSITIONAL)) {
        unknown_option(ld, c, name);
        return 0;
    }
    if (negated) { /* --no-X: never a value */
        if (eq)
            cli_error(ld, c, name, "does not take a value");
        else
            cli_push(c, r, arg, "false");
        return 0;
    }
    if (r->type == T_BOOL) { /* --X or --X=VALUE, never the next argument */
        cli_push(c, r, src, eq ? eq + 1 : "true");
        return 0;
    }
    if (eq) {
        cli_push(c, r, src, eq + 1);
        return 0;
    }
    if (i + 1 >= argc) {
        cli_error(ld, c, src, "missing value");
        return 0;
    }
    cli_push(c, r, src, argv[i + 1]);
    return 1;
}

/* "-w 4" or "-w4"; -h and -v. */
static int scan_short(struct loader *ld, struct cli *c, int i, int argc,
                      char **argv)
{
    const char *arg = argv[i];

    for (size_t k = 0; k < NACTIONS; k++) {
        if (actions[k].shortflag && strcmp(arg, actions[k].shortflag) == 0) {
            cli_action(c, k);
            return 0;
        }
    }
    for (size_t k = 0; k < NROWS; k++) {
        const char *f = rows[k].shortflag;
        if (!f || strncmp(arg, f, 2) != 0)
            continue;
        if (arg[2]) {
            cli_push(c, &rows[k], f, arg + 2);
            return 0;
        }
        if (i + 1 >= argc) {
            cli_error(ld, c, f, "missing value");
            return 0;
        }
        cli_push(c, &rows[k], f, argv[i + 1]);
        return 1;
    }
    unknown_option(ld, c, arg);
    return 0;
}

static int scan_cli(struct loader *ld, int argc, char **argv, struct cli *c)
{
    const struct row *app = row_with(R_POSITIONAL);
    const char *first_app = NULL;
    bool options = true;

    c->a = drv_xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(*c->a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (options && strcmp(arg, "--") == 0) {
            options = false;
        } else if (!options || arg[0] != '-' || arg[1] == '\0') {
            if (first_app)
                cli_error(ld, c, NULL,
                          "unexpected argument '%s': only one APP may be "
                          "given (APP is '%s')",
                          arg, first_app);
            first_app = arg;
            cli_push(c, app, app->metavar, arg);
        } else if (arg[1] == '-') {
            i += scan_long(ld, c, i, argc, argv);
        } else {
            i += scan_short(ld, c, i, argc, argv);
        }
    }
    /* --help and friends win over a broken command line */
    return c->bad && c->rank < NO_LOAD_RANK ? -1 : 0;
}

/* ---- loading ------------------------------------------------------------ */

static const char *config_path(struct loader *ld, const struct cli *c)
{
    const struct row *r = row_with(R_CONFIG_PATH);
    char name[64];
    const char *path = NULL;

    env_name(r, name, sizeof(name));
    path = env_get(ld->envp, name);
    for (size_t i = 0; i < c->n; i++)
        if (c->a[i].row == r)
            path = c->a[i].val;
    return path && path[0] ? path : NULL;
}

static int resolve(struct loader *ld, const struct cli *c)
{
    const char *path;

    if (apply_defaults(ld, true) < 0)
        return -1;
    path = config_path(ld, c);
    if (path && load_yaml(ld, path) < 0)
        return -1;
    if (apply_env(ld) < 0)
        return -1;
    for (size_t i = 0; i < c->n; i++)
        if (set_text(ld, c->a[i].row, c->a[i].val, c->a[i].src, L_CLI) < 0)
            return -1;
    return apply_dev_listen(ld);
}

int drv_settings_load(struct drv_settings *s, int argc, char **argv,
                      char **envp, enum drv_action *action, char *err,
                      size_t errlen)
{
    struct loader ld = {.s = s, .envp = envp, .err = err, .errlen = errlen};
    struct cli c = {.action = DRV_ACTION_SERVE};
    int rc;

    memset(s, 0, sizeof(*s));
    if (err && errlen)
        err[0] = '\0';
    rc = scan_cli(&ld, argc, argv, &c);
    if (rc == 0 && c.rank >= NO_LOAD_RANK) {
        if (err && errlen) /* a bad flag beside --help is not reported */
            err[0] = '\0';
        rc = apply_defaults(&ld, false);
    } else if (rc == 0) {
        rc = resolve(&ld, &c);
    }
    free(c.a);
    if (rc < 0) {
        drv_settings_free(s);
        return -1;
    }
    *action = c.action;
    return 0;
}

void drv_settings_free(struct drv_settings *s)
{
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].type == T_STRING)
            free(*(char **)field(s, &rows[i]));
        else if (rows[i].type == T_LIST)
            list_clear(field(s, &rows[i]));
    }
    memset(s, 0, sizeof(*s));
}

const char *drv_loglevel_name(enum drv_loglevel level)
{
    if ((unsigned)level > DRV_LOG_CRITICAL)
        return "unknown";
    return loglevel_names[level];
}

/* ---- output ------------------------------------------------------------- */

/* A YAML double-quoted scalar. */
static void put_quoted(FILE *out, const char *t)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(out, "\\x%02x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

/* Shortest plain decimal that reads back as the same double ("30",
 * "0.5"); exponent form only for values that need it. */
static void put_double(FILE *out, double d)
{
    char buf[400];

    for (int prec = 0; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*f", prec, d);
        if (strtod(buf, NULL) == d)
            goto done;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
done:
    fputs(buf, out);
}

static void put_value(FILE *out, const struct drv_settings *s,
                      const struct row *r)
{
    const void *f = cfield(s, r);
    const struct drv_strlist *l;

    switch (r->type) {
    case T_BOOL:
        fputs(*(const bool *)f ? "true" : "false", out);
        break;
    case T_INT:
        fprintf(out, "%d", *(const int *)f);
        break;
    case T_LONG:
        fprintf(out, "%ld", *(const long *)f);
        break;
    case T_SIZE:
        fprintf(out, "%" PRId64, *(const int64_t *)f);
        break;
    case T_DURATION:
        put_double(out, *(const double *)f);
        break;
    case T_LOGLEVEL:
        fputs(drv_loglevel_name(*(const enum drv_loglevel *)f), out);
        break;
    case T_STRING:
        if (*(char *const *)f)
            put_quoted(out, *(char *const *)f);
        else
            fputs("~", out);
        break;
    case T_LIST:
        l = f;
        if (l->n == 0)
            fputs("[]", out);
        for (size_t i = 0; i < l->n; i++) {
            fputs("\n  - ", out);
            put_quoted(out, l->v[i]);
        }
        break;
    }
}

void drv_settings_print_yaml(const struct drv_settings *s, FILE *out)
{
    fputs("# drover settings\n", out);
    if (s->config) {
        fputs("# read from ", out);
        put_quoted(out, s->config);
        fputc('\n', out);
    }
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].opts & R_NOT_IN_YAML)
            continue;
        const struct drv_strlist *l = cfield(s, &rows[i]);

        fprintf(out, "%s:%s", rows[i].name,
                rows[i].type == T_LIST && l->n ? "" : " ");
        put_value(out, s, &rows[i]);
        fputc('\n', out);
    }
}

static const char *scalar_type_name(const struct row *r)
{
    switch (r->type) {
    case T_BOOL:
        return "boolean";
    case T_INT:
    case T_LONG:
        return "integer";
    case T_SIZE:
        return "size in bytes (suffix k, m or g for KiB, MiB, GiB)";
    case T_DURATION:
        return "seconds (decimals allowed, e.g. 0.5)";
    case T_STRING:
        return "string";
    case T_LIST:
        break; /* type_text names the item */
    case T_LOGLEVEL:
        return "one of debug, info, warning, error, critical";
    }
    return "?";
}

/* "integer", "list (each item: address)". */
static void type_text(const struct row *r, char *buf, size_t len)
{
    if (r->type == T_LIST)
        snprintf(buf, len, "list (each item: %s)", r->item ? r->item : "?");
    else
        snprintf(buf, len, "%s", scalar_type_name(r));
}

static void range_text(const struct row *r, char *buf, size_t len)
{
    buf[0] = '\0';
    if (r->type != T_INT && r->type != T_LONG && r->type != T_SIZE &&
        r->type != T_DURATION)
        return;
    if (r->opts & R_MIN_EXCLUSIVE)
        snprintf(buf, len, "greater than %" PRId64, r->min);
    else if (r->max == NO_MAX || r->max == LONG_MAX)
        snprintf(buf, len, "%" PRId64 " or more", r->min);
    else
        snprintf(buf, len, "%" PRId64 " to %" PRId64, r->min, r->max);
}

/* ---- documentation (doc.c renders it) ---------------------------------- */

void drv_settings_docs(void (*each)(const struct drv_setting_doc *d, void *arg),
                       void *arg)
{
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *r = &rows[i];
        struct drv_setting_doc d = {
            .name = r->name,
            .group = r->group,
            .help = r->help,
            .shortflag = r->shortflag,
            .flags = r->flags,
            .metavar = r->metavar,
            .positional = (r->opts & R_POSITIONAL) != 0,
            .negatable = r->type == T_BOOL,
            .in_yaml = !(r->opts & R_NOT_IN_YAML),
            .list = r->type == T_LIST,
            .def = r->def,
            .env_default = r->env_default ? r->env_default
                           : (r->opts & R_LISTEN) ? "PORT"
                                                  : NULL,
        };
        while (d.nflags < MAX_FLAGS && r->flags[d.nflags])
            d.nflags++;
        env_name(r, d.env, sizeof(d.env));
        type_text(r, d.type, sizeof(d.type));
        range_text(r, d.range, sizeof(d.range));
        each(&d, arg);
    }
}

void drv_settings_action_docs(void (*each)(const char *shortflag,
                                           const char *flag, const char *help,
                                           void *arg),
                              void *arg)
{
    for (size_t i = 0; i < NACTIONS; i++)
        each(actions[i].shortflag, actions[i].flag, actions[i].help, arg);
}
