/* bench/ws_load.c: WebSocket echo load generator for bench/run.sh (group
 * asgi_ws), the WebSocket counterpart of wrk.
 *
 *   ws_load [-c CLIENTS] [-d DURATION] [-s SIZE] [-t TIMEOUT] [-n COUNT] ws://HOST:PORT/PATH
 *
 *   -c  clients, each its own connection (50)
 *   -d  how long to run: 10s, 500ms, 1m, or seconds (10s)
 *   -s  bytes in each text message (16; 1 to 4096)
 *   -t  an echo (or a handshake) slower than this counts as a timeout (2s)
 *   -n  stop after COUNT echoes per client instead of after -d, and exit 0
 *       only when every one came back intact (run.sh's readiness check)
 *
 * Each client connects, sends a fixed HTTP/1.1 Upgrade request (fixed
 * Sec-WebSocket-Key, no extensions, so no compression), checks the 101
 * status and the Sec-WebSocket-Accept header, then loops: send one text
 * message, wait for its echo, check it is the same bytes, record the round
 * trip. All clients start at once; one that fails is counted (connect,
 * read, write, failed handshake) and reconnects 10 ms later, as wrk does.
 * WebSocket framing (masking included) is libwslay's event API; the event
 * loop is libev; one thread, so pin it to its own CPU (run.sh does).
 *
 * The output has the lines of `wrk --latency` that bench/report.py reads,
 * with "messages" for "requests":
 *
 *     Latency Distribution / 50% 75% 90% 99%, "N messages in Ts",
 *     "Socket errors: connect C, read R, write W, timeout T" (when any),
 *     "Failed handshakes: N", "Bad echoes: N" (when any),
 *     "Messages/sec: X", "Client CPU: P% of one core"
 *
 * A message counts when its echo arrives before the end of the run;
 * latencies are round trips, every echo included (timed-out ones too).
 * At the end each client waits for its last echo (uncounted) and closes
 * with a close frame (1000), for at most a second, so that no server logs
 * a send on a dead connection while the next peer is being measured.
 *
 * Build: cc -O2 -o ws_load bench/ws_load.c -lwslay -lev
 * (Debian libwslay-dev, libev-dev; run.sh builds it in its temp dir.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

/* RFC 6455 section 1.3's example key and the accept value it implies. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define MAX_SIZE 4096
#define RECONNECT_DELAY 0.010

enum state { S_IDLE, S_CONNECTING, S_HS_SEND, S_HS_RECV, S_OPEN, S_DONE };
enum err { E_CONNECT, E_READ, E_WRITE, E_HANDSHAKE, E_BAD_ECHO };

struct client {
    int fd;
    enum state state;
    int events;              /* what io waits for */
    ev_io io;
    ev_timer retry;
    wslay_event_context_ptr ws;
    char hs[4096];           /* handshake request, then its response */
    size_t hs_len, hs_off;
    const uint8_t *extra;    /* bytes that came after the 101 response */
    size_t extra_len;
    uint64_t since;          /* when the current message or handshake started */
    int late;                /* it already counted as a timeout */
    int io_err;              /* the errno-kind error a wslay callback hit */
    int bad_echo;            /* on_msg_cb shut the context down for a bad echo */
    int drained;             /* a short read emptied the socket (this wake-up) */
    int closing;             /* counted in `lingering` */
    uint64_t seq, echoed;
    uint8_t msg[MAX_SIZE];
};

static struct ev_loop *loop;
static struct client *clients;
static int nclients = 50, msg_size = 16;
static uint64_t duration_ns = 10000000000ull, timeout_ns = 2000000000ull, per_client;
static struct addrinfo *addr;
static char host_header[300], path[1024], url[1400];
static volatile int stopping;
static int finished;          /* -n: clients that are done */
static int lingering;         /* after the run: clients still closing */
static struct rusage ru_stop;
static uint64_t t_start, t_stop, messages;
static uint64_t errors[E_BAD_ECHO + 1], timeouts;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram: exact below 2048 ns, then 1024 buckets per power
 * of two (under 0.1 % error), up to 2^40 ns. */
#define SUB_BITS 10
#define SUB (1u << SUB_BITS)
#define MAX_SHIFT 30
#define NBUCKETS (2 * SUB + MAX_SHIFT * SUB)
static uint64_t hist[NBUCKETS], hist_n, hist_sum, hist_max;

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * SUB)
        return (unsigned)v;
    if (v >= (1ull << (SUB_BITS + MAX_SHIFT + 1)))
        v = (1ull << (SUB_BITS + MAX_SHIFT + 1)) - 1;
    int shift = 63 - __builtin_clzll(v) - SUB_BITS;
    return 2 * SUB + (unsigned)(shift - 1) * SUB + (unsigned)((v >> shift) - SUB);
}

