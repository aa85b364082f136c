# cachost — build, test, bench, demo.  Every target installs what it needs (make deps) first.
.DEFAULT_GOAL := all

PKGS     := lua5.4 yajl libcurl sqlite3 libevent libevent_openssl openssl readline libzip poppler-glib libmaxminddb libpcre2-8 expat libzstd libpq zlib
DEBS     := build-essential pkg-config liblua5.4-dev lua5.4 libyajl-dev libcurl4-openssl-dev \
            libsqlite3-dev sqlite3 libevent-dev libssl-dev libreadline-dev libcmocka-dev lua-busted curl python3 openssl time libzip-dev libpoppler-glib-dev libmaxminddb-dev mmdb-bin libpcre2-dev libexpat1-dev libzstd-dev zlib1g-dev \
            faketime libpq-dev postgresql
# the libFuzzer harnesses (make fuzz, and their smoke run in make test)
FUZZ_DEBS := clang libclang-rt-14-dev
# the console's browser tests: Debian's chromium, driven by playwright-core (tests/browser, from npm)
BROWSER_DEBS := chromium
BUILD    ?= build
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -DCACHOST_ROOT='"$(CURDIR)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl, libpq and poppler-glib are loaded at run time (host/dl.h: curl_dl.c, pq_dl.c, pdf.c), their
# headers only at build time
LDLIBS   += $(shell pkg-config --libs $(filter-out libcurl libpq poppler-glib,$(PKGS)) 2>/dev/null) -lm

