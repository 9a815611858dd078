/*
 * doc: the three renderings of the settings table (see doc.h).
 *
 * Prose is kept as blocks (a paragraph, a numbered or a bulleted item) in
 * a markup of one rule: `code` spans between backticks, which the row
 * help texts may use too. Markdown keeps the marks, --help drops them,
 * roff sets the span in bold. Roff also wants '\' as \e, '-' as \- (a
 * flag must copy and paste as ASCII) and a guard before a '.' or '\''
 * that would begin a line; roff_text() does all of it.
 */
#include "doc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "master.h"
#include "settings.h"

enum block_kind { PARA, NUMBERED, BULLET };

struct block {
    enum block_kind kind;
    const char *text;
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* What drover is: --help's opening and the man page's DESCRIPTION. */
static const struct block summary[] = {
    {PARA, "Serve a Python WSGI app or a native C app over HTTP with a "
           "master process and a pool of workers."},
    {PARA, "`APP` is `module:callable` or `path/to/script.py:callable` "
           "(Python WSGI, e.g. `myproj.wsgi:app`) or "
           "`path/to/app.so:symbol` (native)."},
    {PARA, "Settings come from, lowest first: defaults, the YAML file "
           "(`-c`), `DROVER_<NAME>` environment variables, the command "
           "line."},
};

/* How settings combine: the reference's opening and the man page's
 * CONFIGURATION. */
static const struct block configuration[] = {
    {PARA, "Every setting can be given in four places. Later ones win:"},
    {NUMBERED, "the built-in default;"},
    {NUMBERED, "the YAML file named by `-c/--config` or `DROVER_CONFIG`, a "
               "mapping of setting names to values (`max_requests: 1000`; "
               "`max-requests` works too);"},
    {NUMBERED, "an environment variable `DROVER_<NAME>` "
               "(`DROVER_MAX_REQUESTS=1000`); an empty variable counts as "
               "unset;"},
    {NUMBERED, "the command line (`--max-requests 1000` or "
               "`--max-requests=1000`)."},
    {PARA, "`PORT` and `WEB_CONCURRENCY`, set by container platforms, "
           "replace the defaults of `bind` and `workers`, so any explicit "
           "setting still wins over them."},
    {PARA, "Value syntax:"},
    {BULLET, "booleans: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`; "
             "each boolean flag `--x` has a `--no-x` form;"},
    {BULLET, "seconds: integers or decimals (`30`, `0.5`);"},
    {BULLET, "sizes: bytes, or a number with `k`, `m` or `g` (multiples of "
             "1024): `512k`, `10m`;"},
    {BULLET, "lists (`bind`): repeat the flag, use a YAML list, or separate "
             "items with commas in the environment variable. A list from a "
             "higher source replaces the whole list from a lower one."},
    {PARA, "A bad value stops drover with one line naming where it came "
           "from (`--workers: 'x' is not an integer`, "
           "`DROVER_TIMEOUT: '-1' is below the minimum 0`, "
           "`drover.yml:4:3: unknown setting 'wrokers'`) and exit status "
           "2."},
};

/* Variables drover reads besides the settings' own. */
static const struct {
    const char *names, *text;
} other_env[] = {
    {"TMPDIR", "Where request bodies larger than `body_buffer_size` are "
               "spooled (default `/tmp`)."},
    {"NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
     "systemd's notification socket and watchdog (`Type=notify`): drover "
     "reports READY once every worker accepts, RELOADING, STOPPING and "
     "STATUS, and pings the watchdog."},
    {"LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES",
     "Sockets passed by systemd socket activation: drover serves on them "
     "and ignores `bind`."},
};

/* The signals, as master.c and worker.c (and dev.c) handle them. */
static const struct {
    const char *names, *master, *worker;
} signals[] = {
    {"SIGTERM",
     "graceful stop: the listeners close, requests in flight finish "
     "within `graceful_timeout`, exit status 0",
     "finish the requests in flight, then exit"},
    {"SIGINT, SIGQUIT", "stop at once (the workers get SIGQUIT, SIGKILL a "
                        "second later)",
     "stop at once"},
    {"SIGHUP",
     "reload the configuration and the app's code: a check process loads "
     "both first; if that fails the running workers keep serving, else the "
     "master re-executes itself in place (same pid, same sockets) and "
     "retires the old workers once every new one accepts",
     "retire: finish the requests in flight, then exit (the master's "
     "word)"},
    {"SIGTTIN, SIGTTOU", "one worker more, one fewer (never below 1)", NULL},
    {"SIGUSR1", "reopen the log files, here and in every worker",
     "reopen the log files"},
    {"SIGCHLD", "reap; a worker that died is logged and replaced", NULL},
    {"SIGABRT", NULL,
     "sent by the master to a worker busy past `timeout`: Python's "
     "faulthandler writes every thread's stack to the error log; SIGKILL "
     "follows a second later"},
};

static const struct {
    int status;
    const char *text;
} exits[] = {
    {0, "A clean stop, or an action (`--help`, `--check-config`, ...) that "
        "succeeded."},
    {DRV_EXIT_RUNTIME, "A resource failed at start: a bind address in "
                       "use, a `--pid` file naming a running drover."},
    {DRV_EXIT_CONFIG, "Bad configuration (a flag, an environment variable "
                      "or a YAML value) or an app that cannot be loaded."},
    {DRV_EXIT_BOOT, "The workers failed to boot (an app that does not "
                    "import with `--no-preload`, a `--user` the workers "
                    "cannot switch to)."},
};

/* ---- plain text (--help) ------------------------------------------------ */

/* text without its backticks, NUL-terminated, in b (which it reuses). */
static const char *unmarked(struct drv_buf *b, const char *text)
{
    drv_buf_reset(b);
    for (const char *p = text; *p; p++)
        if (*p != '`')
            drv_buf_append(b, p, 1);
    drv_buf_append(b, "", 1);
    return drv_buf_data(b);
}

/* Print text word-wrapped to `width` columns, each line indented. */
static void put_wrapped(FILE *out, const char *text, int indent, int width)
{
    const char *p = text;
    int room = width - indent;

    while (*p) {
        int n = (int)strlen(p), cut = n;

        if (n > room) {
            /* break at the last space that fits, else at the first one */
            for (cut = room; cut > 0 && p[cut] != ' '; cut--)
                ;
            if (cut == 0)
                for (cut = room; p[cut] && p[cut] != ' '; cut++)
                    ;
        }
        fprintf(out, "%*s%.*s\n", indent, "", cut, p);
        p += cut;
        while (*p == ' ')
            p++;
    }
}

/* "-w, --workers INT", "--preload, --no-preload", "APP (positional)"; in
 * Markdown each flag is code. */
static void flags_text(const struct drv_setting_doc *d, char *buf, size_t len,
                       bool md)
{
    const char *tick = md ? "`" : "";
    size_t n = 0;

    buf[0] = '\0';
    if (d->positional) {
        snprintf(buf, len, "%s%s%s (positional)", tick, d->metavar, tick);
        return;
    }
    /* i == 0 is the short flag, then the long ones */
    for (size_t i = 0; i <= d->nflags && n < len; i++) {
        const char *f = i == 0 ? d->shortflag : d->flags[i - 1];
        if (!f)
            continue;
        n += (size_t)snprintf(buf + n, len - n, "%s%s%s%s", n ? ", " : "", tick,
                              f, tick);
        if (d->negatable && i > 0 && n < len)
            n += (size_t)snprintf(buf + n, len - n, ", %s--no-%s%s", tick,
                                  f + 2, tick);
    }
    if (d->metavar && n < len)
        snprintf(buf + n, len - n, " %s", d->metavar);
}

static void help_action(const char *shortflag, const char *flag,
                        const char *help, void *arg)
{
    char flags[80];
    snprintf(flags, sizeof(flags), "%s%s%s", shortflag ? shortflag : "",
             shortflag ? ", " : "", flag);
    fprintf(arg, "  %-22s %s\n", flags, help);
}

struct walk {
    FILE *out;
    const char *group; /* the group of the last setting shown */
    struct drv_buf text;
};

/* A new group heading when d starts one. */
static bool new_group(struct walk *w, const struct drv_setting_doc *d)
{
    if (w->group && strcmp(w->group, d->group) == 0)
        return false;
    w->group = d->group;
    return true;
}

static void help_setting(const struct drv_setting_doc *d, void *arg)
{
    struct walk *w = arg;
    char flags[200], line[512];

    if (new_group(w, d))
        fprintf(w->out, "\n%s:\n", d->group);
    flags_text(d, flags, sizeof(flags), false);
    fprintf(w->out, "  %s\n", flags);
    put_wrapped(w->out, unmarked(&w->text, d->help), 8, 78);
    /* --help names a scalar's type through its metavar; a list's
     * metavar cannot say what one item is */
    snprintf(line, sizeof(line), "[%s%senv %s, default %s]",
             d->list ? d->type : "", d->list ? ", " : "", d->env,
             d->def ? d->def : "unset");
    put_wrapped(w->out, line, 8, 78);
}

void drv_doc_help(FILE *out, const char *prog)
{
    struct walk w = {.out = out};

    fprintf(out, "usage: %s [OPTIONS] APP\n", prog ? prog : "drover");
    for (size_t i = 0; i < COUNT(summary); i++) {
        fputc('\n', out);
        put_wrapped(out, unmarked(&w.text, summary[i].text), 0, 72);
    }
    fputs("\nActions:\n", out);
    drv_settings_action_docs(help_action, out);
    drv_settings_docs(help_setting, &w);
    drv_buf_free(&w.text);
}

/* ---- Markdown (--print-reference) --------------------------------------- */

static void md_blocks(FILE *out, const struct block *b, size_t n)
{
    int number = 0;
    for (size_t i = 0; i < n; i++) {
        bool list_ends = i + 1 == n || b[i + 1].kind != b[i].kind;
        switch (b[i].kind) {
        case PARA:
            fprintf(out, "%s\n\n", b[i].text);
            break;
        case NUMBERED:
            fprintf(out, "%d. %s\n%s", ++number, b[i].text,
                    list_ends ? "\n" : "");
            break;
        case BULLET:
            fprintf(out, "* %s\n%s", b[i].text, list_ends ? "\n" : "");
            break;
        }
        if (list_ends)
            number = 0;
    }
}

static void md_action(const char *shortflag, const char *flag,
                      const char *help, void *arg)
{
    fprintf(arg, "* %s%s%s`%s`: %s\n", shortflag ? "`" : "",
            shortflag ? shortflag : "", shortflag ? "`, " : "", flag, help);
}

static void md_setting(const struct drv_setting_doc *d, void *arg)
{
    struct walk *w = arg;
    FILE *out = w->out;
    char buf[512];

    if (new_group(w, d))
        fprintf(out, "\n## %s\n", d->group);
    fprintf(out, "\n### `%s`\n\n%s\n\n| | |\n|---|---|\n", d->name, d->help);
    flags_text(d, buf, sizeof(buf), true);
    fprintf(out, "| Command line | %s |\n", buf);
    fprintf(out, "| Environment | `%s` |\n", d->env);
    if (d->in_yaml)
        fprintf(out, "| YAML | `%s` |\n", d->name);
    else
        fputs("| YAML | (not allowed) |\n", out);
    fprintf(out, "| Type | %s |\n", d->type);
    if (d->def)
        fprintf(out, "| Default | `%s` |\n", d->def);
    else
        fputs("| Default | unset |\n", out);
    if (d->range[0])
        fprintf(out, "| Range | %s |\n", d->range);
}

void drv_doc_reference(FILE *out)
{
    struct walk w = {.out = out};

    fputs("# drover configuration reference\n\n"
          "<!-- Generated by `drover --print-reference` from the settings "
          "table in src/settings.c; do not edit by hand. -->\n\n",
          out);
    md_blocks(out, configuration, COUNT(configuration));
    fputs("Actions:\n\n", out);
    drv_settings_action_docs(md_action, out);
    drv_settings_docs(md_setting, &w);
}

/* ---- roff (--print-man) ------------------------------------------------- */

/* Text as roff, no newline: with `marks`, backtick spans in bold (else a
 * backtick is one); '\' and '-' literal; a leading '.' or '\'' guarded
 * (the text begins a line). */
static void roff_text(FILE *out, const char *t, bool marks)
{
    bool code = false;
    if (*t == '.' || *t == '\'')
        fputs("\\&", out);
    for (; *t; t++) {
        if (*t == '`' && marks) {
            fputs(code ? "\\fR" : "\\fB", out);
            code = !code;
        } else if (*t == '`') {
            fputs("\\(ga", out);
        } else if (*t == '\\') {
            fputs("\\e", out);
        } else if (*t == '-') {
            fputs("\\-", out);
        } else {
            fputc(*t, out);
        }
    }
    if (code)
        fputs("\\fR", out);
}

/* t in bold (or italic), taken literally. */
static void roff_font(FILE *out, const char *font, const char *t)
{
    fprintf(out, "\\f%s", font);
    roff_text(out, t, false);
    fputs("\\fR", out);
}

static void roff_line(FILE *out, const char *t)
{
    roff_text(out, t, true);
    fputc('\n', out);
}

static void man_blocks(FILE *out, const struct block *b, size_t n)
{
    int number = 0;
    for (size_t i = 0; i < n; i++) {
        switch (b[i].kind) {
        case PARA:
            fputs(".PP\n", out);
            number = 0;
            break;
        case NUMBERED:
            fprintf(out, ".IP %d. 4\n", ++number);
            break;
        case BULLET:
            fputs(".IP \\(bu 2\n", out);
            break;
        }
        roff_line(out, b[i].text);
    }
}

static void man_action(const char *shortflag, const char *flag,
                       const char *help, void *arg)
{
    FILE *out = arg;
    fputs(".TP\n", out);
    if (shortflag) {
        roff_font(out, "B", shortflag);
        fputs(", ", out);
    }
    roff_font(out, "B", flag);
    fputc('\n', out);
    roff_line(out, help);
}

/* The tag line: "-w, --workers INT", "--preload, --no-preload", "APP". */
static void man_flags(FILE *out, const struct drv_setting_doc *d)
{
    bool first = true;
    char neg[80];

    if (d->positional) {
        roff_font(out, "I", d->metavar);
        fputc('\n', out);
        return;
    }
    for (size_t i = 0; i <= d->nflags; i++) {
        const char *f = i == 0 ? d->shortflag : d->flags[i - 1];
        if (!f)
            continue;
        fputs(first ? "" : ", ", out);
        roff_font(out, "B", f);
        first = false;
        if (d->negatable && i > 0) {
            snprintf(neg, sizeof(neg), "--no-%s", f + 2);
            fputs(", ", out);
            roff_font(out, "B", neg);
        }
    }
    if (d->metavar) {
        fputc(' ', out);
        roff_font(out, "I", d->metavar);
    }
    fputc('\n', out);
}

static void man_setting(const struct drv_setting_doc *d, void *arg)
{
    struct walk *w = arg;
    FILE *out = w->out;

    if (new_group(w, d)) {
        fputs(".SS ", out);
        roff_line(out, d->group);
    }
    fputs(".TP\n", out);
    man_flags(out, d);
    roff_line(out, d->help);
    fputs(".IP\nEnvironment: ", out);
    roff_font(out, "B", d->env);
    if (d->env_default) {
        fputs(" (", out);
        roff_font(out, "B", d->env_default);
        fputs(" replaces the default)", out);
    }
    if (d->in_yaml) {
        fputs("; YAML: ", out);
        roff_font(out, "B", d->name);
    } else {
        fputs("; not in the YAML file", out);
    }
    fputs("; type: ", out);
    roff_text(out, d->type, false);
    if (d->range[0]) {
        fputs(", ", out);
        roff_text(out, d->range, false);
    }
    if (d->def) {
        fputs("; default: ", out);
        roff_font(out, "B", d->def);
    } else {
        fputs("; unset by default", out);
    }
    fputs(".\n", out);
}

static void man_env(const struct drv_setting_doc *d, void *arg)
{
    FILE *out = arg;
    fputs(".TP\n", out);
    roff_font(out, "B", d->env);
    fputs("\nSets ", out);
    roff_font(out, "B", d->name);
    if (!d->positional && d->nflags) {
        fputs(" (", out);
        roff_font(out, "B", d->flags[0]);
        fputc(')', out);
    }
    fputs(".\n", out);
}

static void man_platform_env(const struct drv_setting_doc *d, void *arg)
{
    FILE *out = arg;
    if (!d->env_default)
        return;
    fputs(".TP\n", out);
    roff_font(out, "B", d->env_default);
    fputs("\nReplaces the default of ", out);
    roff_font(out, "B", d->name);
    fputs(".\n", out);
}

static void man_signals(FILE *out)
{
    for (size_t i = 0; i < COUNT(signals); i++) {
        fputs(".TP\n", out);
        roff_font(out, "B", signals[i].names);
        fputc('\n', out);
        if (signals[i].master) {
            fputs("Master: ", out);
            roff_text(out, signals[i].master, true);
            fputs(".\n", out);
        }
        if (signals[i].master && signals[i].worker)
            fputs(".br\n", out);
        if (signals[i].worker) {
            fputs("Worker: ", out);
            roff_text(out, signals[i].worker, true);
            fputs(".\n", out);
        }
    }
    fputs(".PP\nWith ", out);
    roff_font(out, "B", "--dev");
    fputs(" (one process) SIGINT and SIGTERM stop at once, exit status 0.\n",
          out);
}

void drv_doc_man(FILE *out)
{
    struct walk w = {.out = out};

    fputs(".\\\" drover(1). Generated by drover --print-man from the "
          "settings table\n"
          ".\\\" in src/settings.c and the text in src/doc.c; do not edit "
          "by hand.\n",
          out);
    fprintf(out, ".TH DROVER 1 \"\" \"drover %s\" \"User Commands\"\n",
            DROVER_VERSION);
    /* No hyphenation and a ragged right margin: flags stay whole. */
    fputs(".nh\n.ad l\n"
          ".SH NAME\n"
          "drover \\- production server for Python WSGI and native C apps\n"
          ".SH SYNOPSIS\n"
          ".B drover\n[\\fIOPTIONS\\fR] \\fIAPP\\fR\n.br\n"
          ".B drover\n\\fIACTION\\fR [\\fIOPTIONS\\fR] [\\fIAPP\\fR]\n"
          ".SH DESCRIPTION\n",
          out);
    man_blocks(out, summary, COUNT(summary));
    fputs(".SH OPTIONS\n.SS Actions\n", out);
    drv_settings_action_docs(man_action, out);
    drv_settings_docs(man_setting, &w);
    fputs(".SH CONFIGURATION\n", out);
    man_blocks(out, configuration, COUNT(configuration));
    fputs(".SH ENVIRONMENT\n"
          "Each setting has a variable named after it in upper case; a "
          "list takes comma\\-separated items. An empty variable counts as "
          "unset.\n",
          out);
    drv_settings_docs(man_env, out);
    fputs(".PP\nContainer platforms and tools set these; each replaces a "
          "default, so any explicit setting still wins:\n",
          out);
    drv_settings_docs(man_platform_env, out);
    fputs(".PP\nAlso read:\n", out);
    for (size_t i = 0; i < COUNT(other_env); i++) {
        fputs(".TP\n", out);
        roff_font(out, "B", other_env[i].names);
        fputc('\n', out);
        roff_line(out, other_env[i].text);
    }
    fputs(".SH SIGNALS\n", out);
    man_signals(out);
    fputs(".SH \"EXIT STATUS\"\n", out);
    for (size_t i = 0; i < COUNT(exits); i++) {
        fprintf(out, ".TP\n.B %d\n", exits[i].status);
        roff_line(out, exits[i].text);
    }
    fputs(".SH \"SEE ALSO\"\n"
          "\\fBgunicorn\\fR(1), \\fBsystemd.service\\fR(5), "
          "\\fBsystemd.socket\\fR(5), \\fBnginx\\fR(8).\n"
          "docs/configuration.md and docs/deployment.md in drover's "
          "sources.\n",
          out);
}
