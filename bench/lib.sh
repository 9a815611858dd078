# bench/lib.sh: process control shared by bench/run.sh and bench/memory.sh.
# Sourced, not run. The caller sets PY, WORK, START_TIMEOUT, STOP_TIMEOUT,
# RESULTS_DIR and SERVER_PIN (an array, may be empty) before using it.
#
# Every server is started with start_bg in its own session (setsid), its
# stdout/stderr going to $WORK/NAME.log. That makes three things reliable:
#   - stopping a server stops its workers too (signal the session's group);
#   - after a stop we can check that no process of the session is left and
#     that its port is no longer listening (stop_peer says so if not);
#   - a run that was killed with SIGKILL (so its EXIT trap never ran) is
#     recognised by the next run: it records "SID WORKDIR" lines in
#     $RESULTS_DIR/.running, and a process is only stopped when it is in such
#     a session AND its stdout is a log file under that run's WORKDIR.
# A lock ($RESULTS_DIR/.lock) keeps two runs from using the same results dir
# at once, so a session listed in .running is never one a live run owns.

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

declare -A PID=() PORT=()
LOCKED=0
STARTED=()

setp() {  # setp NAME KEY VALUE: record one fact about a peer for the report
    mkdir -p "$WORK/peers/$1"
    printf '%s' "$3" >"$WORK/peers/$1/$2"
}
setm() { mkdir -p "$WORK/meta"; printf '%s' "$2" >"$WORK/meta/$1"; }
setg() {  # setg GROUP KEY VALUE: record one fact about a group of peers
    mkdir -p "$WORK/groups/$1"
    printf '%s' "$3" >"$WORK/groups/$1/$2"
}

# session_pids SID: every live process of the session.
session_pids() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'; }

# lock_results: take the results-dir lock (fd 9) and stop whatever a killed
# earlier run left behind.
lock_results() {
    mkdir -p "$RESULTS_DIR"
    exec 9>"$RESULTS_DIR/.lock"
    if command -v flock >/dev/null && ! flock -w 15 9; then
        die "another bench run holds $RESULTS_DIR/.lock; wait for it to finish"
    fi
    local sid dir pid fd n=0
    if [ -s "$RESULTS_DIR/.running" ]; then
        while read -r sid dir; do
            [ -n "$sid" ] && [ -n "$dir" ] || continue
            for pid in $(session_pids "$sid"); do
                fd=$(readlink "/proc/$pid/fd/1" 2>/dev/null) || continue
                case $fd in "$dir"/*) ;; *) continue ;; esac
                say "stopping pid $pid left running by an earlier run ($dir)"
                kill -TERM "$pid" 2>/dev/null || true
                n=$((n + 1))
            done
            case $dir in */drover-bench.*) rm -rf "$dir" ;; esac
        done <"$RESULTS_DIR/.running"
        if [ "$n" -gt 0 ]; then
            sleep 2
            while read -r sid dir; do
                for pid in $(session_pids "$sid"); do
                    fd=$(readlink "/proc/$pid/fd/1" 2>/dev/null) || continue
                    case $fd in "$dir"/*) kill -KILL "$pid" 2>/dev/null || true ;; esac
                done
            done <"$RESULTS_DIR/.running"
        fi
    fi
    : >"$RESULTS_DIR/.running"
    LOCKED=1
}

# start_bg NAME CMD...: run CMD in a new session (so that its workers can be
# signalled as a group), output to $WORK/NAME.log.
start_bg() {
    local name=$1; shift
    setsid ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$@" </dev/null >"$WORK/$name.log" 2>&1 9>&- &
    PID[$name]=$!
    STARTED+=("$name")
    setp "$name" cmd "$*"
    echo "$! $WORK" >>"$RESULTS_DIR/.running"
}

alive() { kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null; }

# stop_session PID: SIGTERM the session's process group, SIGKILL after
# STOP_TIMEOUT, then reap. Also SIGKILLs any process of the session that
# left the group (a daemonising worker would).
stop_session() {
    local pid=$1 i p
    if alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            say "$pid did not stop in ${STOP_TIMEOUT}s; killing"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    for p in $(session_pids "$pid"); do kill -KILL "$p" 2>/dev/null || true; done
}

# port_listening PORT: true while something listens on 127.0.0.1:PORT.
port_listening() {
    command -v ss >/dev/null || return 1
    [ -n "$(ss -ltnH "( sport = :$1 )" 2>/dev/null)" ]
}

stop_peer() {
    local name=$1 t0=$SECONDS i left
    [ -n "${PID[$name]:-}" ] || return 0
    if declare -F peer_stop_hook >/dev/null; then peer_stop_hook "$name" || true; fi
    stop_session "${PID[$name]}"
    ((SECONDS - t0 < 2)) || say "stopping $name took $((SECONDS - t0))s"
    # Nothing of it may outlive the stop: no process, no listening port.
    for ((i = 0; i < 20; i++)); do
        left=$(session_pids "${PID[$name]}")
        [ -z "$left" ] && { [ -z "${PORT[$name]:-}" ] || ! port_listening "${PORT[$name]}"; } && break
        sleep 0.1
    done
    [ -z "$left" ] || say "warning: $name left processes behind: $left"
    if [ -n "${PORT[$name]:-}" ] && port_listening "${PORT[$name]}"; then
        say "warning: port ${PORT[$name]} of $name is still listening after the stop"
    fi
    unset "PID[$name]"
}

stop_all() {
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_peer "${STARTED[i]}"
    done
    # Only the run that holds the lock owns .running.
    [ "${LOCKED:-0}" != 1 ] || : >"$RESULTS_DIR/.running"
}

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
    if command -v curl >/dev/null; then
        curl -fsS --max-time 2 "$1"
    else
        "$PY" -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=2).read().decode())' "$1"
    fi
}

# wait_ready NAME: until the server answers GET / with $EXPECTED_BODY.
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

# keepalive PORT PATH: "yes" when a response to an HTTP/1.1 request leaves
# the connection open, "no" when the server says Connection: close.
keepalive() {
    "$PY" - "$1" "$2" <<'EOF' 2>/dev/null || echo "?"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=3)
c.request("GET", sys.argv[2])
r = c.getresponse()
r.read()
if r.will_close:
    print("no")
else:
    # Some servers close without saying so: try a second request.
    try:
        c.request("GET", sys.argv[2])
        r = c.getresponse()
        r.read()
        print("yes")
    except (OSError, http.client.HTTPException):
        print("no")
EOF
}

# bench_cleanup: the EXIT trap of both scripts. Stops wrk ($WRK_PID, if
# set) and every server, then removes $WORK (kept with BENCH_KEEP_WORK=1).
bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "${WRK_PID:-}" ]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    stop_all
    if [ "${BENCH_KEEP_WORK:-0}" = 1 ]; then
        say "kept work dir $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
