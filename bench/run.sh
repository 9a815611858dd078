#!/usr/bin/env bash
# bench/run.sh: benchmark drover against peer servers with wrk (and, for
# WebSocket, bench/ws_load), on loopback.
#
#   bench/run.sh [native|wsgi|flask|python|blocking|asgi|all|PEER...]   (default: native)
#
#   native    drover (build/examples/hello.so) vs nginx (return 200)
#   wsgi      bench/apps/hello_wsgi.py on drover, gunicorn (sync and gthread),
#             uWSGI (--http11-socket, and --http-socket with Connection: close),
#             waitress, bjoern and fastwsgi (../shared/peers); 2 workers each
#             (waitress: 1 process)
#   flask     the same servers on bench/apps/flask_app.py, wrk on GET /json
#   pipelined bench/apps/hello_wsgi.py on drover and fastwsgi, each wrk
#             connection sending 16 requests at once (bench/pipeline16.lua);
#             bjoern is left out: it answers about 12 pipelined requests/s
#   python    wsgi + flask + pipelined in one run
#   blocking  bench/apps/sleep_wsgi.py (sleeps 50 ms) with app threads: drover
#             2 x 8, gunicorn gthread 2 x 8, uWSGI 2 x 8, waitress 16 threads;
#             wrk -c 64; reports timeouts, the ratio to gthread and the
#             fraction of the ideal (app threads / sleep)
#   asgi      asgi_hello + asgi_fastapi + asgi_ws in one run: drover vs
#             uvicorn (uvloop, httptools) vs hypercorn (uvloop), 2 workers each:
#     asgi_hello    bench/apps/asgi_hello.py, a raw ASGI 3 hello, wrk on GET /
#     asgi_fastapi  bench/apps/asgi_fastapi.py, FastAPI, wrk on GET /json
#     asgi_ws       bench/apps/asgi_echo.py, WebSocket echo: bench/ws_load
#                   (built from bench/ws_load.c with libwslay and libev into
#                   the temp dir) with BENCH_WS_CLIENTS clients, each sending
#                   a text message and waiting for its echo, in a loop;
#                   reports messages/s and round-trip p50/p99
#   all       every group
#   PEER...   any peer name from PEER_TABLE below (drover, nginx, drover_wsgi,
#             gunicorn, gunicorn_gthread_flask, ...)
#
# All peers are started side by side, warmed up, then measured in interleaved
# rounds (order reversed every other round); the table shows the median round.
# Every process started here is stopped on exit, including on Ctrl-C.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [10s]    wrk -d per round      BENCH_WARMUP [2s]  warm-up
#   BENCH_CONNECTIONS [50]  wrk -c                BENCH_THREADS [2]  wrk -t
#   BENCH_ROUNDS [3]        measured rounds per peer
#   BENCH_WORKERS [2]       worker processes of each Python peer (not waitress)
#   BENCH_GTHREAD_THREADS [4]  gunicorn gthread --threads (wsgi, flask)
#   BENCH_BLOCKING_THREADS [8]  app threads per worker in blocking (waitress:
#                           BENCH_WORKERS x this, in its one process)
#   BENCH_BLOCKING_CONNECTIONS [64]  wrk -c in blocking
#   BENCH_SLEEP_MS [50]     how long sleep_wsgi sleeps per request
#   BENCH_WS_CLIENTS [50]   WebSocket clients in asgi_ws (ws_load -c)
#   BENCH_WS_MESSAGE_SIZE [16]  bytes per text message in asgi_ws
#   BENCH_WS_LOAD [build into the temp dir]  a prebuilt bench/ws_load; CC [cc]
#   BENCH_SERVER_CPUS [0], BENCH_CLIENT_CPUS [1]  taskset -c lists; these
#                           defaults (and BENCH_THREADS 1) apply with 2+ CPUs
#                           when both are unset; both empty: no pinning
#                           (the client list pins wrk and ws_load alike)
#   BENCH_PEERS_DIR [../shared/peers]  prebuilt bjoern and fastwsgi, runners
#   BENCH_RESULTS_DIR [bench/results]     BENCH_KEEP_WORK=1 keeps the temp dir
#   DROVER [build/drover]   BENCH_HELLO_SO [build/examples/hello.so]
#   BENCH_PYTHON [/usr/bin/python3]  (the interpreter gunicorn, uvicorn etc. run on)
# See bench/README.md.
set -euo pipefail
set +m   # no job control: background servers stay out of our process group

BENCH_DIR=$(cd -- "$(dirname -- "$0")" && pwd)
ROOT=$(cd -- "$BENCH_DIR/.." && pwd)
APPS=$BENCH_DIR/apps

PY=${BENCH_PYTHON:-/usr/bin/python3}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
THREADS=${BENCH_THREADS:-}
ROUNDS=${BENCH_ROUNDS:-3}
WORKERS=${BENCH_WORKERS:-2}
GTHREAD_THREADS=${BENCH_GTHREAD_THREADS:-4}
BLOCKING_THREADS=${BENCH_BLOCKING_THREADS:-8}
BLOCKING_CONNECTIONS=${BENCH_BLOCKING_CONNECTIONS:-64}
SLEEP_MS=${BENCH_SLEEP_MS:-50}
WS_CLIENTS=${BENCH_WS_CLIENTS:-50}
WS_MESSAGE_SIZE=${BENCH_WS_MESSAGE_SIZE:-16}
WS_LOAD=${BENCH_WS_LOAD:-}   # empty: built from bench/ws_load.c when asgi_ws runs
# Servers on CPU 0, wrk (one thread) on CPU 1, as bench/ab.sh does: the
# client no longer takes CPU from the server under test, which keeps
# run-to-run noise low. Only when the caller set neither variable.
if [ -z "${BENCH_SERVER_CPUS+set}${BENCH_CLIENT_CPUS+set}" ] && [ "$(nproc)" -ge 2 ] &&
    command -v taskset >/dev/null; then
    BENCH_SERVER_CPUS=0 BENCH_CLIENT_CPUS=1
    THREADS=${THREADS:-1}