static uint64_t value_of(unsigned b)
{
    if (b < 2 * SUB)
        return b;
    unsigned shift = (b - 2 * SUB) / SUB + 1;
    uint64_t m = (b - 2 * SUB) % SUB + SUB;
    return (m << shift) + ((1ull << shift) >> 1);   /* the bucket's middle */
}

static void hist_add(uint64_t v)
{
    hist[bucket_of(v)]++;
    hist_n++;
    hist_sum += v;
    if (v > hist_max)
        hist_max = v;
}

static uint64_t percentile(double p)
{
    uint64_t want = (uint64_t)(p / 100.0 * (double)hist_n + 0.999999), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= want)
            return value_of(b);
    }
    return hist_max;
}

/* wrk's units: 812.00us, 1.23ms, 2.01s */
static void fmt_ns(char *buf, size_t n, uint64_t ns)
{
    if (ns < 1000000)
        snprintf(buf, n, "%.2fus", ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, n, "%.2fms", ns / 1e6);
    else
        snprintf(buf, n, "%.2fs", ns / 1e9);
}

/* ---- clients */
static void io_cb(struct ev_loop *l, ev_io *w, int revents);
static void start_client(struct client *c);

static void want(struct client *c, int events)
{
    if (events == c->events)
        return;
    if (c->events)
        ev_io_stop(loop, &c->io);
    c->events = events;
    if (events) {
        ev_io_set(&c->io, c->fd, events);
        ev_io_start(loop, &c->io);
    }
}

static void client_done(struct client *c)
{
    want(c, 0);
    if (c->ws)
        wslay_event_context_free(c->ws);
    c->ws = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = S_DONE;
    if (c->closing) {
        c->closing = 0;
        if (--lingering == 0)
            ev_break(loop, EVBREAK_ALL);
    }
    if (per_client && ++finished == nclients)
        ev_break(loop, EVBREAK_ALL);
}

static void retry_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)revents;
    start_client((struct client *)w->data);
}

/* The connection failed: count it, drop it, and (unless -n) open another. */
static void client_fail(struct client *c, enum err e)
{
    if (stopping) {   /* closing after the run: nothing counts any more */
        client_done(c);
        return;
    }
    errors[e]++;
    client_done(c);
    if (per_client)
        return;
    c->state = S_IDLE;
    ev_timer_set(&c->retry, RECONNECT_DELAY, 0.);
    ev_timer_start(loop, &c->retry);
}

static void next_message(struct client *c)
{
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, c->msg, (size_t)msg_size};
    char hex[17];
    c->seq++;
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)c->seq);
    memcpy(c->msg, hex, msg_size < 16 ? (size_t)msg_size : 16);
    c->since = now_ns();
    c->late = 0;
    if (wslay_event_queue_msg(c->ws, &m) != 0) {   /* wslay copies msg */
        /* Maybe inside wslay_event_recv: leave the context for io_cb to drop. */
        c->io_err = 2;
        wslay_event_shutdown_read(c->ws);
        wslay_event_shutdown_write(c->ws);
    }
}

