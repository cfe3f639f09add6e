# gpuscribe build. `make` builds build/gpuscribe (the controller), build/gpuscribe-worker
# (the lean worker), the worker's source bundle and build/vastsim; `make test` builds the
# normal and the sanitizer (ASan+UBSan) variants and runs the unit and integration suites.
# Every library comes through pkg-config. whisper.cpp is optional: when pkg-config finds
# `whisper`, the whisper engine is compiled in (HAVE_WHISPER).
#
# `make worker` builds only build/gpuscribe-worker, from WORKER_SRCS, with libmicrohttpd,
# jansson, libcurl and whichever engine libraries pkg-config finds (pocketsphinx, whisper):
# no FFmpeg, libssh or SQLite. It is what remote/setup.sh runs on a GPU instance, from the
# source bundle build/gpuscribe-src.tar.gz (exactly WORKER_BUNDLE; its sha256 in
# build/gpuscribe-src.id), and it must build with Debian 11 / Ubuntu 22.04's gcc and libraries.

CC      ?= cc
VERSION := $(shell cat VERSION 2>/dev/null || git describe --always --dirty 2>/dev/null || echo dev)
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
WARN    := -Wall -Wextra -Werror -Wvla -Wstrict-prototypes -Wshadow=local
CFLAGS  ?= -O2 -g
HAVE_WHISPER := $(shell pkg-config --exists whisper 2>/dev/null && echo 1)
HAVE_SPHINX  := $(shell pkg-config --exists pocketsphinx sphinxbase 2>/dev/null && echo 1)

# only worker goals (the GPU image has none of the controller's libraries): skip its flags
WORKER_GOALS := worker build/gpuscribe-worker clean
WORKER_ONLY  := $(if $(MAKECMDGOALS),$(if $(filter-out $(WORKER_GOALS),$(MAKECMDGOALS)),,1))

PKGS    := libmicrohttpd jansson libssh sqlite3 libcurl libavformat libavcodec libswresample \
           libavutil pocketsphinx sphinxbase
DEFS    += -DHAVE_SPHINX=1
ifeq ($(HAVE_WHISPER),1)
PKGS    += whisper
DEFS    += -DHAVE_WHISPER=1
endif
HAVE_PARAKEET := $(shell pkg-config --exists parakeet 2>/dev/null && echo 1)
ifeq ($(HAVE_PARAKEET),1)
PKGS    += parakeet
DEFS    += -DHAVE_PARAKEET=1
endif

# FFmpeg and pocketsphinx are compiled against (their -dev headers) but not linked: the
# controller opens them with dlopen on first use (src/audio/ffmpeg_dl.c,
# src/engine/sphinx_dl.c), by the sonames the -dev packages' .so links point at, read here.
DL_PKGS := libavformat libavcodec libswresample libavutil pocketsphinx sphinxbase
soname = $(shell f=$$(readlink -f "$$(pkg-config --variable=libdir $(1))/$(2).so") && \
                 objdump -p "$$f" 2>/dev/null | awk '$$1 == "SONAME" { print $$2 }')

ifneq ($(WORKER_ONLY),1)
PKG_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PKGS)))
PKG_LIBS   := $(shell pkg-config --libs $(filter-out $(DL_PKGS),$(PKGS)))
SONAMES := AVUTIL=$(call soname,libavutil,libavutil) AVCODEC=$(call soname,libavcodec,libavcodec) \
           AVFORMAT=$(call soname,libavformat,libavformat) \
           SWRESAMPLE=$(call soname,libswresample,libswresample) \
           SPHINXBASE=$(call soname,sphinxbase,libsphinxbase) \
           POCKETSPHINX=$(call soname,pocketsphinx,libpocketsphinx)
$(foreach s,$(SONAMES),$(if $(filter %=,$(s)),$(error cannot read the soname for $(s): \
    is its -dev package installed (and objdump, from binutils)?)))