fi
THREADS=${THREADS:-2}
SERVER_CPUS=${BENCH_SERVER_CPUS:-}
CLIENT_CPUS=${BENCH_CLIENT_CPUS:-}
PEERS_DIR=${BENCH_PEERS_DIR:-$ROOT/../shared/peers}   # prebuilt bjoern and fastwsgi
PEERS_DIR=$(cd -- "$PEERS_DIR" 2>/dev/null && pwd || echo "$PEERS_DIR")
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
DROVER=${DROVER:-$ROOT/build/drover}
HELLO_SO=${BENCH_HELLO_SO:-$ROOT/build/examples/hello.so}
WRK=${BENCH_WRK:-wrk}
START_TIMEOUT=${BENCH_START_TIMEOUT:-15}   # seconds for a server to answer
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-10}     # seconds before SIGKILL
EXPECTED_BODY='Hello, World!'

source "$BENCH_DIR/lib.sh"

# The tables below do arithmetic with these: check them first.
positive() {  # positive VALUE NAME: VALUE is an integer > 0, or die
    case $1 in ''|*[!0-9]*|0) die "$2 must be a positive integer" ;; esac
}
positive "$ROUNDS" BENCH_ROUNDS
positive "$WORKERS" BENCH_WORKERS
positive "$THREADS" BENCH_THREADS
positive "$CONNECTIONS" BENCH_CONNECTIONS
positive "$GTHREAD_THREADS" BENCH_GTHREAD_THREADS
positive "$BLOCKING_THREADS" BENCH_BLOCKING_THREADS
positive "$BLOCKING_CONNECTIONS" BENCH_BLOCKING_CONNECTIONS
positive "$SLEEP_MS" BENCH_SLEEP_MS
positive "$WS_CLIENTS" BENCH_WS_CLIENTS
positive "$WS_MESSAGE_SIZE" BENCH_WS_MESSAGE_SIZE
[ "$WS_MESSAGE_SIZE" -le 4096 ] || die "BENCH_WS_MESSAGE_SIZE must be at most 4096"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "BENCH_CONNECTIONS must be >= BENCH_THREADS"
[ "$BLOCKING_CONNECTIONS" -ge "$THREADS" ] || die "BENCH_BLOCKING_CONNECTIONS must be >= BENCH_THREADS"
export BENCH_SLEEP_MS=$SLEEP_MS   # read by bench/apps/sleep_wsgi.py in every server

# Peer registry. One line per peer:
#   name     unique; a command-line argument selects it
#   group    a line of GROUP_TABLE: selects peers together; ratios stay in a group
#   ref      the drover peer its ratios are computed against
#   kind     which peer_KIND_* functions start it (below)
#   app      what it serves: hello.so, or a Python module in bench/apps
#   path     the URL wrk loads (every app also answers GET / with the hello
#            body, which is checked before measuring)
#   threads  app threads of each worker process (waitress: of its one
#            process), given on its command line; - where it has none (nginx);
#            1 for the ASGI servers (one event loop per worker)
PEER_TABLE="
drover                  native    drover           drover_native     hello.so    /      1
nginx                   native    drover           nginx             -           /      -
drover_wsgi             wsgi      drover_wsgi      drover_py         hello_wsgi  /      1
gunicorn                wsgi      drover_wsgi      gunicorn_sync     hello_wsgi  /      1
gunicorn_gthread        wsgi      drover_wsgi      gunicorn_gthread  hello_wsgi  /      $GTHREAD_THREADS
uwsgi                   wsgi      drover_wsgi      uwsgi_http11      hello_wsgi  /      1
uwsgi_close             wsgi      drover_wsgi      uwsgi_close       hello_wsgi  /      1
waitress                wsgi      drover_wsgi      waitress          hello_wsgi  /      4
bjoern                  wsgi      drover_wsgi      bjoern            hello_wsgi  /      1
fastwsgi                wsgi      drover_wsgi      fastwsgi          hello_wsgi  /      1
drover_flask            flask     drover_flask     drover_py         flask_app   /json  1
gunicorn_flask          flask     drover_flask     gunicorn_sync     flask_app   /json  1
gunicorn_gthread_flask  flask     drover_flask     gunicorn_gthread  flask_app   /json  $GTHREAD_THREADS
uwsgi_flask             flask     drover_flask     uwsgi_http11      flask_app   /json  1
uwsgi_close_flask       flask     drover_flask     uwsgi_close       flask_app   /json  1
waitress_flask          flask     drover_flask     waitress          flask_app   /json  4
bjoern_flask            flask     drover_flask     bjoern            flask_app   /json  1
fastwsgi_flask          flask     drover_flask     fastwsgi          flask_app   /json  1
drover_pipelined        pipelined drover_pipelined drover_py         hello_wsgi  /      1
fastwsgi_pipelined      pipelined drover_pipelined fastwsgi          hello_wsgi  /      1
drover_blocking         blocking  drover_blocking  drover_py         sleep_wsgi  /      $BLOCKING_THREADS
gunicorn_blocking       blocking  drover_blocking  gunicorn_gthread  sleep_wsgi  /      $BLOCKING_THREADS
waitress_blocking       blocking  drover_blocking  waitress          sleep_wsgi  /      $((WORKERS * BLOCKING_THREADS))
uwsgi_blocking          blocking  drover_blocking  uwsgi_close       sleep_wsgi  /      $BLOCKING_THREADS
drover_asgi             asgi_hello    drover_asgi     drover_asgi  asgi_hello    /      1
uvicorn                 asgi_hello    drover_asgi     uvicorn      asgi_hello    /      1
hypercorn               asgi_hello    drover_asgi     hypercorn    asgi_hello    /      1
drover_fastapi          asgi_fastapi  drover_fastapi  drover_asgi  asgi_fastapi  /json  1
uvicorn_fastapi         asgi_fastapi  drover_fastapi  uvicorn      asgi_fastapi  /json  1
hypercorn_fastapi       asgi_fastapi  drover_fastapi  hypercorn    asgi_fastapi  /json  1
drover_ws               asgi_ws       drover_ws       drover_asgi  asgi_echo     /ws    1
uvicorn_ws              asgi_ws       drover_ws       uvicorn      asgi_echo     /ws    1
hypercorn_ws            asgi_ws       drover_ws       hypercorn    asgi_echo     /ws    1
"

