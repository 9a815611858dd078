/*
 * settings: the one table that defines every drover setting.
 *
 * Each row names a setting once: its YAML key, its CLI flag(s), its
 * environment variable (DROVER_<KEY in upper case>), its type, default,
 * bounds and help text. Command-line parsing, the YAML file, the
 * environment, --print-config and --check-config come from that table,
 * and so do --help, docs/configuration.md and drover(1) (doc.c, through
 * drv_settings_docs).
 *
 * Precedence, lowest first: default < YAML file < environment < command
 * line. The YAML file is named by -c/--config or DROVER_CONFIG. PORT and
 * WEB_CONCURRENCY (container platforms) change the *defaults* of bind and
 * workers, so every explicit source still wins over them.
 *
 * Errors: drv_settings_load() never prints and never exits. It fills the
 * caller's buffer with one line naming the source of the bad value:
 *   "--workers: 'abc' is not an integer"
 *   "DROVER_TIMEOUT: '-1' is below the minimum 0"
 *   "drover.yml:4:3: unknown setting 'wrokers'"
 * and returns -1; main prints it and exits with status 2.
 */
#ifndef DRV_SETTINGS_H
#define DRV_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"

enum drv_loglevel {
    DRV_LOG_DEBUG,
    DRV_LOG_INFO,
    DRV_LOG_WARNING,
    DRV_LOG_ERROR,
    DRV_LOG_CRITICAL,
};

/* The resolved settings. Durations are seconds; sizes are bytes. Strings
 * are owned by the struct (freed by drv_settings_free); an unset optional
 * string is NULL. */
struct drv_settings {
    char *app;                  /* APP positional: module:callable or x.so:sym */
    char *config;               /* YAML file the settings were read from */
    struct drv_strlist bind;    /* HOST:PORT, [v6]:PORT, unix:/path, fd://N */
    int backlog;
    int workers;
    int threads;                /* app threads per worker, 1 = none */
    int worker_connections;     /* open connections per worker */
    char *worker_class;         /* gunicorn's -k: sync or gthread */
    char *interface;            /* auto, wsgi, asgi */
    char *lifespan;             /* ASGI lifespan: auto, on, off */
    char *loop;                 /* ASGI asyncio loop: auto, asyncio, uvloop */
    int64_t ws_max_size;        /* largest WebSocket message received */
    double ws_ping_interval;    /* 0 = no pings */
    double ws_ping_timeout;     /* 0 = no limit */
    double timeout;             /* worker (app call) timeout, 0 = off */
    double graceful_timeout;
    double keepalive;           /* idle keep-alive wait, 0 = no keep-alive */
    double header_timeout;      /* time allowed to receive a request head */
    double io_timeout;          /* inactivity allowed reading a body / writing */
    struct drv_strlist forwarded_allow_ips; /* trusted proxies: IP, NET/BITS, * */
    long max_requests;          /* 0 = never recycle */
    long max_requests_jitter;
    long max_worker_memory;     /* MiB of resident memory, 0 = no limit */
    bool preload;
    int limit_request_line;
    int limit_request_fields;
    int limit_request_field_size;
    int64_t max_body_size;      /* 0 = unlimited */
    int64_t body_buffer_size;   /* larger bodies spool to a temporary file */
    char *accesslog;            /* NULL = off, "-" = stdout */
    char *access_log_format;
    char *errorlog;             /* "-" = stderr */
    enum drv_loglevel loglevel;
    char *metrics_bind;         /* the master's metrics listener, NULL = off */
    char *chdir;                /* directory to change to before loading */
    struct drv_strlist pythonpath; /* prepended to sys.path */
    char *virtualenv;           /* PEP 405 venv ($VIRTUAL_ENV by default) */
    struct drv_strlist env;     /* KEY=VALUE set before loading the app */
    char *script_name;          /* WSGI mount point, NULL = root */
    char *pidfile;
    char *user;                 /* workers' user, NULL = unchanged */
    char *group;
    char *umask;                /* octal text; drv_settings_parse_umask */
    char *proc_name;            /* NULL = the app spec */
    bool dev;
    struct drv_strlist reload_extra_files; /* --dev also watches these */
};

/* What main() should do once settings are loaded. */
enum drv_action {
    DRV_ACTION_SERVE,
    DRV_ACTION_HELP,
    DRV_ACTION_VERSION,
    DRV_ACTION_PRINT_CONFIG,
    DRV_ACTION_CHECK_CONFIG,
    DRV_ACTION_PRINT_REFERENCE, /* --print-reference: docs/configuration.md */
    DRV_ACTION_PRINT_MAN,       /* --print-man: drover(1) */
};

/*
 * Resolve the settings from defaults, the YAML file, `envp` (DROVER_*,
 * PORT, WEB_CONCURRENCY) and argv[1..argc-1]. On success fills *s and
 * *action and returns 0. On error returns -1 with one line (no newline) in
 * err[0..errlen) and leaves *s freed. `s` must be zero-initialised or
 * previously freed.
 */
int drv_settings_load(struct drv_settings *s, int argc, char **argv,
                      char **envp, enum drv_action *action, char *err,
                      size_t errlen);

/* Free everything *s owns and zero it. Safe on a zeroed struct. */
void drv_settings_free(struct drv_settings *s);

/* Write the resolved settings as a YAML document that drv_settings_load
 * accepts back unchanged (used by --print-config). */
void drv_settings_print_yaml(const struct drv_settings *s, FILE *out);

/* One setting as documentation shows it (see drv_settings_docs). The
 * pointers are the table's own and live as long as the program; the
 * arrays are filled for the call. */
struct drv_setting_doc {
    const char *name;  /* the setting's name, which is its YAML key */
    const char *group; /* "Workers": consecutive settings share one */
    const char *help;  /* one paragraph, plain text */
    const char *shortflag;     /* "-w", or NULL */
    const char *const *flags;  /* long flags, the main one first */
    size_t nflags;
    const char *metavar;       /* "INT"; the positional's name; or NULL */
    bool positional;           /* the APP argument: no flag at all */
    bool negatable;            /* a boolean: each --x has a --no-x */
    bool in_yaml;              /* may be set in the YAML file */
    bool list;                 /* repeatable; comma-separated in env */
    const char *def;           /* default as text, NULL when unset */
    const char *env_default;   /* platform variable (PORT, WEB_CONCURRENCY)
                                  that replaces the default, or NULL */
    char env[64];              /* "DROVER_WORKERS" */
    char type[160];            /* "integer", "list (each item: address)" */
    char range[64];            /* "1 to 1024", "0 or more", or "" */
};

/* Call each(d, arg) for every setting, in the table's order (which is
 * --help's and the reference's). */
void drv_settings_docs(void (*each)(const struct drv_setting_doc *d, void *arg),
                       void *arg);

/* Call each() for every action flag (--help, --version, ...), in order;
 * shortflag may be NULL. */
void drv_settings_action_docs(void (*each)(const char *shortflag,
                                           const char *flag, const char *help,
                                           void *arg),
                              void *arg);

/* The umask setting's value: 0..0777, or -1 if `text` is not octal. */
int drv_settings_parse_umask(const char *text);

/* Name of a log level ("debug", "info", ...). */
const char *drv_loglevel_name(enum drv_loglevel level);

#endif
