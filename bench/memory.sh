#!/usr/bin/env bash
# bench/memory.sh: memory of drover's prefork model against gunicorn's, with
# the Flask app (bench/apps/flask_app.py) and 4 workers.
#
#   bench/memory.sh [SERVER...]
#
#   drover_preload      drover --workers 4 flask_app:app   (preload is the default)
#   drover_no_preload   drover --workers 4 --no-preload flask_app:app
#   gunicorn_preload    gunicorn --preload --workers 4 flask_app:app (sync)
#   gunicorn_no_preload gunicorn --workers 4 flask_app:app (reference only)
#   (default: all four, in that order)
#
# Servers run ONE AT A TIME: start, warm up with wrk (thousands of requests,
# so that copy-on-write has happened), wait BENCH_MEM_SETTLE seconds, then
# read /proc/PID/smaps_rollup of the master and every worker and sum them.
# PSS (proportional set size) counts a page shared by N processes as 1/N in
# each, so the sum is what the server as a whole costs in RAM; RSS counts
# shared pages in every process and is shown for reference only.
#
# Environment (defaults in brackets):
#   BENCH_MEM_WORKERS [4]    workers of every server
#   BENCH_MEM_WARMUP [5s]    wrk -d on GET /json, then 1 s on GET /
#   BENCH_MEM_CONNECTIONS [16]  wrk -c during the warm-up (4 per worker)
#   BENCH_MEM_SETTLE [2]     seconds between the warm-up and the reading
#   BENCH_RESULTS_DIR [bench/results]  BENCH_KEEP_WORK=1 keeps the temp dir
#   DROVER [build/drover]    BENCH_PYTHON [/usr/bin/python3]
# See bench/README.md.
set -euo pipefail
set +m

BENCH_DIR=$(cd -- "$(dirname -- "$0")" && pwd)
ROOT=$(cd -- "$BENCH_DIR/.." && pwd)
APPS=$BENCH_DIR/apps

PY=${BENCH_PYTHON:-/usr/bin/python3}
MEM_WORKERS=${BENCH_MEM_WORKERS:-4}
MEM_WARMUP=${BENCH_MEM_WARMUP:-5s}
MEM_CONNECTIONS=${BENCH_MEM_CONNECTIONS:-16}
MEM_SETTLE=${BENCH_MEM_SETTLE:-2}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
DROVER=${DROVER:-$ROOT/build/drover}
WRK=${BENCH_WRK:-wrk}
START_TIMEOUT=${BENCH_START_TIMEOUT:-20}
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-10}
EXPECTED_BODY='Hello, World!'
APP=flask_app:app
SERVER_PIN=()
ALL_SERVERS=(drover_preload drover_no_preload gunicorn_preload gunicorn_no_preload)

source "$BENCH_DIR/lib.sh"

usage() { sed -n '2,28s/^# \{0,1\}//p' "$0"; }
SERVERS=()
for arg in "$@"; do
    case $arg in
    -h|--help) usage; exit 0 ;;
    drover_preload|drover_no_preload|gunicorn_preload|gunicorn_no_preload) SERVERS+=("$arg") ;;
    *) usage >&2; die "unknown server: $arg" ;;
    esac
done
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=("${ALL_SERVERS[@]}")
case $MEM_WORKERS in ''|*[!0-9]*|0) die "BENCH_MEM_WORKERS must be a positive integer" ;; esac
command -v "$WRK" >/dev/null || die "wrk not found (tools/install-deps.sh bench)"
[ -x "$PY" ] || die "$PY not found (set BENCH_PYTHON)"
[ -r /proc/self/smaps_rollup ] || die "/proc/PID/smaps_rollup is not available (Linux 4.14 or later)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench.XXXXXX")
WRK_PID=
trap bench_cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
lock_results

# --------------------------------------------------------------- servers
start_server() {  # start_server NAME: start it, set PORT[NAME]
    local name=$1
    case $name in
    drover_*)
        [ -x "$DROVER" ] || { say "$DROVER missing; build it: cmake -S . -B build && cmake --build build -j2"; return 1; }
        local preload=--preload
        [ "$name" = drover_no_preload ] && preload=--no-preload
        start_bg "$name" env PYTHONPATH="$APPS" "$DROVER" --workers "$MEM_WORKERS" "$preload" \
            --bind 127.0.0.1:0 "$APP"
        setp "$name" version "$("$DROVER" --version 2>&1 | head -n 1)"
        PORT[$name]=$(wait_log_port "$name") || return 1 ;;
    gunicorn_*)
        "$PY" -c 'import gunicorn' 2>/dev/null || { say "gunicorn not importable by $PY"; return 1; }
        local preload=(--preload)
        [ "$name" = gunicorn_no_preload ] && preload=()
        PORT[$name]=$(free_port)
        start_bg "$name" "$PY" -m gunicorn --workers "$MEM_WORKERS" ${preload[@]+"${preload[@]}"} \
            --bind "127.0.0.1:${PORT[$name]}" --chdir "$APPS" --log-level warning "$APP"
        setp "$name" version "$("$PY" -m gunicorn --version 2>&1 | head -n 1)" ;;
    esac
}

