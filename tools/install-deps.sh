#!/bin/sh
# Install every Debian package that drover's build, tests and benchmarks use,
# only when one is missing. Safe to run again; does nothing when all are there.
# Usage: tools/install-deps.sh [build|test|bench|deploy|all]   (default: all)
set -eu

# python3-flask is in build because `make run` serves examples/flask_hello.py.
# libwslay-dev: WebSocket framing for ASGI apps; nettle-dev: the
# handshake's SHA-1 and base64.
build="cmake make gcc pkg-config libev-dev node-llhttp libyaml-dev
       libsystemd-dev python3-dev libcmocka-dev python3-flask libwslay-dev nettle-dev"
# python3-pytest-xdist: the integration suites run in three processes
# (make test's wall time halves on two cores).
# groff-base and man-db: the man page test renders build/drover.1 and
# checks it for warnings (lexgrog).
test="python3 python3-pytest python3-requests python3-flask python3-venv
      curl libclang-rt-14-dev clang systemd procps util-linux iproute2
      nginx-light python3-yaml python3-waitress groff-base man-db prometheus
      python3-prometheus-client
      python3-fastapi python3-starlette python3-quart python3-websockets
      python3-pytest-xdist"
# libev4 and libuv1: runtime libraries of the prebuilt bjoern and fastwsgi
# peers (../shared/peers) that bench/run.sh compares drover with.
# uvicorn with uvloop and httptools (its fastest setup) and hypercorn:
# the ASGI peers.
bench="wrk gunicorn uwsgi uwsgi-plugin-python3 python3-waitress python3-flask nginx-light
       procps iproute2 util-linux libev4 libuv1 uvicorn python3-uvloop
       python3-httptools python3-hypercorn python3-fastapi python3-websockets"
# make test-deploy: debootstrap builds a Debian root, systemd-nspawn boots
# it with systemd as PID 1, docker.io (engine and matching client) builds
# and runs conf/Dockerfile, docker-compose (Debian's 1.29) runs
# conf/compose.yaml.
deploy="debootstrap systemd-container docker.io docker-compose util-linux"

case "${1:-all}" in
build) want="$build" ;;
test)  want="$build $test" ;;
bench) want="$build $bench" ;;
deploy) want="$deploy" ;;
all)   want="$build $test $bench $deploy" ;;
*) echo "usage: $0 [build|test|bench|deploy|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian's nginx and docker.io packages start a service on install; we never want that on a
# build machine, and in a container without systemd it would fail anyway.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