# Groups, in the order "all" runs them. One line per group:
#   group        the name that selects its peers (bench/run.sh GROUP)
#   connections  wrk -c (ws_load -c) for its peers
#   baseline     the peer every other one is compared with in the "vs" column
#                (requests/s answered in time over the baseline's), or -
#   sleep_ms     how long its app sleeps per request, or -: then the report
#                shows the fraction of the ideal, app threads / sleep
#   goal_vs      the ref peer's "vs" figure that the group's issue asks for, or -
#   goal_ideal   the ref peer's fraction of the ideal asked for, or -
#   client       the load generator: wrk (HTTP requests on the peer's path),
#                wrk16 (the same, 16 pipelined per connection: pipeline16.lua)
#                or ws_load (WebSocket echo on the peer's path)
GROUP_TABLE="
native        $CONNECTIONS           -                  -          -     -     wrk
wsgi          $CONNECTIONS           -                  -          -     -     wrk
flask         $CONNECTIONS           -                  -          -     -     wrk
pipelined     $CONNECTIONS           -                  -          -     -     wrk16
blocking      $BLOCKING_CONNECTIONS  gunicorn_blocking  $SLEEP_MS  1.10  0.95  wrk
asgi_hello    $CONNECTIONS           -                  -          -     -     wrk
asgi_fastapi  $CONNECTIONS           -                  -          -     -     wrk
asgi_ws       $WS_CLIENTS            -                  -          -     -     ws_load
"

peer_field() {  # peer_field NAME COLUMN (2 group, 3 ref, 4 kind, 5 app, 6 path, 7 threads)
    awk -v n="$1" -v c="$2" '$1 == n { print $c }' <<<"$PEER_TABLE"
}
group_field() {  # group_field GROUP COLUMN (2 connections, 3 baseline, 4 sleep_ms, 5 goal_vs, 6 goal_ideal, 7 client)
    awk -v g="$1" -v c="$2" '$1 == g { print $c }' <<<"$GROUP_TABLE"
}
peer_threads() { peer_field "$1" 7; }
peer_client() { group_field "$(peer_field "$1" 2)" 7; }   # wrk or ws_load

# peer_call NAME ACTION: run peer_KIND_ACTION NAME APP if it is defined
# (status 127 when it is not).
peer_call() {
    local kind
    kind=$(peer_field "$1" 4)
    declare -F "peer_${kind}_$2" >/dev/null || return 127
    "peer_${kind}_$2" "$1" "$(peer_field "$1" 5)"
}
peer_has() { declare -F "peer_$(peer_field "$1" 4)_$2" >/dev/null; }