static ssize_t recv_cb(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *ud)
{
    struct client *c = ud;
    (void)flags;
    if (c->extra_len) {
        size_t n = len < c->extra_len ? len : c->extra_len;
        memcpy(buf, c->extra, n);
        c->extra += n;
        c->extra_len -= n;
        return (ssize_t)n;
    }
    /* wslay reads until it is told WOULDBLOCK. After a short read the
     * socket is empty: say so without the recv() that would return EAGAIN
     * (one syscall less per message). Safe: the io watcher is level
     * triggered, so bytes that arrive meanwhile wake us again. */
    if (c->drained) {
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0) {
        c->drained = (size_t)n < len;
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
    } else {
        c->io_err = 1;   /* EOF or a reset */
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

static ssize_t send_cb(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct client *c = ud;
    (void)flags;
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
    } else {
        c->io_err = 2;
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

static int genmask_cb(wslay_event_context_ptr ws, uint8_t *buf, size_t len, void *ud)
{
    (void)ws;
    (void)ud;
    for (size_t i = 0; i < len; i++) {   /* xorshift64: masks need not be secret here */
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        buf[i] = (uint8_t)(rng >> 24);
    }
    return 0;
}

static void on_msg_cb(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    struct client *c = ud;
    (void)ws;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return;   /* close and ping: wslay answers them */
    if (c->state != S_OPEN)
        return;
    if (stopping) {   /* the last echo, after the run: close */
        wslay_event_queue_close(c->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
        return;
    }
    uint64_t t = now_ns();
    if (arg->msg_length != (size_t)msg_size || memcmp(arg->msg, c->msg, msg_size) != 0) {
        c->bad_echo = 1;
        wslay_event_shutdown_read(c->ws);
        wslay_event_shutdown_write(c->ws);
        return;   /* io_cb sees a dead context and reconnects */
    }
    hist_add(t - c->since);
    messages++;
    if (per_client && ++c->echoed >= per_client) {
        wslay_event_queue_close(c->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
        return;
    }
    next_message(c);
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .genmask_callback = genmask_cb,
    .on_msg_recv_callback = on_msg_cb,
};

/* The response head is complete in c->hs[0..end): 101 and the right accept? */
static int handshake_ok(struct client *c, size_t end)
{
    char *head = c->hs, *line, *save = NULL;
    int accept_ok = 0;
    head[end] = '\0';
    if (strncmp(head, "HTTP/1.1 101", 12) != 0 || (head[12] != ' ' && head[12] != '\r'))
        return 0;
    for (line = strtok_r(head, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (strncasecmp(line, "sec-websocket-accept:", 21) != 0)
            continue;
        char *v = line + 21, *e = v + strlen(v);
        while (*v == ' ' || *v == '\t')
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        accept_ok = (size_t)(e - v) == strlen(WS_ACCEPT) && memcmp(v, WS_ACCEPT, e - v) == 0;
    }
    return accept_ok;
}

static void start_client(struct client *c)
{
    c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("ws_load: socket");
        exit(2);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = S_CONNECTING;
    c->since = now_ns();
    c->late = 0;
    c->extra_len = 0;
    c->io_err = 0;
    c->bad_echo = 0;
    if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
        client_fail(c, E_CONNECT);
        return;
    }
    want(c, EV_WRITE);
}

static void handshake_io(struct client *c)
{
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            client_fail(c, E_CONNECT);
            return;
        }
        c->hs_len = (size_t)snprintf(c->hs, sizeof(c->hs),
                                     "GET %s HTTP/1.1\r\n"
                                     "Host: %s\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Key: " WS_KEY "\r\n"
                                     "Sec-WebSocket-Version: 13\r\n"
                                     "\r\n",
                                     path, host_header);
        c->hs_off = 0;
        c->state = S_HS_SEND;
    }
    if (c->state == S_HS_SEND) {
        while (c->hs_off < c->hs_len) {
            ssize_t n = send(c->fd, c->hs + c->hs_off, c->hs_len - c->hs_off, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                want(c, EV_WRITE);
                return;
            }
            if (n < 0) {
                client_fail(c, E_WRITE);
                return;
            }
            c->hs_off += (size_t)n;
        }
        c->state = S_HS_RECV;
        c->hs_len = 0;
        want(c, EV_READ);
        return;
    }
    /* S_HS_RECV */
    for (;;) {
        if (c->hs_len >= sizeof(c->hs) - 1) {
            client_fail(c, E_HANDSHAKE);   /* a head this long is no 101 of ours */
            return;
        }
        ssize_t n = recv(c->fd, c->hs + c->hs_len, sizeof(c->hs) - 1 - c->hs_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            client_fail(c, c->hs_len ? E_HANDSHAKE : E_READ);
            return;
        }
        c->hs_len += (size_t)n;
        c->hs[c->hs_len] = '\0';
        char *end = memmem(c->hs, c->hs_len, "\r\n\r\n", 4);
        if (!end)
            continue;
        size_t head = (size_t)(end - c->hs) + 4;
        /* Bytes past the head are already WebSocket frames: recv_cb hands
         * them to wslay first. handshake_ok only writes inside the head. */
        c->extra = (const uint8_t *)c->hs + head;
        c->extra_len = c->hs_len - head;
        if (!handshake_ok(c, head - 2)) {
            client_fail(c, E_HANDSHAKE);
            return;
        }
        if (wslay_event_context_client_init(&c->ws, &callbacks, c) != 0) {
            fprintf(stderr, "ws_load: out of memory\n");
            exit(2);
        }
        c->state = S_OPEN;
        next_message(c);
        return;
    }
}

static void io_cb(struct ev_loop *l, ev_io *w, int revents)
{
    struct client *c = w->data;
    (void)l;
    if (c->state != S_OPEN) {
        handshake_io(c);
        if (c->state != S_OPEN)
            return;
        /* The first message is queued; frames that came with the 101 were
         * read off the socket already, so no EV_READ would announce them. */
        revents = EV_WRITE | (c->extra_len ? EV_READ : 0);
    }
    c->drained = 0;
    if ((revents & EV_READ) && wslay_event_recv(c->ws) != 0) {
        client_fail(c, E_READ);
        return;
    }
    if (c->state == S_OPEN && wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
        client_fail(c, c->io_err == 1 ? E_READ : E_WRITE);
        return;
    }
    if (c->state != S_OPEN)
        return;
    int r = wslay_event_want_read(c->ws), wr = wslay_event_want_write(c->ws);
    if (!r && !wr) {
        if (per_client && c->echoed >= per_client)
            client_done(c);            /* -n: this one is through */
        else
            client_fail(c, c->bad_echo ? E_BAD_ECHO : c->io_err == 2 ? E_WRITE : E_READ);
        return;
    }
    want(c, (r ? EV_READ : 0) | (wr ? EV_WRITE : 0));
}

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    uint64_t t = now_ns();
    for (int i = 0; i < nclients; i++) {
        struct client *c = &clients[i];
        if (c->state != S_IDLE && c->state != S_DONE && !c->late && t - c->since > timeout_ns) {
            c->late = 1;
            timeouts++;
        }
    }
}

static ev_timer tick, linger;

static void linger_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);   /* some server did not close in time: leave anyway */
}

