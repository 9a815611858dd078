#!/usr/bin/env bash
# bench/run.sh: benchmark drover against peer servers with wrk, on loopback.
#
#   bench/run.sh [native|wsgi|all|PEER...]       (default: native)
#
#   native  drover (build/examples/hello.so) vs nginx (return 200)
#   wsgi    drover_wsgi (skipped, saying why, if drover lacks Python support),
#           gunicorn, uwsgi, waitress, all on bench/apps/hello_wsgi.py
#   all     both groups
#   PEER... any of: drover nginx drover_wsgi gunicorn uwsgi waitress
#
# All peers are started side by side, warmed up, then measured in interleaved
# rounds (order reversed every other round); the table shows the median round.
# Every process started here is stopped on exit, including on Ctrl-C.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [10s]    wrk -d per round      BENCH_WARMUP [2s]  warm-up
#   BENCH_CONNECTIONS [50]  wrk -c                BENCH_THREADS [2]  wrk -t
#   BENCH_ROUNDS [3]        measured rounds per peer
#   BENCH_SERVER_CPUS, BENCH_CLIENT_CPUS  taskset -c lists (unset: no pinning)
#   BENCH_RESULTS_DIR [bench/results]     BENCH_KEEP_WORK=1 keeps the temp dir
#   DROVER [build/drover]   BENCH_HELLO_SO [build/examples/hello.so]
#   BENCH_PYTHON [/usr/bin/python3]  (the interpreter gunicorn etc. run on)
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
THREADS=${BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-3}
SERVER_CPUS=${BENCH_SERVER_CPUS:-}
CLIENT_CPUS=${BENCH_CLIENT_CPUS:-}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
DROVER=${DROVER:-$ROOT/build/drover}
HELLO_SO=${BENCH_HELLO_SO:-$ROOT/build/examples/hello.so}
WRK=${BENCH_WRK:-wrk}
START_TIMEOUT=${BENCH_START_TIMEOUT:-15}   # seconds for a server to answer
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-10}     # seconds before SIGKILL
EXPECTED_BODY='Hello, World!'

# Peer registry: name, group, reference peer its ratios are computed against.
# To add a peer: add a line here and define peer_NAME_check (optional: print
# why it cannot run and return 1 to skip it), peer_NAME_start (start it with
# start_bg, set PORT[NAME]), peer_NAME_version (optional) and peer_NAME_stop
# (optional; the default stops its whole session with SIGTERM, then SIGKILL).
PEER_TABLE="
drover       native  drover
nginx        native  drover
drover_wsgi  wsgi    drover_wsgi
gunicorn     wsgi    drover_wsgi
uwsgi        wsgi    drover_wsgi
waitress     wsgi    drover_wsgi
"

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

peer_field() {  # peer_field NAME COLUMN(2=group,3=ref)
    awk -v n="$1" -v c="$2" '$1 == n { print $c }' <<<"$PEER_TABLE"
}