# ---------------------------------------------------------------- arguments
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
[ $# -eq 0 ] && set -- native
MODE=$*
SELECTED=()
select_group() {
    local group
    mapfile -t group < <(awk -v g="$1" '$2 == g { print $1 }' <<<"$PEER_TABLE")
    SELECTED+=("${group[@]}")
}
for arg in "$@"; do
    case $arg in
    -h|--help) usage; exit 0 ;;
    all) mapfile -t all_groups < <(awk 'NF { print $1 }' <<<"$GROUP_TABLE")
         for g in "${all_groups[@]}"; do select_group "$g"; done ;;
    python) select_group wsgi; select_group flask; select_group pipelined ;;
    asgi) select_group asgi_hello; select_group asgi_fastapi; select_group asgi_ws ;;
    *)  arg=${arg//-/_}
        if [ -n "$(group_field "$arg" 1)" ]; then
            select_group "$arg"                           # a group: native, wsgi, ...
        elif [ -n "$(peer_field "$arg" 1)" ]; then
            SELECTED+=("$arg")                            # one peer
        else
            usage >&2; die "unknown mode or peer: $arg"
        fi ;;
    esac
done
# Drop duplicates, keep order.
declare -A seen=()
PEERS=()
for p in "${SELECTED[@]}"; do
    [ -n "${seen[$p]:-}" ] || PEERS+=("$p")
    seen[$p]=1
done

command -v "$WRK" >/dev/null || die "wrk not found (tools/install-deps.sh bench)"
[ -x "$PY" ] || die "$PY not found (set BENCH_PYTHON)"
command -v setsid >/dev/null || die "setsid not found (util-linux)"
HAVE_SS=0; command -v ss >/dev/null && HAVE_SS=1

SERVER_PIN=(); CLIENT_PIN=()
[ -z "$SERVER_CPUS" ] || SERVER_PIN=(taskset -c "$SERVER_CPUS")
[ -z "$CLIENT_CPUS" ] || CLIENT_PIN=(taskset -c "$CLIENT_CPUS")

# ------------------------------------------------------------ process control
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench.XXXXXX")

trap bench_cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
lock_results

# rss NAME: "KB PROCESSES" summed over the peer's session (master + workers).
rss() {
    ps -e -o sid=,rss= | awk -v s="${PID[$1]}" '$1 == s { kb += $2; n++ } END { print kb + 0, n + 0 }'
}

# unaccepted PORT: client address:port of every established connection to
# PORT that no process has accept()ed yet (it waits in the listen queue).
# ss -p reads every process's descriptors, tens of milliseconds of CPU: it
# runs on the client's CPUs, not in the servers' time slices (on theirs it
# put milliseconds on the p99 of whichever peer was measured).
unaccepted() {
    "${CLIENT_PIN[@]}" ss -tnpH state established "( sport = :$1 )" 2>/dev/null | awk '!/users:/ { print $4 }' | sort
}

# ------------------------------------------------------------------- peers
# Each kind defines peer_KIND_start NAME APP (start it with start_bg NAME,
# set PORT[NAME] and setp NAME setup "short description"), and optionally
# peer_KIND_check NAME APP (print why it cannot run, return 1 to skip; runs
# in a subshell, so it must not set variables), peer_KIND_version and
# peer_KIND_logs.

# drover, native hello app, default settings (one worker). Port 0: drover
# picks a free port and logs it.
peer_drover_native_check() {
    [ -x "$DROVER" ] || { echo "$DROVER missing; build it: cmake -S . -B build && cmake --build build -j2"; return 1; }
    [ -f "$HELLO_SO" ] || { echo "$HELLO_SO missing; build it: cmake --build build -j2"; return 1; }
}
peer_drover_native_version() { "$DROVER" --version 2>&1 | head -n 1; }
peer_drover_native_start() {
    start_bg "$1" "$DROVER" --bind 127.0.0.1:0 "$HELLO_SO:hello_app"
    setp "$1" setup "1 worker (default)"
    setp "$1" app_threads 1
    PORT[$1]=$(wait_log_port "$1") || return 1
}

# nginx (Debian nginx-light), private prefix, non-daemon, one worker.
# (Checks run in a subshell: resolve paths here, not in peer_*_check.)
NGINX_BIN=${BENCH_NGINX:-$(command -v nginx || true)}
[ -n "$NGINX_BIN" ] || { [ -x /usr/sbin/nginx ] && NGINX_BIN=/usr/sbin/nginx; } || true
peer_nginx_check() {
    [ -n "$NGINX_BIN" ] || { echo "nginx not found (tools/install-deps.sh bench)"; return 1; }
}
peer_nginx_version() { "$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'; }
peer_nginx_start() {
    local prefix=$WORK/$1 port
    port=$(free_port)
    mkdir -p "$prefix/logs" "$prefix/tmp"
    sed -e "s|@PORT@|$port|g" -e "s|@PREFIX@|$prefix|g" \
        "$BENCH_DIR/nginx.conf.in" >"$prefix/nginx.conf"
    start_bg "$1" "$NGINX_BIN" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"
    setp "$1" setup "1 worker process"
    PORT[$1]=$port
}
peer_nginx_logs() { cat "$WORK/$1/logs/error.log" 2>/dev/null || true; }

# python_check APP: the Python app can be imported by $PY (Flask installed).
python_check() {
    PYTHONPATH="$APPS" "$PY" -c "import $1" 2>/dev/null || {
        echo "$PY cannot import $1 (Flask: python3-flask)"; return 1; }
}

# drover serving a Python app through its embedded CPython: master + WORKERS
# workers x the peer's threads, preload (the default), keep-alive (the
# default, 2 s idle). --threads is only given when it is not 1 (the default),
# so that the wsgi and flask rows also run on builds from before --threads.
peer_drover_py_check() {
    local out
    [ -x "$DROVER" ] || { echo "$DROVER missing; build it: cmake -S . -B build && cmake --build build -j2"; return 1; }
    if ! out=$(PYTHONPATH="$APPS" "$DROVER" --check-config --bind 127.0.0.1:0 "$2:app" 2>&1); then
        case $out in
        *"not supported"*) echo "drover's Python (WSGI) support is not built ($out)" ;;
        *) echo "drover --check-config $2:app failed: $out" ;;
        esac
        return 1
    fi
}
peer_drover_py_version() { peer_drover_native_version; }
peer_drover_py_start() {
    local threads
    threads=$(peer_threads "$1")
    if [ "$threads" = 1 ]; then
        start_bg "$1" env PYTHONPATH="$APPS" "$DROVER" --workers "$WORKERS" --bind 127.0.0.1:0 "$2:app"
        setp "$1" setup "$WORKERS workers, preload"
    else
        start_bg "$1" env PYTHONPATH="$APPS" "$DROVER" --workers "$WORKERS" --threads "$threads" \
            --bind 127.0.0.1:0 "$2:app"
        setp "$1" setup "$WORKERS workers x $threads threads, preload"
    fi
    setp "$1" app_threads $((WORKERS * threads))
    PORT[$1]=$(wait_log_port "$1") || return 1
}

# gunicorn sync: master + WORKERS sync workers. The sync worker closes the
# connection after each response, so wrk reconnects for every request.
peer_gunicorn_sync_check() {
    "$PY" -c 'import gunicorn' 2>/dev/null || { echo "gunicorn not importable by $PY"; return 1; }
    python_check "$2"
}
peer_gunicorn_sync_version() { "$PY" -m gunicorn --version 2>&1 | head -n 1; }
peer_gunicorn_sync_start() {
    PORT[$1]=$(free_port)
    start_bg "$1" "$PY" -m gunicorn --workers "$WORKERS" --bind "127.0.0.1:${PORT[$1]}" \
        --chdir "$APPS" --log-level warning "$2:app"
    setp "$1" setup "$WORKERS sync workers"
    setp "$1" app_threads "$WORKERS"
}

# gunicorn gthread: master + WORKERS workers x the peer's threads
# (BENCH_GTHREAD_THREADS, or BENCH_BLOCKING_THREADS in blocking), keep-alive
# (its default, 2 s).
peer_gunicorn_gthread_check() { peer_gunicorn_sync_check "$@"; }
peer_gunicorn_gthread_version() { peer_gunicorn_sync_version; }
peer_gunicorn_gthread_start() {
    local threads
    threads=$(peer_threads "$1")
    PORT[$1]=$(free_port)
    start_bg "$1" "$PY" -m gunicorn --workers "$WORKERS" --worker-class gthread \
        --threads "$threads" --bind "127.0.0.1:${PORT[$1]}" \
        --chdir "$APPS" --log-level warning "$2:app"
    setp "$1" setup "$WORKERS gthread workers x $threads threads"
    setp "$1" app_threads $((WORKERS * threads))
}

