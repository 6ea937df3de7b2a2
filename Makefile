# posthorn top-level Makefile.  Everything is built under $(BUILD).
#   make            build libraries, daemons and the posthorn command
#   make test       build, run unit tests, then the integration suite
#   make asan       the same tests under AddressSanitizer + UBSan
#   make run        build and start a demo instance under ./run/ (foreground)
#   make bench      posthorn side by side with Postfix (bench/)
#   make install PREFIX=/usr/local
#   make lint       cppcheck over the tree
#   make fuzz       build the libFuzzer harnesses and run each briefly

BUILD   ?= build
CC      ?= cc
PREFIX  ?= /usr/local
PYTHON  ?= /usr/bin/python3
SAN     ?=

PKGS     = libevent openssl libpcre2-8 lmdb libcares
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -levent -lssl -lcrypto -lpcre2-8 -llmdb -lcares)

CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	-Wno-unused-parameter -Wformat=2 -Wno-format-nonliteral -g -O2 \
	-Isrc $(PKG_CFLAGS) -MMD -MP
ifneq ($(SAN),)
CFLAGS_BASE += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
LDSAN = -fsanitize=address,undefined
endif
CFLAGS  ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS)
LDFLAGS += $(LDSAN) -Wl,--as-needed
LDLIBS   = $(PKG_LIBS) -lcrypt -lsasl2

UTIL_SRC   = $(wildcard src/util/*.c)
GLOBAL_SRC = $(wildcard src/global/*.c)
UTIL_OBJ   = $(UTIL_SRC:%.c=$(BUILD)/obj/%.o)
GLOBAL_OBJ = $(GLOBAL_SRC:%.c=$(BUILD)/obj/%.o)
LIBUTIL    = $(BUILD)/lib/libutil.a
LIBGLOBAL  = $(BUILD)/lib/libglobal.a

# One program per folder (every src/<name>/ with C files except util,
# global and cli); src/cli builds the posthorn command.
DAEMONS ?= $(sort $(filter-out util global cli,$(patsubst src/%/,%,$(dir $(wildcard src/*/*.c)))))
PROGRAMS = $(DAEMONS:%=$(BUILD)/bin/%) $(BUILD)/bin/posthorn

UNIT_SRC   = $(wildcard tests/unit/test_*.c)
UNIT_TESTS = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBUTIL): $(UTIL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBGLOBAL): $(GLOBAL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

.SECONDEXPANSION:
$(BUILD)/bin/posthorn: $$(call prog_objs,cli) $(LIBGLOBAL) $(LIBUTIL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

prog_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard src/$(1)/*.c))
$(DAEMONS:%=$(BUILD)/bin/%): $(BUILD)/bin/%: $$(call prog_objs,$$*) $(LIBGLOBAL) $(LIBUTIL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBGLOBAL) $(LIBUTIL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

deps:
	@scripts/deps.sh test

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

# Every test has its own instance on free ports, so they run in parallel
# (pytest-xdist); most of their time is spent waiting on the servers.
# TEST_JOBS=1 runs them one after the other.
TEST_JOBS ?= 4
integration: all
	POSTHORN_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -x \
		$(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS)) tests/integration

test: deps
	$(MAKE) all $(UNIT_TESTS)
	$(MAKE) unit
	$(MAKE) integration

asan: deps
	$(MAKE) BUILD=build/asan SAN=1 test-nodeps

test-nodeps: all $(UNIT_TESTS)
	$(MAKE) unit integration

run: deps
	$(MAKE) all
	scripts/run-demo.sh $(abspath $(BUILD))

bench:
	scripts/deps.sh bench
	$(MAKE) all
	$(PYTHON) bench/bench.py --build $(abspath $(BUILD)) $(BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/libexec/posthorn $(DESTDIR)$(PREFIX)/share/posthorn/conf
	install -m 755 $(BUILD)/bin/posthorn $(DESTDIR)$(PREFIX)/sbin/posthorn
	for d in $(filter-out sendmail,$(DAEMONS)); do install -m 755 $(BUILD)/bin/$$d $(DESTDIR)$(PREFIX)/libexec/posthorn/$$d; done
	install -m 755 $(BUILD)/bin/sendmail $(DESTDIR)$(PREFIX)/sbin/sendmail
	ln -sf sendmail $(DESTDIR)$(PREFIX)/sbin/mailq
	install -m 644 conf/main.cf conf/master.cf $(DESTDIR)$(PREFIX)/share/posthorn/conf/

FUZZ_SECONDS ?= 20
FUZZ_TARGETS = addr attr qfile config mastercf smtp_mime pop3 imap_parse imap_mime
fuzz:
	$(MAKE) BUILD=build/fuzz CC=clang SAN=1 \
		CFLAGS="-fsanitize=fuzzer-no-link" build/fuzz/lib/libglobal.a build/fuzz/lib/libutil.a
	@set -e; for t in $(FUZZ_TARGETS); do \
		clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
			-o build/fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c build/fuzz/lib/libglobal.a \
			build/fuzz/lib/libutil.a $(LDLIBS); \
		mkdir -p build/fuzz/corpus_$$t; \
		echo "== fuzz_$$t ($(FUZZ_SECONDS)s)"; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
			-artifact_prefix=build/fuzz/ build/fuzz/corpus_$$t \
			$$(test -d tests/fuzz/corpus/$$t && echo tests/fuzz/corpus/$$t) 2>&1 | tail -2; \
	done

lint:
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
		--suppress=missingIncludeSystem -Isrc src

clean:
	rm -rf build

.PHONY: all bench deps unit integration test asan test-nodeps run install lint fuzz clean

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
