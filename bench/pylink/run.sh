#!/usr/bin/env bash
# bench/pylink/run.sh: what the way CPython is linked costs Python code.
# Builds embed.c against Debian's libpython3.X.so (drover's link before
# DROVER_PYTHON_STATIC) and libpython3.X.a (non-PIE, as /usr/bin/python3
# is), then times flask_loop.py (the Flask app called directly, no server)
# under each and under /usr/bin/python3, alternating, pinned to CPU 0.
# Prints microseconds per request of each round and the medians.
#   bench/pylink/run.sh [ROUNDS]      (default 5)
set -euo pipefail
here=$(cd -- "$(dirname -- "$0")" && pwd)
rounds=${1:-5}
py=/usr/bin/python3
ver=$($py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
read -r libpl library libs < <($py -c 'import sysconfig as s; v = s.get_config_var
print(v("LIBPL"), v("LIBRARY"), " ".join(v(k) or "" for k in ("LIBS", "MODLIBS", "SYSLIBS")))')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cflags=$(python$ver-config --includes)
# shellcheck disable=SC2086
gcc -O2 $cflags "$here/embed.c" -o "$work/shared" -lpython$ver
# shellcheck disable=SC2086
gcc -O2 $cflags "$here/embed.c" -o "$work/static" -no-pie -Wl,--export-dynamic \
    -Wl,--whole-archive "$libpl/$library" -Wl,--no-whole-archive $libs -lpthread -lutil
pin=()
[ "$(nproc)" -ge 2 ] && pin=(taskset -c 0)
declare -A all
for ((r = 1; r <= rounds; r++)); do
    line="round $r"
    for kind in shared static python3; do
        case $kind in
            python3) cmd=("$py") ;;
            *) cmd=("$work/$kind") ;;
        esac
        us=$("${pin[@]}" "${cmd[@]}" "$here/flask_loop.py")
        all[$kind]+="$us "
        line+="  $kind $us us"
    done
    echo "$line"
done
for kind in shared static python3; do
    # shellcheck disable=SC2086
    echo "$kind median $(printf '%s\n' ${all[$kind]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') us/request"
done
