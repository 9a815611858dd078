#!/usr/bin/env bash
# bench/ab.sh: one drover build against another (a change's before and
# after), same app, same flags, measured in alternation in one run.
#
#   bench/ab.sh OLD_DROVER NEW_DROVER APP [DROVER FLAGS...]
#
# APP is what drover serves (bench/apps is on PYTHONPATH):
#   hello_wsgi:app, flask_app:app (wrk asks for /json), path/to/hello.so:hello_app
# Each server gets 2 workers unless the flags say otherwise. With 2 or more
# CPUs the servers are pinned to CPU 0 and wrk to CPU 1 (taskset), which
# keeps run-to-run noise near 1-2%. Prints req/s and p99 of every round,
# then the median ratio NEW/OLD with its min and max.
#
# Environment: AB_ROUNDS [5], AB_DURATION [3s], AB_CONNECTIONS [50];
# AB_NEW_FLAGS: more flags for NEW only (the same binary twice with
# AB_NEW_FLAGS="--threads 4" measures what app threads cost).
set -euo pipefail
set +m

[ $# -ge 3 ] || { sed -n 2,14p "$0" >&2; exit 2; }
OLD=$1 NEW=$2 APP=$3
shift 3
BENCH_DIR=$(cd -- "$(dirname -- "$0")" && pwd)
ROUNDS=${AB_ROUNDS:-5}
DURATION=${AB_DURATION:-3s}
CONNS=${AB_CONNECTIONS:-50}
PATH_=/
case $APP in flask_app:*) PATH_=/json ;; esac
SRV=() CLI=()
if [ "$(nproc)" -ge 2 ]; then SRV=(taskset -c 0) CLI=(taskset -c 1); fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start() { # BIN PORT
    PYTHONPATH=$BENCH_DIR/apps "${SRV[@]}" "$1" --bind "127.0.0.1:$2" \
        --workers 2 --access-logfile '' "${@:3}" "$APP" \
        >/dev/null 2>"/tmp/ab-$2.log" &
    pids+=($!)
}
start "$OLD" 18601 "$@"
# shellcheck disable=SC2086
start "$NEW" 18602 "$@" ${AB_NEW_FLAGS:-}
for port in 18601 18602; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port$PATH_" >/dev/null && break
        sleep 0.1
    done
done
run() { # PORT -> "req/s p99_ms"
    "${CLI[@]}" wrk --latency -t1 -c"$CONNS" -d"$1" "http://127.0.0.1:$2$PATH_" |
        awk '/Requests\/sec/ {r=$2} / 99%/ {v=$2; if (v ~ /us$/) v=v/1000; else if (v ~ /ms$/) v=v+0; else if (v ~ /s$/) v=v*1000; p=v} END {print r, p}'
}
run 2s 18601 >/dev/null
run 2s 18602 >/dev/null
ratios=()
for i in $(seq "$ROUNDS"); do
    if [ $((i % 2)) -eq 1 ]; then a=$(run "$DURATION" 18601); b=$(run "$DURATION" 18602)
    else b=$(run "$DURATION" 18602); a=$(run "$DURATION" 18601); fi
    ratio=$(awk -v a="${a%% *}" -v b="${b%% *}" 'BEGIN {printf "%.3f", b / a}')
    ratios+=("$ratio")
    printf 'round %d  old %s req/s p99 %s ms   new %s req/s p99 %s ms   new/old %s\n' \
        "$i" "${a%% *}" "${a##* }" "${b%% *}" "${b##* }" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n |
    awk '{v[NR]=$1} END {printf "new/old req/s: median %s (min %s, max %s) over %d rounds\n", v[int((NR+1)/2)], v[1], v[NR], NR}'