# uWSGI: master + WORKERS processes x the peer's threads (1, or
# BENCH_BLOCKING_THREADS in blocking), its native HTTP parser (no router
# process). --die-on-term: SIGTERM stops it instead of reloading.
#   uwsgi_http11  --http11-socket: keep-alive. A worker keeps reading from its
#                 connection until the client goes idle (socket-timeout, 4 s),
#                 so under wrk each worker serves ONE connection for the whole
#                 run and the others wait in the listen queue: see "starved"
#                 in the report. Their requests never complete, so wrk leaves
#                 them out of requests/s and latency.
#   uwsgi_close   --http-socket: closes the connection after each response
#                 (like gunicorn sync); "Connection: close" is added so that
#                 wrk does not count the closes as read errors. With threads,
#                 each thread accepts and serves one connection at a time;
#                 --http11-socket would starve all but WORKERS x threads of
#                 the connections the same way, so blocking uses this one.
uwsgi_check() {
    command -v uwsgi >/dev/null || { echo "uwsgi not found (tools/install-deps.sh bench)"; return 1; }
    [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || { echo "uwsgi python3 plugin missing (uwsgi-plugin-python3)"; return 1; }
    python_check "$1"
}
uwsgi_version() { echo "uWSGI $(uwsgi --version 2>&1 | head -n 1)"; }
uwsgi_start() {  # uwsgi_start NAME APP SOCKET-OPTION [EXTRA...]
    local name=$1 app=$2 opt=$3 threads
    shift 3
    threads=$(peer_threads "$name")
    PORT[$name]=$(free_port)
    start_bg "$name" uwsgi --plugin python3 --master --processes "$WORKERS" --threads "$threads" \
        "$opt" "127.0.0.1:${PORT[$name]}" "$@" \
        --chdir "$APPS" --wsgi-file "$app.py" --callable app --need-app \
        --die-on-term --disable-logging
    setp "$name" app_threads $((WORKERS * threads))
}
uwsgi_setup() {  # uwsgi_setup NAME SOCKET-OPTION: the report's setup column
    local threads
    threads=$(peer_threads "$1")
    if [ "$threads" = 1 ]; then
        setp "$1" setup "$WORKERS processes, $2"
    else
        setp "$1" setup "$WORKERS processes x $threads threads, $2"
    fi
}
peer_uwsgi_http11_check() { uwsgi_check "$2"; }
peer_uwsgi_http11_version() { uwsgi_version; }
peer_uwsgi_http11_start() {
    uwsgi_start "$1" "$2" --http11-socket
    uwsgi_setup "$1" --http11-socket
}
peer_uwsgi_close_check() { uwsgi_check "$2"; }
peer_uwsgi_close_version() { uwsgi_version; }
peer_uwsgi_close_start() {
    uwsgi_start "$1" "$2" --http-socket --add-header "Connection: close"
    uwsgi_setup "$1" --http-socket
}

# waitress: ONE process (it has no worker processes) x the peer's threads
# (4, its default; BENCH_WORKERS x BENCH_BLOCKING_THREADS in blocking),
# keep-alive.
peer_waitress_check() {
    "$PY" -c 'import waitress' 2>/dev/null || { echo "waitress not importable by $PY (python3-waitress)"; return 1; }
    python_check "$2"
}
peer_waitress_version() {
    "$PY" -c 'from importlib.metadata import version; print("waitress", version("waitress"))' 2>/dev/null || echo waitress
}
peer_waitress_start() {
    local threads
    threads=$(peer_threads "$1")
    PORT[$1]=$(free_port)
    start_bg "$1" env PYTHONPATH="$APPS" "$PY" -m waitress \
        --listen="127.0.0.1:${PORT[$1]}" --threads="$threads" "$2:app"
    setp "$1" setup "1 process, $threads threads"
    setp "$1" app_threads "$threads"
}

# bjoern and fastwsgi: prebuilt for Debian 12's python3.11 in $PEERS_DIR
# (../shared/peers), started through its runners, which take one command
# line and stop every process of theirs on SIGTERM. Same app module, same
# WORKERS; everything else at the server's defaults (what their authors
# recommend). See bench/README.md for their quirks.
#   bjoern    W processes (the runner's parent and W-1 forks) accept on one
#             shared socket; libev; no keep-alive timeout.
#   fastwsgi  a supervisor and W workers, each with its own SO_REUSEPORT
#             socket on the port; libuv; Nagle left on (tcp_nodelay 0).
# peers_check MODULE LIBRARY PACKAGE APP: $PY can import the prebuilt MODULE
# (the import error names LIBRARY when that is missing) and the app.
peers_check() {
    local out
    [ -f "$PEERS_DIR/run_$1.py" ] || { echo "$PEERS_DIR/run_$1.py missing (prebuilt $1, see bench/README.md)"; return 1; }
    if ! out=$(PYTHONPATH="$PEERS_DIR/$1-build" "$PY" -c "import $1" 2>&1); then
        case $out in
        *"$2"*) echo "$2 missing (Debian package $3: tools/install-deps.sh bench)" ;;
        *) echo "$PY cannot import the prebuilt $1 (built for python3.11): $(tail -n 1 <<<"$out")" ;;
        esac
        return 1
    fi
    python_check "$4"
}
peers_version() {  # peers_version MODULE EXPRESSION
    PYTHONPATH="$PEERS_DIR/$1-build" "$PY" -c "import $1; print('$1', $2)" 2>/dev/null || echo "$1"
}
peers_start() {  # peers_start NAME MODULE APP
    PORT[$1]=$(free_port)
    start_bg "$1" "$PY" "$PEERS_DIR/run_$2.py" --app-dir "$APPS" --workers "$WORKERS" \
        "$3:app" 127.0.0.1 "${PORT[$1]}"
    setp "$1" app_threads "$WORKERS"
}
peer_bjoern_check() { peers_check bjoern libev.so.4 libev4 "$2"; }
peer_bjoern_version() { peers_version bjoern "'.'.join(map(str, bjoern._bjoern.version))"; }
peer_bjoern_start() {
    peers_start "$1" bjoern "$2"
    setp "$1" setup "$WORKERS processes, one shared socket"
}
peer_fastwsgi_check() { peers_check fastwsgi libuv.so.1 libuv1 "$2"; }
peer_fastwsgi_version() { peers_version fastwsgi fastwsgi.__version__; }
peer_fastwsgi_start() {
    peers_start "$1" fastwsgi "$2"
    setp "$1" setup "$WORKERS workers, SO_REUSEPORT each"
}

# ASGI peers (groups asgi_hello, asgi_fastapi, asgi_ws): W worker processes,
# one event loop each, the same app module from bench/apps on PYTHONPATH.
# asgi_check APP: $PY can import the app (FastAPI for asgi_fastapi).
asgi_check() {
    PYTHONPATH="$APPS" "$PY" -c "import $1" 2>/dev/null || {
        echo "$PY cannot import $1 (FastAPI: python3-fastapi)"; return 1; }
}