# ---------------------------------------------------------------- arguments
usage() { sed -n '2,25s/^# \{0,1\}//p' "$0"; }
[ $# -eq 0 ] && set -- native
MODE=$*
SELECTED=()
for arg in "$@"; do
    case $arg in
    -h|--help) usage; exit 0 ;;
    all) mapfile -t group < <(awk 'NF { print $1 }' <<<"$PEER_TABLE"); SELECTED+=("${group[@]}") ;;
    *)  arg=${arg//-/_}
        mapfile -t group < <(awk -v g="$arg" '$2 == g { print $1 }' <<<"$PEER_TABLE")
        if [ ${#group[@]} -gt 0 ]; then
            SELECTED+=("${group[@]}")                     # a group: native, wsgi
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

case $ROUNDS in ''|*[!0-9]*|0) die "BENCH_ROUNDS must be a positive integer" ;; esac
case $THREADS$CONNECTIONS in *[!0-9]*) die "BENCH_THREADS/BENCH_CONNECTIONS must be integers" ;; esac
[ "$CONNECTIONS" -ge "$THREADS" ] || die "BENCH_CONNECTIONS must be >= BENCH_THREADS"
command -v "$WRK" >/dev/null || die "wrk not found (tools/install-deps.sh bench)"
[ -x "$PY" ] || die "$PY not found (set BENCH_PYTHON)"
command -v setsid >/dev/null || die "setsid not found (util-linux)"
HAVE_CURL=0; command -v curl >/dev/null && HAVE_CURL=1

SERVER_PIN=(); CLIENT_PIN=()
[ -z "$SERVER_CPUS" ] || SERVER_PIN=(taskset -c "$SERVER_CPUS")
[ -z "$CLIENT_CPUS" ] || CLIENT_PIN=(taskset -c "$CLIENT_CPUS")

# ------------------------------------------------------------ process control
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench.XXXXXX")
declare -A PID=() PORT=()
STARTED=()

setp() {  # setp NAME KEY VALUE: record one fact about a peer for report.py
    mkdir -p "$WORK/peers/$1"
    printf '%s' "$3" >"$WORK/peers/$1/$2"
}
setm() { mkdir -p "$WORK/meta"; printf '%s' "$2" >"$WORK/meta/$1"; }

# start_bg NAME CMD...: run CMD in a new session (so that its workers can be
# signalled as a group), output to $WORK/NAME.log.
start_bg() {
    local name=$1; shift
    setsid ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$@" </dev/null >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    STARTED+=("$name")
    setp "$name" cmd "$*"
}

alive() { kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null; }

# stop_session PID: SIGTERM the session's process group, SIGKILL after
# STOP_TIMEOUT, then reap.
stop_session() {
    local pid=$1 i
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "$pid did not stop in ${STOP_TIMEOUT}s; killing"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

stop_peer() {
    local name=$1
    local t0=$SECONDS
    [ -n "${PID[$name]:-}" ] || return 0
    if declare -F "peer_${name}_stop" >/dev/null; then
        "peer_${name}_stop" || true
    fi
    stop_session "${PID[$name]}"
    unset "PID[$name]"
    ((SECONDS - t0 < 2)) || say "stopping $name took $((SECONDS - t0))s"
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM HUP
    if [ -n "${WRK_PID:-}" ]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_peer "${STARTED[i]}"
    done
    if [ "${BENCH_KEEP_WORK:-0}" = 1 ]; then
        say "kept work dir $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_log_port NAME: the port from a gunicorn-style "Listening at:" log line.
wait_log_port() {
    local name=$1 i port
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        port=$(sed -n 's|.*Listening at: http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' \
            "$WORK/$name.log" 2>/dev/null | head -n 1)
        [ -n "$port" ] && { echo "$port"; return 0; }
        alive "${PID[$name]}" || return 1
        sleep 0.1
    done
    return 1
}

fetch() {  # fetch URL: print the body, fail on error
    if [ "$HAVE_CURL" = 1 ]; then
        curl -fsS --max-time 2 "$1"
    else
        "$PY" -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=2).read().decode())' "$1"
    fi
}

# wait_ready NAME: until the server answers GET / with the hello body.
wait_ready() {
    local name=$1 i body=""
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        alive "${PID[$name]}" || return 1
        body=$(fetch "http://127.0.0.1:${PORT[$name]}/" 2>/dev/null) || body=""
        [ "$body" = "$EXPECTED_BODY" ] && return 0
        sleep 0.1
    done
    [ -z "$body" ] || say "$name answered an unexpected body: $body"
    return 1
}

# rss NAME: "KB PROCESSES" summed over the peer's session (master + workers).
rss() {
    ps -e -o sid=,rss= | awk -v s="${PID[$1]}" '$1 == s { kb += $2; n++ } END { print kb + 0, n + 0 }'
}

# ------------------------------------------------------------------- peers
# drover, native hello app. Port 0: drover picks a free port and logs it.
peer_drover_check() {
    [ -x "$DROVER" ] || { echo "$DROVER missing; build it: cmake -S . -B build && cmake --build build -j2"; return 1; }
    [ -f "$HELLO_SO" ] || { echo "$HELLO_SO missing; build it: cmake --build build -j2"; return 1; }
}
peer_drover_version() { "$DROVER" --version 2>&1 | head -n 1; }
peer_drover_start() {
    start_bg drover "$DROVER" --bind 127.0.0.1:0 "$HELLO_SO:hello_app"
    PORT[drover]=$(wait_log_port drover) || return 1
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
    local prefix=$WORK/nginx port
    port=$(free_port)
    mkdir -p "$prefix/logs" "$prefix/tmp"
    sed -e "s|@PORT@|$port|g" -e "s|@PREFIX@|$prefix|g" \
        "$BENCH_DIR/nginx.conf.in" >"$prefix/nginx.conf"
    start_bg nginx "$NGINX_BIN" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"
    PORT[nginx]=$port
}
peer_nginx_logs() { cat "$WORK/nginx/logs/error.log" 2>/dev/null || true; }

# drover serving the WSGI app; skipped (not failed) until Python is built in.
peer_drover_wsgi_check() {
    local out
    peer_drover_check || return 1
    if ! out=$(PYTHONPATH="$APPS" "$DROVER" --check-config --bind 127.0.0.1:0 hello_wsgi:app 2>&1); then
        case $out in
        *"not supported"*) echo "drover's Python (WSGI) support is not built yet ($out)" ;;
        *) echo "drover --check-config hello_wsgi:app failed: $out" ;;
        esac
        return 1
    fi
}
peer_drover_wsgi_version() { peer_drover_version; }
peer_drover_wsgi_start() {
    start_bg drover_wsgi env PYTHONPATH="$APPS" "$DROVER" --bind 127.0.0.1:0 hello_wsgi:app
    PORT[drover_wsgi]=$(wait_log_port drover_wsgi) || return 1
}

