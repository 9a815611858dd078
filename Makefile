# drover: the two commands.
#
#   make run    install what is missing, build, serve the example Flask app
#               (examples/flask_hello.py) on 0.0.0.0:5000; APP=... serves
#               another, e.g. make run APP=build/examples/hello.so:hello_app
#   make test   install what is missing, build, run every suite (unit,
#               integration, the HTTP and WSGI suites again with app
#               threads, unit and integration again on an ASan+UBSan build,
#               a short run of each fuzz target, the deployment files of
#               conf/ under a real systemd and a real Docker engine)
#
#   make fuzz-long   each fuzz target for FUZZ_LONG_SECONDS, one at a time
#
# The real build is CMake; this file only strings the steps together.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# libFuzzer targets (tests/fuzz/fuzz_<name>.c). `make fuzz` shares
# FUZZ_SECONDS among them; `make fuzz-long` gives each FUZZ_LONG_SECONDS.
FUZZ_TARGETS ?= http response proxy
FUZZ_SECONDS ?= 21
FUZZ_LONG_SECONDS ?= 600
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# Debian's interpreter: it has python3-pytest, -requests and -flask.
PYTHON     ?= /usr/bin/python3
WERROR     ?= $(if $(CI),ON,OFF)
BIND       ?= 0.0.0.0:5000
# What `make run` serves: a Python app (drover's main job) by default; any
# APP drover takes works, the native hello included.
APP        ?= examples/flask_hello.py:app
PYTEST_ARGS ?=
# pytest-xdist processes for the integration suites: their tests mostly
# wait on sockets and timers, so three share two cores well (about half
# the wall time of one). PYTEST_JOBS=0 runs them in this process.
PYTEST_JOBS ?= 3
XDIST = $(if $(filter 0,$(PYTEST_JOBS)),,-n $(PYTEST_JOBS))
# Sanitized processes are CPU-bound (and LeakSanitizer's scan at each
# exit takes seconds under load): two at a time.
ASAN_JOBS ?= 2
ASAN_XDIST = $(if $(filter 0,$(ASAN_JOBS)),,-n $(ASAN_JOBS))
# The sanitizer pass: every suite a client's bytes or an app reach; not
# the ones that only drive other programs around drover (nginx, systemd
# tools, man) or parse settings (the unit tests do that under ASan too).
ASAN_SUITES = $(filter-out tests/integration/test_deploy_% \
    tests/integration/test_man_page.py tests/integration/test_config.py, \
    $(wildcard tests/integration/test_*.py))

SAN_ENV = ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1 \
          LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all deps deps-test deps-bench build build-asan run test unit \
        integration integration-threads test-asan fuzz fuzz-long fuzz-build \
        bench clean deps-deploy test-deploy

all: build

deps:
	@tools/install-deps.sh build

deps-test:
	@tools/install-deps.sh test

deps-bench:
	@tools/install-deps.sh bench

$(BUILD)/Makefile $(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -DDROVER_WERROR=$(WERROR)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DDROVER_WERROR=$(WERROR) \
	      -DDROVER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j$(JOBS)

run: build
	exec $(BUILD)/drover --bind $(BIND) $(APP)

# ctest runs the cmocka suites; tests/python is the Python package's own.
unit: deps-test build
	cd $(BUILD) && ctest --output-on-failure
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/python

integration: deps-test build
	DROVER_BUILD=$(BUILD) $(PYTHON) -m pytest -q -p no:cacheprovider \
	    $(XDIST) tests/integration $(PYTEST_ARGS)

# The suites whose servers do not ask for threads themselves, again with
# --threads 4 (DROVER_TEST_THREADS, see tests/integration/conftest.py):
# every request then crosses the loop/app-thread hand-off.
THREADED_SUITES = $(wildcard tests/integration/test_http_*.py) \
    $(addprefix tests/integration/test_python_, \
      bodies.py wsgi.py file_wrapper.py edges.py validate.py file_apps.py) \
    tests/integration/test_master_stop.py tests/integration/test_master_reload.py

integration-threads: deps-test build
	DROVER_TEST_THREADS=4 DROVER_BUILD=$(BUILD) $(PYTHON) -m pytest -q \
	    -p no:cacheprovider $(XDIST) $(THREADED_SUITES) $(PYTEST_ARGS)

test-asan: deps-test build-asan
	cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure
	$(SAN_ENV) DROVER_BUILD=$(ASAN_BUILD) $(PYTHON) -m pytest -q \
	    -p no:cacheprovider $(ASAN_XDIST) $(ASAN_SUITES) $(PYTEST_ARGS)

# The deployment tests' Debian roots (a few minutes of debootstrap on a
# first run, mostly waiting on the mirror and dpkg) are built in the
# background while the suites before them run; test-deploy waits for them
# (the cache's lock) and finds them built.
test: deps-test
	@mkdir -p $(DEPLOY_CACHE)
	@(tools/install-deps.sh deploy >/dev/null 2>&1; \
	  DROVER_DEPLOY_CACHE=$(DEPLOY_CACHE) flock $(DEPLOY_CACHE)/.lock \
	  $(PYTHON) tests/deploy/machines.py >/dev/null 2>&1) &
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) integration-threads
	$(MAKE) test-asan
	$(MAKE) fuzz
	$(MAKE) test-deploy

# The fuzz targets, built with clang (libFuzzer, ASan, UBSan).
fuzz-build: deps-test
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DDROVER_FUZZ=ON -DDROVER_TESTS=OFF \
	    -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target \
	    $(addprefix fuzz_,$(FUZZ_TARGETS))

# Run target $(1) for $(2) seconds: its seeds are tests/fuzz/corpus_$(1)
# (fuzz_http's: tests/fuzz/corpus), what it learns goes to
# $(FUZZ_BUILD)/corpus_$(1), a crashing input to $(FUZZ_BUILD)/.
define fuzz_run
	mkdir -p $(FUZZ_BUILD)/corpus_$(1)
	$(FUZZ_BUILD)/fuzz_$(1) -max_total_time=$(2) -max_len=4096 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/$(1)- \
	    $(FUZZ_BUILD)/corpus_$(1) \
	    tests/fuzz/corpus$(if $(filter http,$(1)),,_$(1))

endef

# A short run of each target is part of `make test`.
fuzz: fuzz-build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(shell \
	    expr $(FUZZ_SECONDS) / $(words $(FUZZ_TARGETS)))))

fuzz-long: fuzz-build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(FUZZ_LONG_SECONDS)))

# conf/drover.service and drover.socket under systemd booted in
# systemd-nspawn, conf/Dockerfile in a private Docker engine
# (tests/deploy). The Debian roots and Docker's images and build cache
# live in DEPLOY_CACHE, outside the tree, reused by later runs. A machine
# that cannot run a part gets one SKIP line saying why.
DEPLOY_CACHE ?= /var/cache/drover-test-deploy

deps-deploy:
	@tools/install-deps.sh deploy || echo "test-deploy: installing the" \
	    "deploy packages failed; the SKIP lines below say what is missing" >&2

test-deploy: deps-test deps-deploy build
	@mkdir -p $(DEPLOY_CACHE)
	@export DROVER_DEPLOY_CACHE=$(DEPLOY_CACHE) DROVER_BUILD=$(BUILD); \
	exec flock $(DEPLOY_CACHE)/.lock sh -c ' \
	    files=$$($(PYTHON) tests/deploy/machines.py) || exit $$?; \
	    [ -z "$$files" ] || exec $(PYTHON) -m pytest -q -rs \
	        -p no:cacheprovider $$files $(PYTEST_ARGS)'

bench: deps-bench build
	bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
