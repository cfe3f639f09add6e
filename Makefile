# gpuscribe build. `make` builds build/gpuscribe and build/vastsim; `make test` builds the
# normal and the sanitizer (ASan+UBSan) variants and runs the unit and integration suites.
# Every library comes through pkg-config. whisper.cpp is optional: when pkg-config finds
# `whisper`, the whisper engine is compiled in (HAVE_WHISPER).

CC      ?= cc
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
PKGS    := libmicrohttpd jansson libssh sqlite3 libcurl libavformat libavcodec libswresample \
           libavutil pocketsphinx sphinxbase
HAVE_WHISPER := $(shell pkg-config --exists whisper 2>/dev/null && echo 1)
ifeq ($(HAVE_WHISPER),1)
PKGS    += whisper
DEFS    += -DHAVE_WHISPER=1
endif
HAVE_PARAKEET := $(shell pkg-config --exists parakeet 2>/dev/null && echo 1)
ifeq ($(HAVE_PARAKEET),1)
PKGS    += parakeet
DEFS    += -DHAVE_PARAKEET=1
endif

PKG_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PKGS)))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
WARN    := -Wall -Wextra -Werror -Wvla -Wstrict-prototypes -Wshadow=local
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(DEFS) -Isrc $(PKG_CFLAGS) -MMD -MP \
              -DGS_VERSION=\"$(VERSION)\" -DGS_SRCDIR=\"$(CURDIR)\"
LDLIBS  := $(PKG_LIBS) -lpthread -ldl -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS      := $(shell find src -name '*.c' ! -name main.c | sort)
CORE_SRCS := src/core/util.c src/core/log.c   # what tools/ link (no app modules)
TEST_SRCS := $(sort $(wildcard tests/unit/*.c))
SIM_SRCS  := $(sort $(wildcard tools/vastsim/*.c))

obj = $(patsubst %.c,$(1)/obj/%.o,$(2))

MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)

.PHONY: all asan test unit itest bench demo clean setup fuzz valgrind-test
all: build/gpuscribe build/vastsim

asan: build/asan/gpuscribe build/asan/unit_tests build/asan/vastsim

# ---- normal build
build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

build/gpuscribe: $(call obj,build,$(SRCS) src/main.c)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/unit_tests: $(call obj,build,$(SRCS) $(TEST_SRCS))
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/vastsim: $(call obj,build,$(CORE_SRCS) $(SIM_SRCS))
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# ---- sanitizer build (ASan + UBSan)
build/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-SAN  $<')
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN) -O1 -c $< -o $@

build/asan/gpuscribe: $(call obj,build/asan,$(SRCS) src/main.c)
	@$(if $(Q),echo '  LD-SAN  $@')
	$(Q)$(CC) $(SAN) -o $@ $^ $(LDLIBS)

build/asan/unit_tests: $(call obj,build/asan,$(SRCS) $(TEST_SRCS))
	@$(if $(Q),echo '  LD-SAN  $@')
	$(Q)$(CC) $(SAN) -o $@ $^ $(LDLIBS)

build/asan/vastsim: $(call obj,build/asan,$(CORE_SRCS) $(SIM_SRCS))
	@$(if $(Q),echo '  LD-SAN  $@')
	$(Q)$(CC) $(SAN) -o $@ $^ $(LDLIBS)

# ---- tests
export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS  ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

unit: build/unit_tests build/asan/unit_tests
	build/unit_tests $(T)
	build/asan/unit_tests $(T)

itest: all asan
	GS_BIN=$(CURDIR)/build/asan/gpuscribe GS_SIM=$(CURDIR)/build/asan/vastsim \
	  tests/integration/run.sh $(T)

test: all asan build/unit_tests
	tests/run-all.sh

bench: all
	bench/run.sh

demo: all
	tools/demo.sh

setup:
	scripts/setup.sh --test

clean:
	rm -rf build

include tests/hardening.mk   # fuzz, fuzz-regress, tsan-test, valgrind-test

-include $(shell find build -name '*.d' 2>/dev/null)