# gunicorn: master + 1 sync worker (drover's model; sync workers close the
# connection after each response, so wrk reconnects every request).
peer_gunicorn_check() {
    "$PY" -c 'import gunicorn' 2>/dev/null || { echo "gunicorn not importable by $PY"; return 1; }
}
peer_gunicorn_version() { "$PY" -m gunicorn --version 2>&1 | head -n 1; }
peer_gunicorn_start() {
    PORT[gunicorn]=$(free_port)
    start_bg gunicorn "$PY" -m gunicorn --workers 1 --bind "127.0.0.1:${PORT[gunicorn]}" \
        --chdir "$APPS" --log-level warning hello_wsgi:app
}

# uWSGI: master + 1 process, 1 thread, its native HTTP parser (--http-socket,
# no router process). --http-socket closes the connection after each response
# without saying so, which wrk counts as a read error; "Connection: close"
# makes that explicit (like gunicorn). --http11-socket (keep-alive) is not
# used: one single-threaded worker then serves one connection at a time and
# starves the other 49. --die-on-term: SIGTERM stops it instead of reloading.
peer_uwsgi_check() {
    command -v uwsgi >/dev/null || { echo "uwsgi not found (tools/install-deps.sh bench)"; return 1; }
    [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || { echo "uwsgi python3 plugin missing (uwsgi-plugin-python3)"; return 1; }
}
peer_uwsgi_version() { echo "uWSGI $(uwsgi --version 2>&1 | head -n 1)"; }
peer_uwsgi_start() {
    PORT[uwsgi]=$(free_port)
    start_bg uwsgi uwsgi --plugin python3 --master --processes 1 --threads 1 \
        --http-socket "127.0.0.1:${PORT[uwsgi]}" --add-header "Connection: close" \
        --chdir "$APPS" \
        --wsgi-file hello_wsgi.py --callable app --need-app \
        --die-on-term --disable-logging
}

# waitress: one process, its default 4 threads.
peer_waitress_check() {
    "$PY" -c 'import waitress' 2>/dev/null || { echo "waitress not importable by $PY (python3-waitress)"; return 1; }
}
peer_waitress_version() {
    "$PY" -c 'from importlib.metadata import version; print("waitress", version("waitress"))' 2>/dev/null || echo waitress
}
peer_waitress_start() {
    PORT[waitress]=$(free_port)
    start_bg waitress env PYTHONPATH="$APPS" "$PY" -m waitress \
        --listen="127.0.0.1:${PORT[waitress]}" hello_wsgi:app
}

# -------------------------------------------------------------------- run
dur_seconds() {  # rough seconds in a wrk duration (10s, 1m, 30)
    case $1 in
    *ms) echo 1 ;;
    *s) echo "${1%s}" ;;
    *m) echo $((${1%m} * 60)) ;;
    *h) echo $((${1%h} * 3600)) ;;
    *) echo "$1" ;;
    esac
}