# drover serving an ASGI app: master + W workers, --interface asgi (drover
# also detects it; given so that a build without ASGI support fails at once
# instead of serving the app as WSGI). Only the binary is checked first: a
# drover that cannot serve ASGI fails to start, and the report says why
# (its last log line) as a FAILED row, while the other peers run.
peer_drover_asgi_check() {
    [ -x "$DROVER" ] || { echo "$DROVER missing; build it: cmake -S . -B build && cmake --build build -j2"; return 1; }
    asgi_check "$2"
}
peer_drover_asgi_version() { peer_drover_native_version; }
peer_drover_asgi_start() {
    start_bg "$1" env PYTHONPATH="$APPS" "$DROVER" --workers "$WORKERS" --bind 127.0.0.1:0 \
        --interface asgi "$2:app"
    setp "$1" setup "$WORKERS workers, preload"
    setp "$1" app_threads "$WORKERS"
    PORT[$1]=$(wait_log_port "$1") || return 1
}

# uvicorn (Debian 0.17.6) at its fastest: uvloop event loop, httptools HTTP
# parser, the websockets library for WebSocket (what --ws auto picks when it
# is installed; said so that a missing one fails instead of falling back to
# wsproto), no access log, W workers under its multiprocess supervisor.
# --log-level warning: no per-connection "WebSocket ... [accepted]" lines.
peer_uvicorn_check() {
    "$PY" -c 'import uvicorn, uvloop, httptools, websockets' 2>/dev/null || {
        echo "uvicorn, uvloop, httptools or websockets not importable by $PY (uvicorn python3-uvloop python3-httptools python3-websockets)"
        return 1; }
    asgi_check "$2"
}
peer_uvicorn_version() {
    "$PY" -c 'from importlib.metadata import version as v
print("uvicorn %s (uvloop %s, httptools %s, websockets %s)" % tuple(v(m) for m in ("uvicorn", "uvloop", "httptools", "websockets")))' 2>/dev/null || echo uvicorn
}
peer_uvicorn_start() {
    PORT[$1]=$(free_port)
    start_bg "$1" env PYTHONPATH="$APPS" "$PY" -m uvicorn --host 127.0.0.1 --port "${PORT[$1]}" \
        --workers "$WORKERS" --loop uvloop --http httptools --ws websockets \
        --no-access-log --log-level warning "$2:app"
    if [ "$(peer_client "$1")" = ws_load ]; then
        setp "$1" setup "$WORKERS workers, uvloop + websockets"
    else
        setp "$1" setup "$WORKERS workers, uvloop + httptools"
    fi
    setp "$1" app_threads "$WORKERS"
}

# hypercorn (Debian 0.13): W workers with the uvloop worker class (-k uvloop,
# its fastest; the others are asyncio and trio); no access log (its
# default). HTTP/1.1 is h11 and WebSocket wsproto, both pure Python: it has
# no faster parser to choose.
peer_hypercorn_check() {
    "$PY" -c 'import hypercorn, uvloop' 2>/dev/null || {
        echo "hypercorn or uvloop not importable by $PY (python3-hypercorn python3-uvloop)"; return 1; }
    asgi_check "$2"
}
peer_hypercorn_version() {
    "$PY" -c 'from importlib.metadata import version as v
print("hypercorn %s (uvloop %s, h11 %s, wsproto %s)" % tuple(v(m) for m in ("hypercorn", "uvloop", "h11", "wsproto")))' 2>/dev/null || echo hypercorn
}
peer_hypercorn_start() {
    PORT[$1]=$(free_port)
    start_bg "$1" env PYTHONPATH="$APPS" "$PY" -m hypercorn --bind "127.0.0.1:${PORT[$1]}" \
        --workers "$WORKERS" --worker-class uvloop "$2:app"
    if [ "$(peer_client "$1")" = ws_load ]; then
        setp "$1" setup "$WORKERS workers, uvloop + wsproto"
    else
        setp "$1" setup "$WORKERS workers, uvloop + h11"
    fi
    setp "$1" app_threads "$WORKERS"
}

# -------------------------------------------------------------------- run
dur_ms() {  # milliseconds in a wrk duration (500ms, 10s, 1m, 30)
    case $1 in
    *ms) echo "${1%ms}" ;;
    *s) echo $((${1%s} * 1000)) ;;
    *m) echo $((${1%m} * 60000)) ;;
    *h) echo $((${1%h} * 3600000)) ;;
    *) echo $(($1 * 1000)) ;;
    esac
}
msleep() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }

setm mode "$MODE"
setm peers "${PEERS[*]}"
setm duration "$DURATION"
setm warmup "$WARMUP"
setm connections "$CONNECTIONS"
setm threads "$THREADS"
setm rounds "$ROUNDS"
setm workers "$WORKERS"
setm server_cpus "$SERVER_CPUS"
setm client_cpus "$CLIENT_CPUS"
setm wrk_version "$("$WRK" -v 2>&1 | head -n 1 | sed 's/ Copyright.*//')"
setm nproc "$(nproc)"
setm kernel "$(uname -sr)"
setm cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
setm git_commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
setm git_dirty "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo yes || echo no)"
setm started_at "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)
setm loadavg_before "$LOADAVG"
setm wrk_timeout_ms 2000   # wrk's default --timeout, which we keep

# The selected groups, in order, with their facts for the report; CONN_DESC
# says which wrk -c each wrk group gets ("50", or "50 (wsgi), 64 (blocking)").
GROUPS_RUN=()
for name in "${PEERS[@]}"; do
    g=$(peer_field "$name" 2)
    case " ${GROUPS_RUN[*]} " in *" $g "*) ;; *) GROUPS_RUN+=("$g") ;; esac