DEFS += -DGS_SPHINX_DLOPEN=1 $(foreach s,$(SONAMES),-DGS_SONAME_$(firstword $(subst =, ,$(s)))=\"$(lastword $(subst =, ,$(s)))\")
endif
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(DEFS) -Isrc $(PKG_CFLAGS) -MMD -MP \
              -DGS_VERSION=\"$(VERSION)\" -DGS_SRCDIR=\"$(CURDIR)\"
LDLIBS  := $(PKG_LIBS) -lpthread -ldl -lm

# ---- the lean worker: its sources, libraries and bundle
WORKER_SRCS := src/core/util.c src/core/log.c src/core/err.c src/core/config.c src/core/gpu.c src/core/metrics.c src/http/http.c \
               src/transcript/transcript.c $(sort $(wildcard src/engine/*.c)) \
               src/vast/vast.c src/vast/vast_http.c src/vast/vast_json.c \
               src/worker/worker.c src/cli/worker.c src/worker/main.c
WORKER_HDRS := $(sort $(wildcard $(WORKER_SRCS:.c=.h)) src/cli/cli.h src/engine/engine_impl.h \
               src/vast/vast_int.h)
WORKER_BUNDLE := Makefile VERSION remote/setup.sh $(WORKER_SRCS) $(WORKER_HDRS)
WORKER_PKGS := libmicrohttpd jansson libcurl
WORKER_DEFS :=
ifeq ($(HAVE_SPHINX),1)
WORKER_PKGS += pocketsphinx sphinxbase
WORKER_DEFS += -DHAVE_SPHINX=1
endif
ifeq ($(HAVE_WHISPER),1)
WORKER_PKGS += whisper
WORKER_DEFS += -DHAVE_WHISPER=1
endif
ifeq ($(HAVE_PARAKEET),1)
WORKER_PKGS += parakeet
WORKER_DEFS += -DHAVE_PARAKEET=1
endif
WORKER_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(WORKER_DEFS) -Isrc \
                 $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(WORKER_PKGS))) -MMD -MP \
                 -DGS_VERSION=\"$(VERSION)\" -DGS_SRCDIR=\"$(CURDIR)\"
WORKER_LIBS   := $(shell pkg-config --libs $(WORKER_PKGS)) -lpthread -ldl -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS      := $(shell find src -name '*.c' ! -name main.c | sort)   # leaves out every main.c (src/, src/worker/)
CORE_SRCS := src/core/util.c src/core/log.c   # what tools/ link (no app modules)
TEST_SRCS := $(sort $(wildcard tests/unit/*.c))
SIM_SRCS  := $(sort $(wildcard tools/vastsim/*.c))

obj = $(patsubst %.c,$(1)/obj/%.o,$(2))

MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)

.PHONY: all asan test unit itest bench demo clean setup fuzz valgrind-test worker
all: build/gpuscribe build/gpuscribe-worker build/gpuscribe-src.tar.gz build/vastsim

worker: build/gpuscribe-worker

# ---- the lean worker (own objects: its engine set can differ from the controller's)
build/worker/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-WRK  $<')
	$(Q)$(CC) $(WORKER_CFLAGS) -c $< -o $@

build/gpuscribe-worker: $(call obj,build/worker,$(WORKER_SRCS))
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(WORKER_LIBS)

# the source bundle the controller sends to instances: deterministic (sorted, fixed times and
# owners, gzip -n), so its sha256 (build/gpuscribe-src.id) names the source it builds
build/gpuscribe-src.tar.gz: $(filter-out VERSION,$(WORKER_BUNDLE))
	@mkdir -p build
	@$(if $(Q),echo '  BUNDLE  $@')
	$(Q)t=$$(mktemp -d) && cp --parents $(filter-out VERSION,$(WORKER_BUNDLE)) $$t/ && \
	  printf '%s\n' '$(VERSION)' >$$t/VERSION && \
	  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C $$t -cf - \
	    $(WORKER_BUNDLE) | gzip -n -9 >$@.tmp && rm -rf $$t && \
	  sha256sum $@.tmp | cut -d' ' -f1 >build/gpuscribe-src.id && mv -f $@.tmp $@

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

unit: build/unit_tests build/asan/unit_tests build/gpuscribe-worker build/gpuscribe-src.tar.gz
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

-include tests/hardening.mk  # fuzz, fuzz-regress, tsan-test, valgrind-test (not in the worker bundle)

-include $(shell find build -name '*.d' 2>/dev/null)