HOST_SRC := $(wildcard host/*.c)
HOST_OBJ := $(HOST_SRC:host/%.c=$(BUILD)/%.o)
LIB_OBJ  := $(filter-out $(BUILD)/main.o,$(HOST_OBJ))
CTESTS   := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/test_*.c))

all: deps-check $(BUILD)/cachost cachost

cachost: $(BUILD)/cachost
	@ln -sf $(BUILD)/cachost cachost

$(BUILD)/cachost: $(HOST_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: host/%.c host/*.h | $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(BUILD)/tests/%: tests/c/%.c tests/c/*.h $(LIB_OBJ) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ihost $(CFLAGS) $(WARN) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lcmocka

$(BUILD):
	@mkdir -p $(BUILD)

ctests: $(CTESTS)

# --- set-up: install what is missing (Debian 12), idempotent and non-interactive ---
deps: DEB_LIST = $(DEBS)
fuzz-deps: DEB_LIST = $(FUZZ_DEBS)
browser-deps: DEB_LIST = $(BROWSER_DEBS) $(if $(shell command -v npm),,nodejs npm)
deps fuzz-deps browser-deps:
	@missing=""; for p in $(DEB_LIST); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@if [ "$@" = browser-deps ] && [ ! -d tests/browser/node_modules/playwright-core ]; then \
	  echo "installing the browser tests' npm packages (tests/browser/package-lock.json)"; \
	  cd tests/browser && npm ci --no-audit --no-fund --loglevel=error; fi

deps-check:
	@pkg-config --exists $(PKGS) || { echo "missing libraries: run 'make deps' (or make test / make demo)"; exit 1; }

test: deps fuzz-deps browser-deps
	@$(MAKE) --no-print-directory all ctests
	@if command -v $(FUZZ_CC) >/dev/null; then $(MAKE) --no-print-directory fuzz-build; \
	 else echo "fuzz smoke skipped: $(FUZZ_CC) is not installed (make fuzz-deps)"; fi
	@CACHOST_FUZZ=$$(command -v $(FUZZ_CC) >/dev/null && echo $(FUZZ_DIR)) tests/run.sh $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" build-asan/cachost ctests
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp tests/run.sh build-asan

# the kill -9 campaign at length (make test runs 50 kills): make kills [KILLS=500] [KILL_SEED=1]
.PHONY: kills
kills: deps all
	@CACHOST_KILLS=$(or $(KILLS),500) CACHOST_KILL_SEED=$(or $(KILL_SEED),1) CACHOST_BIN=$(CURDIR)/$(BUILD)/cachost \
	  $(BUILD)/cachost test tests/e2e/kill_spec.lua

bench: deps all
	@bench/run.sh

# the workers' figure alone: make bench-workers [N=200]
bench-workers: deps all
	@bench/workers.sh $(CURDIR)/$(BUILD)/cachost $(or $(N),200)

# The injected-faults campaign: make test runs 4 syncs under faults per connector on small tenants.
FAULT_ROUNDS ?= 30
FAULT_SIZE ?= 4
FAULT_RETRY_AFTER ?= 1
faults: deps all
	@CACHOST_FAULT_ROUNDS=$(FAULT_ROUNDS) CACHOST_FAULT_SIZE=$(FAULT_SIZE) CACHOST_FAULT_RETRY_AFTER=$(FAULT_RETRY_AFTER) \
	  $(BUILD)/cachost test tests/spec/faults_spec.lua

demo: deps all
	@scripts/demo.sh

# The console's chart library, copied from npm (tests/browser/package-lock.json pins it) into the files the
# console serves, which are committed: nothing is fetched when the console runs.
console-assets: browser-deps
	cp tests/browser/node_modules/chart.js/dist/chart.umd.js scripts/console/www/vendor/chart.umd.js

# --- fuzzing: libFuzzer harnesses tests/fuzz/fuzz_<target>.c over the host built with clang, ASan and UBSan;
# seeds in tests/fuzz/corpus/<target>/.  `make fuzz` runs each FUZZ_RUNS times (or FUZZ_SECONDS each) and
# keeps a crashing input in build-fuzz/crashes/; `make test` runs each for a few seconds.
FUZZ_CC      ?= clang
FUZZ_DIR     := build-fuzz
FUZZ_RUNS    ?= 10000000
FUZZ_SECONDS ?=
FUZZ_FLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ     := $(filter-out $(FUZZ_DIR)/obj/main.o,$(HOST_SRC:host/%.c=$(FUZZ_DIR)/obj/%.o))
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

$(FUZZ_DIR)/obj/%.o: host/%.c host/*.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(WARN) -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/*.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(CPPFLAGS) -Ihost $(FUZZ_FLAGS) -fsanitize=fuzzer $(WARN) -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

.SECONDARY: $(FUZZ_OBJ)

fuzz: deps fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh $(FUZZ_DIR) $(if $(FUZZ_SECONDS),-max_total_time=$(FUZZ_SECONDS),-runs=$(FUZZ_RUNS)) $(FUZZ_ARGS)

# --- install: relocatable (the binary finds PREFIX/share/cachost from its own path) ---
PREFIX  ?= /usr/local
DESTDIR ?=
SHARE   := $(DESTDIR)$(PREFIX)/share/cachost
install: $(BUILD)/cachost
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE) $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BUILD)/cachost $(DESTDIR)$(PREFIX)/bin/cachost
	cp -R scripts connectors policies $(SHARE)/
	install -m 644 README.md LICENSE docs/PRIMITIVES.md $(SHARE)/
	install -m 644 packaging/cachost.1 $(DESTDIR)$(PREFIX)/share/man/man1/cachost.1
	install -m 644 packaging/cachost.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/cachost
	install -m 644 packaging/_cachost $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_cachost
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/cachost.service >$(DESTDIR)$(PREFIX)/lib/systemd/system/cachost.service

# Removes what install put there, and nothing else (never $CACHOST_HOME: that is the user's data).
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/cachost $(DESTDIR)$(PREFIX)/share/man/man1/cachost.1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/cachost $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_cachost \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system/cachost.service
	rm -rf $(SHARE)

clean:
	rm -rf build build-asan build-fuzz cachost tests/browser/node_modules

.PHONY: all deps fuzz-deps browser-deps console-assets deps-check test asan bench bench-workers demo clean ctests fuzz fuzz-build install uninstall faults