done
CONN_DESC=
for g in "${GROUPS_RUN[@]}"; do
    setg "$g" connections "$(group_field "$g" 2)"
    setg "$g" client "$(group_field "$g" 7)"
    [ "$(group_field "$g" 7)" != ws_load ] || setg "$g" message_size "$WS_MESSAGE_SIZE"
    for key in 3:baseline 4:sleep_ms 5:goal_vs 6:goal_ideal; do
        v=$(group_field "$g" "${key%%:*}")
        [ "$v" = - ] || setg "$g" "${key#*:}" "$v"
    done
    [ "$(group_field "$g" 7)" != wrk ] || CONN_DESC+="${CONN_DESC:+, }$(group_field "$g" 2) ($g)"
done
case $CONN_DESC in *", "*) ;; *) CONN_DESC=${CONN_DESC% (*} ;; esac   # one group: just "50"
setm groups "${GROUPS_RUN[*]}"

say "mode: $MODE; peers: ${PEERS[*]}"
case ${LOADAVG%% *} in 0.[0-4]*|"") ;;
*) say "warning: load average is $LOADAVG before starting; other work (or a run that just ended) is using the CPUs; expect noise" ;;
esac
if [ -n "$SERVER_CPUS$CLIENT_CPUS" ]; then
    cpus="servers on CPUs ${SERVER_CPUS:-any}, clients on CPUs ${CLIENT_CPUS:-any} (of $(nproc))"
else
    cpus="$(nproc) CPUs shared by client and servers"
fi
if [ -n "$CONN_DESC" ]; then
    say "wrk --latency -t $THREADS -c $CONN_DESC -d $DURATION, $ROUNDS round(s) each, warm-up $WARMUP; $cpus"
else
    say "-d $DURATION, $ROUNDS round(s) each, warm-up $WARMUP; $cpus"
fi

# bench/ws_load (the WebSocket client of asgi_ws): built into the temp dir
# when a selected group uses it, unless BENCH_WS_LOAD names a built one.
# If it cannot be had, those groups' peers are skipped with the reason.
WS_LOAD_ERR=
need_ws_load=0
for name in "${PEERS[@]}"; do
    [ "$(peer_client "$name")" != ws_load ] || need_ws_load=1
done
if [ "$need_ws_load" = 1 ]; then
    if [ -n "$WS_LOAD" ]; then
        [ -x "$WS_LOAD" ] || WS_LOAD_ERR="BENCH_WS_LOAD=$WS_LOAD is not an executable"
    else
        WS_LOAD=$WORK/ws_load
        if ! "${CC:-cc}" -O2 -Wall -o "$WS_LOAD" "$BENCH_DIR/ws_load.c" -lwslay -lev \
            >"$WORK/ws_load-build.log" 2>&1; then
            sed 's/^/    /' "$WORK/ws_load-build.log" >&2
            WS_LOAD_ERR="bench/ws_load.c did not build (it needs ${CC:-cc}, libwslay-dev and libev-dev: tools/install-deps.sh bench)"
        fi
    fi
    if [ -n "$WS_LOAD_ERR" ]; then
        say "$WS_LOAD_ERR"
    else
        setm ws_load "$WS_LOAD"
        setm ws_load_libs "libwslay $(dpkg-query -W -f '${Version}' libwslay1 2>/dev/null || echo '?'), libev $(dpkg-query -W -f '${Version}' libev4 2>/dev/null || echo '?')"
        say "ws_load -c $WS_CLIENTS -d $DURATION, $WS_MESSAGE_SIZE-byte text messages, echo round trips ($WS_LOAD)"
    fi
fi

# ws_url NAME: the WebSocket URL of a peer.
ws_url() { echo "ws://127.0.0.1:${PORT[$1]}$(peer_field "$1" 6)"; }

# client_check NAME: a ws_load peer must complete the handshake and echo
# (one client, 3 messages); prints why not. Other peers pass.
client_check() {
    local out
    [ "$(peer_client "$1")" = ws_load ] || return 0
    if ! out=$("$WS_LOAD" -c 1 -n 3 -d 5s "$(ws_url "$1")" 2>&1); then
        echo "the WebSocket echo check (ws_load -c 1 -n 3 $(ws_url "$1")) failed:" \
            "$(grep -E 'messages in|errors|handshakes|echoes|ws_load:' <<<"$out" | tr -s ' \n' ' ')"
        return 1
    fi
}

# start_failure NAME WHAT: why a peer did not come up, for the report. A
# server that exited says so with the last line of its log (e.g. an
# option its build does not know).
start_failure() {
    local last
    if [ -n "${PID[$1]:-}" ] && ! alive "${PID[$1]}"; then
        last=$(sed '/^[[:space:]]*$/d' "$WORK/$1.log" 2>/dev/null | tail -n 1 | cut -c 1-240)
        echo "exited during start-up${last:+: $last}"
    else
        echo "$2"
    fi
}

RUNNING=()
FAILED=0
for name in "${PEERS[@]}"; do
    setp "$name" group "$(peer_field "$name" 2)"
    setp "$name" ref "$(peer_field "$name" 3)"
    setp "$name" app "$(peer_field "$name" 5)"
    setp "$name" path "$(peer_field "$name" 6)"
    setp "$name" connections "$(group_field "$(peer_field "$name" 2)" 2)"
    if [ "$(peer_client "$name")" = ws_load ] && [ -n "$WS_LOAD_ERR" ]; then
        say "skipping $name: $WS_LOAD_ERR"
        setp "$name" status skipped
        setp "$name" note "$WS_LOAD_ERR"
        continue
    fi
    if peer_has "$name" check; then
        if ! why=$(peer_call "$name" check 2>&1); then
            say "skipping $name: $why"
            setp "$name" status skipped
            setp "$name" note "$why"
            continue
        fi
    fi
    setp "$name" version "$(peer_call "$name" version 2>/dev/null || true)"
    path=$(peer_field "$name" 6)
    why=
    if ! peer_call "$name" start; then
        why=$(start_failure "$name" "did not start")
    elif ! wait_ready "$name"; then
        why=$(start_failure "$name" "did not answer GET / with '$EXPECTED_BODY'")
    elif ! fetch "http://127.0.0.1:${PORT[$name]}$path" >/dev/null; then
        why=$(start_failure "$name" "did not answer GET $path with 2xx")
    elif ! why=$(client_check "$name"); then
        why=$(start_failure "$name" "$why")
    else
        why=
    fi
    if [ -z "$why" ]; then
        if [ "$(peer_client "$name")" = ws_load ]; then
            say "$name: pid ${PID[$name]}, $(ws_url "$name")"
            setp "$name" keepalive "-"   # one WebSocket connection per client, kept
        else
            say "$name: pid ${PID[$name]}, http://127.0.0.1:${PORT[$name]}$path"
            setp "$name" keepalive "$(keepalive "${PORT[$name]}" "$path")"
        fi
        setp "$name" status ok
        setp "$name" port "${PORT[$name]}"
        setp "$name" rss_idle "$(rss "$name")"
        RUNNING+=("$name")
    else
        say "$name failed to start ($why); its log:"
        sed 's/^/    /' "$WORK/$name.log" >&2 2>/dev/null || true
        peer_call "$name" logs 2>/dev/null | sed 's/^/    /' >&2 || true
        setp "$name" status failed
        setp "$name" note "$why"
        FAILED=1
        stop_peer "$name"
    fi