/* The end of the run (or, with -n, of the time it may take). The counts
 * stop here; then each open client gets its last echo and closes. */
static void stop_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    t_stop = now_ns();
    getrusage(RUSAGE_SELF, &ru_stop);
    stopping = 1;
    ev_timer_stop(l, &tick);
    if (per_client) {
        ev_break(l, EVBREAK_ALL);
        return;
    }
    for (int i = 0; i < nclients; i++) {
        struct client *c = &clients[i];
        ev_timer_stop(l, &c->retry);
        if (c->state == S_OPEN && wslay_event_get_write_enabled(c->ws) && !wslay_event_get_close_sent(c->ws)) {
            c->closing = 1;
            lingering++;
        } else if (c->state != S_DONE && c->state != S_IDLE) {
            client_done(c);   /* mid-handshake: just drop it */
        }
    }
    if (lingering == 0) {
        ev_break(l, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&linger, linger_cb, 1.0, 0.);
    ev_timer_start(l, &linger);
}

/* 10s, 500ms, 1m, 1h, or plain seconds (fractions allowed) -> ns */
static int parse_duration(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double mul = 1e9;
    if (end == s || v < 0)
        return -1;
    if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "us") == 0)
        mul = 1e3;
    else if (strcmp(end, "m") == 0)
        mul = 60e9;
    else if (strcmp(end, "h") == 0)
        mul = 3600e9;
    else if (strcmp(end, "s") != 0 && *end != '\0')
        return -1;
    *out = (uint64_t)(v * mul);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: ws_load [-c CLIENTS] [-d DURATION] [-s SIZE] [-t TIMEOUT] [-n COUNT] "
                    "ws://HOST:PORT/PATH\n");
    exit(2);
}