run_wrk() {  # run_wrk PORT PATH DURATION OUTFILE
    local rc=0
    "$WRK" -t 2 -c "$MEM_CONNECTIONS" -d "$3" "http://127.0.0.1:$1$2" </dev/null >"$4" 2>&1 9>&- &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    return "$rc"
}

# snapshot NAME: smaps_rollup, CPU ticks and command line of every process
# of the server's session into $WORK/mem/NAME/PID.*
snapshot() {
    local name=$1 dir=$WORK/mem/$1 pid
    mkdir -p "$dir"
    for pid in $(session_pids "${PID[$name]}"); do
        cat "/proc/$pid/smaps_rollup" >"$dir/$pid.rollup" 2>/dev/null || { rm -f "$dir/$pid.rollup"; continue; }
        sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f12,13 >"$dir/$pid.ticks" || true   # utime stime
        tr '\0' ' ' <"/proc/$pid/cmdline" >"$dir/$pid.cmd" 2>/dev/null || true
    done
    echo "${PID[$name]}" >"$dir/master"
}

setm workers "$MEM_WORKERS"
setm warmup "$MEM_WARMUP"
setm connections "$MEM_CONNECTIONS"
setm settle "$MEM_SETTLE"
setm servers "${SERVERS[*]}"
setm git_commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
setm kernel "$(uname -sr)"
setm started_at "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "memory: ${SERVERS[*]}; $MEM_WORKERS workers each, $APP, warm-up wrk -c $MEM_CONNECTIONS -d $MEM_WARMUP on /json + 1s on /"

FAILED=0
for name in "${SERVERS[@]}"; do
    if start_server "$name" && wait_ready "$name"; then
        say "$name: pid ${PID[$name]}, http://127.0.0.1:${PORT[$name]}/; warming up"
        run_wrk "${PORT[$name]}" /json "$MEM_WARMUP" "$WORK/$name-warm1.txt" || say "$name: warm-up wrk failed"
        run_wrk "${PORT[$name]}" / 1s "$WORK/$name-warm2.txt" || say "$name: warm-up wrk failed"
        n=0
        for f in "$WORK/$name-warm1.txt" "$WORK/$name-warm2.txt"; do
            r=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' "$f")
            n=$((n + ${r:-0}))
            if grep -qE 'Socket errors|Non-2xx' "$f"; then
                say "$name: $(grep -E 'Socket errors|Non-2xx' "$f" | tr -s ' \n' ' ')"
                setp "$name" warm_errors "$(grep -E 'Socket errors|Non-2xx' "$f" | tr -s ' \n' ' ')"
            fi
        done
        setp "$name" warm_requests "$n"
        sleep "$MEM_SETTLE"
        if alive "${PID[$name]}"; then
            snapshot "$name"
            setp "$name" status ok
        else
            setp "$name" status failed
            FAILED=1
        fi
    else
        say "$name failed to start; its log:"
        sed 's/^/    /' "$WORK/$name.log" >&2 2>/dev/null || true
        setp "$name" status failed
        FAILED=1
    fi
    stop_peer "$name"    # one server at a time: nothing of it may be left
    cp "$WORK/$name.log" "$WORK/mem/$name.log" 2>/dev/null || true
done

mkdir -p "$RESULTS_DIR"
"$PY" - "$WORK" "$RESULTS_DIR" <<'EOF' || FAILED=1
import json, os, sys

work, results = sys.argv[1], sys.argv[2]

def read(p, d=""):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return d