setm mode "$MODE"
setm peers "${PEERS[*]}"
setm duration "$DURATION"
setm warmup "$WARMUP"
setm connections "$CONNECTIONS"
setm threads "$THREADS"
setm rounds "$ROUNDS"
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

say "mode: $MODE; peers: ${PEERS[*]}"
case ${LOADAVG%% *} in 0.[0-4]*|"") ;;
*) say "warning: load average is $LOADAVG before starting; other work (or a run that just ended) is using the CPUs; expect noise" ;;
esac
say "wrk --latency -t $THREADS -c $CONNECTIONS -d $DURATION, $ROUNDS round(s) each, warm-up $WARMUP; $(nproc) CPUs shared by client and servers"

RUNNING=()
FAILED=0
for name in "${PEERS[@]}"; do
    setp "$name" group "$(peer_field "$name" 2)"
    setp "$name" ref "$(peer_field "$name" 3)"
    if declare -F "peer_${name}_check" >/dev/null; then
        if ! why=$("peer_${name}_check" 2>&1); then
            say "skipping $name: $why"
            setp "$name" status skipped
            setp "$name" note "$why"
            continue
        fi
    fi
    if declare -F "peer_${name}_version" >/dev/null; then
        setp "$name" version "$("peer_${name}_version" 2>/dev/null || true)"
    fi
    if "peer_${name}_start" && wait_ready "$name"; then
        say "$name: pid ${PID[$name]}, http://127.0.0.1:${PORT[$name]}/"
        setp "$name" status ok
        setp "$name" port "${PORT[$name]}"
        setp "$name" rss_idle "$(rss "$name")"
        RUNNING+=("$name")
    else
        say "$name failed to start; its log:"
        sed 's/^/    /' "$WORK/$name.log" >&2 2>/dev/null || true
        declare -F "peer_${name}_logs" >/dev/null && "peer_${name}_logs" | sed 's/^/    /' >&2
        setp "$name" status failed
        setp "$name" note "did not start or answer GET / with '$EXPECTED_BODY'"
        FAILED=1
        stop_peer "$name"
    fi
done

if [ ${#RUNNING[@]} -gt 0 ]; then
    est=$(( (${#RUNNING[@]} * (ROUNDS * $(dur_seconds "$DURATION") + $(dur_seconds "$WARMUP"))) ))
    say "measuring ${RUNNING[*]}: about ${est}s"
fi

# run_wrk NAME DURATION OUTFILE. wrk runs in the background and we `wait`
# for it, so that a signal to this script runs the trap at once.
WRK_PID=
run_wrk() {
    local rc=0
    ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "$WRK" --latency -t "$THREADS" -c "$CONNECTIONS" -d "$2" \
        "http://127.0.0.1:${PORT[$1]}/" </dev/null >"$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    return "$rc"
}

mkdir -p "$WORK/raw"
for name in ${RUNNING[@]+"${RUNNING[@]}"}; do
    run_wrk "$name" "$WARMUP" "$WORK/raw/$name-warmup.txt" || say "$name: warm-up wrk failed"
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
        run_wrk "$name" "$DURATION" "$out" || say "$name: wrk exited $? in round $r"
        say "round $r/$ROUNDS $name: $(sed -n 's/^Requests\/sec:[[:space:]]*//p' "$out") req/s, p99 $(awk '$1 == "99%" { print $2 }' "$out")"
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
for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_peer "${STARTED[i]}"; done
for name in ${STARTED[@]+"${STARTED[@]}"}; do cp "$WORK/$name.log" "$WORK/raw/$name.log" 2>/dev/null || true; done

mkdir -p "$RESULTS_DIR"
rm -rf "$RESULTS_DIR/raw"
cp -r "$WORK/raw" "$RESULTS_DIR/raw"
"$PY" "$BENCH_DIR/report.py" "$WORK" "$RESULTS_DIR" || FAILED=1
exit "$FAILED"