static void parse_url(const char *u)
{
    char host[256], port[16] = "80";
    const char *p = u, *slash, *colon;
    if (strncmp(p, "ws://", 5) != 0)
        usage();
    p += 5;
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    size_t hl = (size_t)((colon ? colon : slash) - p);
    if (hl == 0 || hl >= sizeof(host))
        usage();
    memcpy(host, p, hl);
    host[hl] = '\0';
    if (colon) {
        size_t pl = (size_t)(slash - colon - 1);
        if (pl == 0 || pl >= sizeof(port))
            usage();
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
    }
    snprintf(path, sizeof(path), "%s", *slash ? slash : "/");
    snprintf(host_header, sizeof(host_header), "%.*s", (int)(slash - p), p);
    snprintf(url, sizeof(url), "%s", u);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(host, port, &hints, &addr);
    if (rc != 0) {
        fprintf(stderr, "ws_load: %s: %s\n", host, gai_strerror(rc));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    int opt;
    char *end;
    while ((opt = getopt(argc, argv, "c:d:s:t:n:h")) != -1) {
        switch (opt) {
        case 'c':
            nclients = (int)strtol(optarg, &end, 10);
            if (*end || nclients < 1 || nclients > 100000)
                usage();
            break;
        case 'd':
            if (parse_duration(optarg, &duration_ns) != 0 || duration_ns == 0)
                usage();
            break;
        case 's':
            msg_size = (int)strtol(optarg, &end, 10);
            if (*end || msg_size < 1 || msg_size > MAX_SIZE)
                usage();
            break;
        case 't':
            if (parse_duration(optarg, &timeout_ns) != 0 || timeout_ns == 0)
                usage();
            break;
        case 'n':
            per_client = strtoull(optarg, &end, 10);
            if (*end || per_client == 0)
                usage();
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1)
        usage();
    parse_url(argv[optind]);
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nclients + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nclients + 64 ? rl.rlim_max : (rlim_t)nclients + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    loop = EV_DEFAULT;
    clients = calloc((size_t)nclients, sizeof(*clients));
    if (!clients) {
        fprintf(stderr, "ws_load: out of memory\n");
        return 2;
    }
    ev_timer stop;
    ev_timer_init(&stop, stop_cb, duration_ns / 1e9, 0.);
    ev_timer_init(&tick, tick_cb, 0.05, 0.05);
    ev_timer_start(loop, &tick);
    if (per_client) {
        /* -n: a check, bounded by the timeout instead of -d */
        ev_timer_set(&stop, (duration_ns < timeout_ns ? timeout_ns : duration_ns) / 1e9, 0.);
    }
    ev_timer_start(loop, &stop);

    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    ev_now_update(loop);
    t_start = now_ns();
    for (int i = 0; i < nclients; i++) {
        struct client *c = &clients[i];
        c->fd = -1;
        memset(c->msg, 'x', sizeof(c->msg));
        ev_init(&c->io, io_cb);
        c->io.data = c;
        ev_init(&c->retry, retry_cb);
        c->retry.data = c;
        start_client(c);
    }
    ev_run(loop, 0);
    if (!stopping) {   /* -n: every client is through */
        t_stop = now_ns();
        getrusage(RUSAGE_SELF, &ru_stop);
        stopping = 1;
    }
    struct rusage ru1 = ru_stop;

    double secs = (double)(t_stop - t_start) / 1e9;
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    char a[32], b[32];
    printf("Running %.2fs test @ %s\n", per_client ? secs : duration_ns / 1e9, url);
    printf("  1 thread and %d connections, %d-byte text messages, echo round trips\n", nclients, msg_size);
    if (hist_n) {
        fmt_ns(a, sizeof(a), hist_sum / hist_n);
        fmt_ns(b, sizeof(b), hist_max);
        printf("  Latency avg %s, max %s\n", a, b);
        printf("  Latency Distribution\n");
        static const double pcts[] = {50, 75, 90, 99};
        for (int i = 0; i < 4; i++) {
            fmt_ns(a, sizeof(a), percentile(pcts[i]));
            printf("     %2.0f%% %9s\n", pcts[i], a);
        }
    }
    printf("  %llu messages in %.2fs\n", (unsigned long long)messages, secs);
    if (errors[E_CONNECT] || errors[E_READ] || errors[E_WRITE] || timeouts)
        printf("  Socket errors: connect %llu, read %llu, write %llu, timeout %llu\n",
               (unsigned long long)errors[E_CONNECT], (unsigned long long)errors[E_READ],
               (unsigned long long)errors[E_WRITE], (unsigned long long)timeouts);
    if (errors[E_HANDSHAKE])
        printf("  Failed handshakes: %llu\n", (unsigned long long)errors[E_HANDSHAKE]);
    if (errors[E_BAD_ECHO])
        printf("  Bad echoes: %llu\n", (unsigned long long)errors[E_BAD_ECHO]);
    printf("Messages/sec: %10.2f\n", secs > 0 ? (double)messages / secs : 0.0);
    printf("Client CPU: %.1f%% of one core\n", secs > 0 ? 100.0 * cpu / secs : 0.0);
    fflush(stdout);
    if (per_client) {
        int ok = messages == per_client * (uint64_t)nclients && !errors[E_HANDSHAKE] && !errors[E_BAD_ECHO] &&
                 !errors[E_CONNECT] && !errors[E_READ] && !errors[E_WRITE];
        return ok ? 0 : 1;
    }
    return messages ? 0 : 1;
}
