# hardening.mk: fuzzing and sanitizer/tool targets, included by the Makefile.
#
#   make fuzz            build every libFuzzer driver (clang) and run each for FUZZ_SECONDS
#                        (default 30) on its seed corpus; crashes land in build/fuzz/crashes/
#   make fuzz-regress    replay every seed and regression input once (no fuzzing)
#   make fuzz-build      only build the drivers (build/fuzz/fuzz_<target>)
#   make tsan-test       ThreadSanitizer build: unit tests, a threaded smoke against serve, and
#                        the integration suites that drive serve's threads hardest
#                        (TSAN_SUITES: jobs, vast, provision, hung_peers) with serve built
#                        with TSan; any report fails the suite (stop_server reads the log)
#   make valgrind-test   unit tests under valgrind (leaks and memory errors are failures)
#
# FUZZ_TARGETS=env make fuzz    runs one target; FUZZ_JOBS=2 runs two at a time.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_JOBS    ?= 1
FUZZ_TARGETS ?= env vast transcript wav http audio
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# clang does not know gcc's -Wshadow=local; -Wshadow would flag far more than we enforce
FUZZ_CFLAGS  := $(filter-out -Wshadow=local,$(ALL_CFLAGS)) $(FUZZ_SAN) -O1 -g \
                -fsanitize=fuzzer-no-link -Wno-unknown-warning-option
# Drivers that #include a module's .c (to reach its static parser) do not link its object.
FUZZ_OWN_wav := src/worker/worker.c

.PHONY: fuzz fuzz-build fuzz-regress tsan-test valgrind-test

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-FUZZ $<')
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

build/fuzz/fuzz_%: build/fuzz/obj/tests/fuzz/fuzz_%.o $(call obj,build/fuzz,$(SRCS))
	@$(if $(Q),echo '  LD-FUZZ $@')
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< \
	    $(filter-out $(call obj,build/fuzz,$(FUZZ_OWN_$*)),$(call obj,build/fuzz,$(SRCS))) $(LDLIBS)

FUZZ_ALL := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
.SECONDARY: $(call obj,build/fuzz,$(SRCS) $(wildcard tests/fuzz/fuzz_*.c))

fuzz-build: $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh fuzz $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	tests/fuzz/run.sh regress $(FUZZ_TARGETS)

# ---- ThreadSanitizer (gcc): unit tests and a threaded smoke of the server
TSAN := -fsanitize=thread -fno-omit-frame-pointer
build/tsan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-TSAN $<')
	$(Q)$(CC) $(ALL_CFLAGS) $(TSAN) -O1 -c $< -o $@

build/tsan/gpuscribe: $(call obj,build/tsan,$(SRCS) src/main.c)
	@$(if $(Q),echo '  LD-TSAN $@')
	$(Q)$(CC) $(TSAN) -o $@ $^ $(LDLIBS)

build/tsan/unit_tests: $(call obj,build/tsan,$(SRCS) $(TEST_SRCS))
	@$(if $(Q),echo '  LD-TSAN $@')
	$(Q)$(CC) $(TSAN) -o $@ $^ $(LDLIBS) $(TEST_LIBS)

TSAN_SUITES ?= jobs vast provision hung_peers
TSAN_ENV := TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp"

tsan-test: build/tsan/gpuscribe build/tsan/unit_tests build/vastsim
	$(TSAN_ENV) build/tsan/unit_tests $(T)
	GS_BIN=$(CURDIR)/build/tsan/gpuscribe tests/tsan_smoke.sh
	@set -e; for s in $(TSAN_SUITES); do \
	  $(TSAN_ENV) GS_BIN=$(CURDIR)/build/tsan/gpuscribe GS_SIM=$(CURDIR)/build/vastsim \
	    tests/integration/run.sh $$s; done

# ---- valgrind: the normal unit-test build (sanitizer builds do not run under valgrind)
valgrind-test: build/unit_tests
	tests/valgrind.sh $(T)