meta = {k: read(os.path.join(work, "meta", k)) for k in os.listdir(os.path.join(work, "meta"))}
names = meta["servers"].split()
tick = os.sysconf("SC_CLK_TCK")
rows = []
for name in names:
    pdir = os.path.join(work, "peers", name)
    s = {"name": name, "status": read(os.path.join(pdir, "status")) or "failed",
         "command": read(os.path.join(pdir, "cmd")), "version": read(os.path.join(pdir, "version")),
         "warm_requests": int(read(os.path.join(pdir, "warm_requests"), "0") or 0),
         "warm_errors": read(os.path.join(pdir, "warm_errors")) or None}
    mdir = os.path.join(work, "mem", name)
    procs = []
    if s["status"] == "ok" and os.path.isdir(mdir):
        master = read(os.path.join(mdir, "master"))
        for f in sorted(os.listdir(mdir)):
            if not f.endswith(".rollup"):
                continue
            pid = f[:-7]
            kb = {}
            for line in read(os.path.join(mdir, f)).splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    kb[parts[0].rstrip(":")] = int(parts[-2])
            ticks = read(os.path.join(mdir, pid + ".ticks")).split()
            procs.append({
                "pid": int(pid),
                "role": "master" if pid == master else "worker",
                "cmd": read(os.path.join(mdir, pid + ".cmd")),
                "rss_kb": kb.get("Rss", 0),
                "pss_kb": kb.get("Pss", 0),
                "uss_kb": kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0),
                "shared_kb": kb.get("Shared_Clean", 0) + kb.get("Shared_Dirty", 0),
                "swap_kb": kb.get("Swap", 0),
                "cpu_s": round(sum(int(t) for t in ticks) / tick, 2) if ticks else None,
            })
    s["processes"] = procs
    for k in ("rss_kb", "pss_kb", "uss_kb", "swap_kb"):
        s[k] = sum(p[k] for p in procs) if procs else None
    m = [p for p in procs if p["role"] == "master"]
    w = [p for p in procs if p["role"] == "worker"]
    s["workers"] = len(w)
    s["master_pss_kb"] = m[0]["pss_kb"] if m else None
    s["worker_pss_kb_avg"] = sum(p["pss_kb"] for p in w) / len(w) if w else None
    s["worker_cpu_s"] = [p["cpu_s"] for p in w]
    rows.append(s)

by = {s["name"]: s for s in rows}
ref = by.get("drover_preload")
for s in rows:
    s["pss_ratio"] = (ref["pss_kb"] / s["pss_kb"]) if ref and ref.get("pss_kb") and s.get("pss_kb") else None

mib = lambda kb: "-" if kb is None else "%.1f" % (kb / 1024)
hdr = ("server", "procs", "PSS total", "PSS master", "PSS/worker", "USS total", "RSS total",
       "ratio PSS", "warm-up reqs", "worker CPU s")
table = [hdr]
for s in rows:
    if s["status"] != "ok":
        table.append((s["name"], "FAILED") + ("",) * (len(hdr) - 2))
        continue
    table.append((
        s["name"], "%d+%d" % (1 if s["master_pss_kb"] is not None else 0, s["workers"]),
        mib(s["pss_kb"]), mib(s["master_pss_kb"]), mib(s["worker_pss_kb_avg"]),
        mib(s["uss_kb"]), mib(s["rss_kb"]),
        "(ref)" if s is ref else ("-" if s["pss_ratio"] is None else "%.2fx" % s["pss_ratio"]),
        "{:,}".format(s["warm_requests"]) + (" (errors)" if s["warm_errors"] else ""),
        " ".join("%.1f" % c for c in s["worker_cpu_s"] if c is not None),
    ))
widths = [max(len(r[i]) for r in table) for i in range(len(hdr))]
lines = ["drover memory bench  %s  %s workers each  sizes in MiB, summed over master + workers"
         % ("flask_app:app", meta["workers"]),
         "warm-up: wrk -t2 -c%s -d%s GET /json, then -d1s GET /; reading taken %ss later; run one server at a time"
         % (meta["connections"], meta["warmup"], meta["settle"]), ""]
for i, r in enumerate(table):
    lines.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r)).rstrip())
    if i == 0:
        lines.append("  ".join("-" * w for w in widths))
lines.append("")
lines.append("ratio PSS = drover_preload PSS / server PSS: below 1 means drover (preload) uses less memory.")
lines.append("PSS splits each shared page between the processes sharing it; USS = private pages only;")
lines.append("RSS counts shared pages once per process (overstates a prefork server). worker CPU s shows")
lines.append("that every worker served part of the warm-up (its pages were touched).")
for s in rows:
    if s.get("warm_errors"):
        lines.append("%s warm-up: %s" % (s["name"], s["warm_errors"]))
text = "\n".join(lines) + "\n"
sys.stdout.write("\n" + text)
os.makedirs(results, exist_ok=True)
with open(os.path.join(results, "memory-latest.txt"), "w") as f:
    f.write(text)
with open(os.path.join(results, "memory-latest.json"), "w") as f:
    json.dump({"meta": meta, "servers": rows}, f, indent=2)
    f.write("\n")
print("results: %s" % os.path.join(results, "memory-latest.json"), file=sys.stderr)
sys.exit(0 if all(s["status"] == "ok" for s in rows) else 1)
EOF
exit "$FAILED"