done

if [ ${#RUNNING[@]} -gt 0 ]; then
    est=$(( ${#RUNNING[@]} * (ROUNDS * $(dur_ms "$DURATION") + $(dur_ms "$WARMUP")) / 1000 ))
    say "measuring ${RUNNING[*]}: about ${est}s"
fi

# run_load NAME DURATION OUTFILE [STARVED-FILE]: the peer's load generator,
# pinned to the client CPUs: wrk, or ws_load for a WebSocket group (its
# output has the wrk lines report.py reads). It runs in the background and
# we `wait` for it, so that a signal to this script runs the trap at once
# (WRK_PID, which bench_cleanup stops, is whichever client runs).
# With STARVED-FILE, the connections that sit unaccepted in the listen queue
# at both 30 % and 70 % of the run (the same client ports: never served in
# between) are counted into it.
WRK_PID=
run_load() {
    local rc=0 ms a b conns
    conns=$(group_field "$(peer_field "$1" 2)" 2)
    if [ "$(peer_client "$1")" = ws_load ]; then
        ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "$WS_LOAD" -c "$conns" -d "$2" -s "$WS_MESSAGE_SIZE" \
            "$(ws_url "$1")" </dev/null >"$3" 2>&1 9>&- &
    else
        local script=()
        [ "$(peer_client "$1")" != wrk16 ] || script=(-s "$BENCH_DIR/pipeline16.lua")
        ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "$WRK" --latency -t "$THREADS" -c "$conns" -d "$2" \
            ${script[@]+"${script[@]}"} \
            "http://127.0.0.1:${PORT[$1]}$(peer_field "$1" 6)" </dev/null >"$3" 2>&1 9>&- &
    fi
    WRK_PID=$!
    if [ -n "${4:-}" ] && [ "$HAVE_SS" = 1 ]; then
        ms=$(dur_ms "$2")
        msleep $((ms * 3 / 10))
        a=$(unaccepted "${PORT[$1]}")
        msleep $((ms * 4 / 10))
        b=$(unaccepted "${PORT[$1]}")
        comm -12 <(printf '%s\n' "$a" | sed '/^$/d') <(printf '%s\n' "$b" | sed '/^$/d') | wc -l >"$4"
    fi
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    return "$rc"
}

mkdir -p "$WORK/raw"
for name in ${RUNNING[@]+"${RUNNING[@]}"}; do
    run_load "$name" "$WARMUP" "$WORK/raw/$name-warmup.txt" || say "$name: warm-up $(peer_client "$name") failed"
done
for ((r = 1; r <= ROUNDS; r++)); do
    order=(${RUNNING[@]+"${RUNNING[@]}"})
    if ((r % 2 == 0)); then   # ABBA ordering: reverse every other round
        order=()
        for ((i = ${#RUNNING[@]} - 1; i >= 0; i--)); do order+=("${RUNNING[i]}"); done
    fi
    for name in ${order[@]+"${order[@]}"}; do
        out=$WORK/raw/$name-round$r.txt
        if ! alive "${PID[$name]}"; then
            say "$name died before round $r"
            echo "server died" >"$out"
            continue
        fi
        run_load "$name" "$DURATION" "$out" "$WORK/raw/$name-round$r.starved" ||
            say "$name: $(peer_client "$name") exited $? in round $r"
        errs=$(grep -E 'Socket errors|Non-2xx|Failed handshakes|Bad echoes' "$out" |
            sed 's/^[[:space:]]*//' | paste -sd ';' - | sed 's/;/; /g' || true)
        starved=$(cat "$WORK/raw/$name-round$r.starved" 2>/dev/null || true)
        if [ "$(peer_client "$name")" = ws_load ]; then
            rate="$(sed -n 's/^Messages\/sec:[[:space:]]*//p' "$out") msg/s"
            errs+="${errs:+; }ws_load CPU $(sed -n 's/^Client CPU: \([0-9.]*%\).*/\1/p' "$out")"
        else
            rate="$(sed -n 's/^Requests\/sec:[[:space:]]*//p' "$out") req/s"
        fi
        say "round $r/$ROUNDS $name: $rate, p99 $(awk '$1 == "99%" { print $2 }' "$out")${errs:+; $errs}${starved:+; starved $starved}"
    done
done
for name in ${RUNNING[@]+"${RUNNING[@]}"}; do
    if alive "${PID[$name]}"; then
        setp "$name" rss_after "$(rss "$name")"
    else
        setp "$name" status failed
        setp "$name" note "server exited during the run"
        FAILED=1
    fi
done
setm finished_at "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# Stop the servers before reporting, then keep the raw wrk output.
stop_all
for name in ${STARTED[@]+"${STARTED[@]}"}; do cp "$WORK/$name.log" "$WORK/raw/$name.log" 2>/dev/null || true; done

mkdir -p "$RESULTS_DIR"
rm -rf "$RESULTS_DIR/raw"
cp -r "$WORK/raw" "$RESULTS_DIR/raw"
"$PY" "$BENCH_DIR/report.py" "$WORK" "$RESULTS_DIR" || FAILED=1
exit "$FAILED"
