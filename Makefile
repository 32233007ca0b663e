# Amanat -- top-level build.
#
#   make            build the daemons and the amanat CLI into build/
#   make deps       install the Debian packages (idempotent; prints the
#                   apt-get command when not root)
#   make run        create the demo node in ./var on first use, start it
#   make check      ASan+UBSan build, cmocka unit tests, pytest e2e tests
#   make fuzz       libFuzzer targets (clang), each run for FUZZ_SECONDS
#   make bench      benchmarks (figures printed)
#   make lint       layout rules (no service includes another's headers)
#
# Sources are found by wildcard: a new common/foo.c or tests/unit/test_x_y.c
# needs no edit here.

BUILD	?= build
SAN	?= 0
CC	?= cc

PKGS	= openssl libevent libevent_openssl libevent_pthreads jansson lmdb \
	  libargon2 zlib libbsd libunbound
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN	= -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith \
	  -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
CFLAGS	?= -O2 -g
CFLAGS	+= -std=c11 -D_GNU_SOURCE -fPIE -pthread $(WARN) -I. $(PKG_CFLAGS)
LDFLAGS	+= -pie -pthread
# libetpan's pkg-config adds -specs=no-pie-link.specs, which breaks -pie.
ETPAN_LIBS := $(filter-out -specs=%,$(shell pkg-config --libs libetpan 2>/dev/null))
# libunistring (IMAP SEARCH case folding) has no pkg-config file.
LIBS	= $(PKG_LIBS) $(ETPAN_LIBS) -lunistring -lpthread

ifeq ($(SAN),1)
CFLAGS	+= -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif

# ---------------------------------------------------------------- sources
COMMON_SRC	= $(wildcard common/*.c)
KS_SRC		= $(filter-out keyservice/main.c,$(wildcard keyservice/*.c))
MAIL_SRC	= $(filter-out mailsrv/main.c,$(wildcard mailsrv/*.c mailsrv/*/*.c))
DOC_SRC		= $(filter-out docstore/main.c,$(wildcard docstore/*.c))
CLI_SRC		= $(filter-out keyservice/cli/amanat.c,$(wildcard keyservice/cli/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOMMON	= $(BUILD)/libcommon.a
LIBKS		= $(BUILD)/libkeyservice.a
LIBMAIL		= $(BUILD)/libmailsrv.a
LIBDOC		= $(BUILD)/libdocstore.a
LIBCLI		= $(BUILD)/libcli.a

PROGS	= $(BUILD)/keyservice $(BUILD)/mailsrv $(BUILD)/docstore $(BUILD)/amanat

UNIT_SRC	= $(wildcard tests/unit/test_*.c)
# Test tools the e2e tests run (read the encrypted store and queue).
TOOLS		= $(BUILD)/tools/store_dump $(BUILD)/tools/audit_tamper
UNIT_BIN	= $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps run check unit e2e fuzz bench lint clean distclean tools
all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBKS): $(call obj,$(KS_SRC))
$(LIBMAIL): $(call obj,$(MAIL_SRC))
$(LIBDOC): $(call obj,$(DOC_SRC))
$(LIBCLI): $(call obj,$(CLI_SRC))
$(BUILD)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/keyservice: $(call obj,keyservice/main.c) $(LIBKS) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/mailsrv: $(call obj,mailsrv/main.c) $(LIBMAIL) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/docstore: $(call obj,docstore/main.c) $(LIBDOC) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/amanat: $(call obj,keyservice/cli/amanat.c) $(LIBCLI) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# A unit test test_<dir>_<module>.c links its directory's library and
# libcommon; cmocka comes from pkg-config.
UNIT_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)
unitlib = $(if $(filter test_keyservice_%,$(1)),$(LIBKS),$(if $(filter test_mailsrv_%,$(1)),$(LIBMAIL),$(if $(filter test_docstore_%,$(1)),$(LIBDOC),$(if $(filter test_cli_%,$(1)),$(LIBCLI)))))
.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $$(call unitlib,%) \
    $(call obj,tests/unit/testutil.c) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(UNIT_LIBS)

# the queue's and the store's unit tests share fixtures
$(BUILD)/tests/test_mailsrv_store $(BUILD)/tests/test_mailsrv_store_files \
    $(BUILD)/tests/test_mailsrv_store_mbox: \
    $(call obj,tests/unit/store_fx.c)
$(BUILD)/tests/test_mailsrv_queue $(BUILD)/tests/test_mailsrv_queue_recover: \
    $(call obj,tests/unit/queue_fx.c)

$(BUILD)/tools/store_dump: $(call obj,tests/tools/store_dump.c) $(LIBMAIL) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tools/audit_tamper: $(call obj,tests/tools/audit_tamper.c) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

tools: $(TOOLS)

# ---------------------------------------------------------------- deps
# Every Debian package the build, the tests and the demo need.
DEBS = make gcc clang libc6-dev pkg-config ca-certificates \
	libssl-dev openssl libgit2-dev liblmdb-dev lmdb-utils libetpan-dev \
	zlib1g-dev libevent-dev libjansson-dev libargon2-dev libcmocka-dev \
	libbsd-dev libunbound-dev libunistring-dev python3 python3-pytest curl swaks \
	libnet-ssleay-perl isync git procps

deps:
	@missing=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' \
	    $(DEBS) 2>/dev/null | awk '$$1 == "ii" { print $$2 }' | \
	    sort > .deps.have; \
	    for p in $(DEBS); do grep -qx "$$p" .deps.have || echo $$p; done); \
	rm -f .deps.have; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "missing packages; run as root:"; \
		echo "  apt-get update && apt-get install -y --no-install-recommends" $$missing; \
		exit 1; \
	fi; \
	echo "installing:" $$missing; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q && \
	apt-get install -y -q --no-install-recommends $$missing

# ---------------------------------------------------------------- demo
run: deps
	@$(MAKE) --no-print-directory all
	@conf/demo-node ./var $(BUILD)

# ---------------------------------------------------------------- tests
PYTHON	= /usr/bin/python3
SANBUILD = build/asan
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

check: deps
	@$(MAKE) --no-print-directory BUILD=$(SANBUILD) SAN=1 all unit-bins tools
	@$(MAKE) --no-print-directory lint
	@tests/run-all $(SANBUILD) $(PYTHON)

unit-bins: $(UNIT_BIN)

# Run only the unit tests, or only the e2e tests, of the normal build.
unit: all unit-bins
	@tests/run-all $(BUILD) $(PYTHON) unit
e2e: all tools
	@tests/run-all $(BUILD) $(PYTHON) e2e

FUZZ_SECONDS ?= 60
fuzz:
	@tests/fuzz/run $(FUZZ_SECONDS)

bench: all
	@bench/run $(BUILD)

lint:
	@tests/lint

clean:
	rm -rf build
distclean: clean
	rm -rf var
