# bygate - build, test, bench, install. `make run` and `make test` are the
# README's two commands; both install missing Debian packages first (deps).
#
# Layout of the build: everything lands in $(BUILD) (default build/):
#   bygated bygate-child bygate bygate-state, plugins/*.so, lib/*.a, tests/.
# `make asan` builds the same tree into build-asan/ with ASan+UBSan and runs
# the whole suite against it.

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
PYTHON   ?= python3

PKGS     := hiredis libconfig lmdb libevent jansson libcrypto libsystemd libseccomp
DEB_PKGS := build-essential pkg-config libhiredis-dev libconfig-dev liblmdb-dev \
            libevent-dev libjansson-dev libssl-dev libsystemd-dev libseccomp-dev \
            libcmocka-dev redis-server redis-tools python3 tmux postgresql

SAN_FLAGS ?=
OPT       ?= -O2
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -fno-strict-aliasing -D_GNU_SOURCE -I. -Iinclude $(SAN_FLAGS)
LDFLAGS  += $(SAN_FLAGS)

LIB_HIREDIS := -lhiredis
LIB_EVENT   := -levent
LIB_JANSSON := -ljansson
LIB_CONFIG  := -lconfig
LIB_CRYPTO  := -lcrypto
LIB_SYSTEMD := -lsystemd
LIB_LMDB    := -llmdb
LIB_SECCOMP := -lseccomp

OBJ := $(BUILD)/obj
LIBDIR := $(BUILD)/lib

src_of = $(sort $(wildcard $(1)/*.c))
obj_of = $(patsubst %.c,$(OBJ)/%.o,$(1))

COMMON_SRC := $(call src_of,common)
IPC_SRC    := $(call src_of,ipc)
WIRE_SRC   := $(call src_of,wire)
CLUSTER_SRC := $(call src_of,cluster)
CONF_SRC   := $(call src_of,conf)
WS_SRC     := $(call src_of,workspace)
SUP_SRC    := $(call src_of,supervisor)
CHILD_SRC  := $(call src_of,child)
CLIENT_LIB_SRC := $(call src_of,client)
CLI_SRC    := $(call src_of,client/cli)
STATE_SRC  := $(call src_of,state)
STATE_TOOL_SRC := $(call src_of,state/tool)
PLUGIN_SRC := $(call src_of,examples/plugins)
TEST_PLUGIN_SRC := $(call src_of,tests/plugins)
UNIT_SRC   := $(call src_of,tests/unit)
BENCH_SRC  := $(call src_of,bench)

LIB_COMMON := $(LIBDIR)/libbgcommon.a
LIB_IPC    := $(LIBDIR)/libbgipc.a
LIB_WIRE   := $(LIBDIR)/libbgwire.a
LIB_CLUSTER := $(LIBDIR)/libbgcluster.a
LIB_CONF   := $(LIBDIR)/libbgconf.a
LIB_CLIENT := $(LIBDIR)/libbygate.a
LIB_STATE  := $(LIBDIR)/libbgstate.a
LIB_WS     := $(LIBDIR)/libbgworkspace.a

# One archive with everything a libbygate program needs (client, wire,
# conf, common), installed as libbygate.a, so `pkg-config --libs bygate`
# links on its own.
VERSION ?= 0.1.0
LIB_CLIENT_DIST := $(LIBDIR)/libbygate-dist.a
$(LIB_CLIENT_DIST): $(call obj_of,$(CLIENT_LIB_SRC) $(CLUSTER_SRC) $(WIRE_SRC) $(CONF_SRC) $(COMMON_SRC))

BINS    := $(BUILD)/bygated $(BUILD)/bygate-child $(BUILD)/bygate $(BUILD)/bygate-state
# The workflow agent types (docs/workflows.md): one plugin over wire/dag.c.
WF_SRC  := $(call src_of,workflows) wire/dag.c
WF_OBJ  := $(patsubst %.c,$(OBJ)/pic/%.o,$(WF_SRC))
PLUGINS := $(patsubst examples/plugins/%.c,$(BUILD)/plugins/%.so,$(PLUGIN_SRC)) \
           $(BUILD)/plugins/workflows.so
TEST_PLUGINS := $(patsubst tests/plugins/%.c,$(BUILD)/test-plugins/%.so,$(TEST_PLUGIN_SRC))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps user run test test-cluster unit-test integration-test tests asan bench crashtest bench-peers install clean format format-check
MEMWATCH := $(BUILD)/libbygate-memwatch.so
# Client examples (examples/client/*.c): built against the one-archive
# libbygate exactly as an installed program links it (docs/client.md).
CLIENT_EXAMPLES := $(patsubst examples/client/%.c,$(BUILD)/examples/%,$(call src_of,examples/client))
all: $(BINS) $(PLUGINS) $(MEMWATCH) $(LIB_CLIENT_DIST) $(CLIENT_EXAMPLES)

# Objects are never deleted as intermediates: a second `make` (or `make
# install` on a built tree) then rebuilds nothing.
.SECONDARY:

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/examples/plugins/%.o: examples/plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(OBJ)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c $< -o $@

$(OBJ)/tests/plugins/%.o: tests/plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(LIB_COMMON): $(call obj_of,$(COMMON_SRC))
$(LIB_IPC): $(call obj_of,$(IPC_SRC))
$(LIB_WIRE): $(call obj_of,$(WIRE_SRC))
$(LIB_CLUSTER): $(call obj_of,$(CLUSTER_SRC))
$(LIB_CONF): $(call obj_of,$(CONF_SRC))
$(LIB_CLIENT): $(call obj_of,$(CLIENT_LIB_SRC))
$(LIB_STATE): $(call obj_of,$(STATE_SRC))
$(LIB_WS): $(call obj_of,$(WS_SRC))
$(LIBDIR)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

SUP_LIBS := $(LIB_WIRE) $(LIB_CLUSTER) $(LIB_STATE) $(LIB_WS) $(LIB_CONF) $(LIB_IPC) $(LIB_COMMON)
SUP_LDLIBS := $(LIB_HIREDIS) $(LIB_EVENT) $(LIB_JANSSON) $(LIB_CONFIG) $(LIB_CRYPTO) $(LIB_SYSTEMD) $(LIB_LMDB) -lm

$(BUILD)/bygated: $(call obj_of,$(SUP_SRC)) $(SUP_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(SUP_LDLIBS)

# The child exports its bg_ctx_* symbols to the plugins it dlopen()s. Its
# symbols are bound at start (-z now), not lazily in every task process it
# forks (docs/security.md, "What it costs").
$(BUILD)/bygate-child: $(call obj_of,$(CHILD_SRC)) $(LIB_IPC) $(LIB_COMMON)
	$(CC) $(LDFLAGS) -rdynamic -Wl,-z,now -o $@ $^ $(LIB_JANSSON) $(LIB_SECCOMP) -ldl

$(BUILD)/bygate: $(call obj_of,$(CLI_SRC)) $(LIB_CLIENT) $(LIB_CLUSTER) $(LIB_WIRE) $(LIB_CONF) $(LIB_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIB_HIREDIS) $(LIB_JANSSON) $(LIB_CONFIG) $(LIB_CRYPTO)

# bygate-state: state/tool/ over libbgstate, with libbygate's Redis
# connection (client/conn.h).
$(BUILD)/bygate-state: $(call obj_of,$(STATE_TOOL_SRC)) $(LIB_STATE) $(LIB_CLIENT) $(LIB_CLUSTER) $(LIB_CONF) $(LIB_WIRE) $(LIB_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIB_LMDB) $(LIB_HIREDIS) $(LIB_JANSSON) $(LIB_CONFIG) $(LIB_CRYPTO)

# Preloaded into exec programs (docs/security.md, memory_mb): never built
# with the sanitizers, which must not be loaded into a Python process.
$(MEMWATCH): child/preload/memwatch.c child/memwatch.h
	$(CC) $(filter-out $(SAN_FLAGS),$(CFLAGS)) -fPIC -shared -o $@ $< -ldl

$(BUILD)/examples/%: $(OBJ)/examples/client/%.o $(LIB_CLIENT_DIST)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIB_HIREDIS) $(LIB_JANSSON) $(LIB_CONFIG) $(LIB_CRYPTO)

$(BUILD)/plugins/%.so: $(OBJ)/examples/plugins/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $<

$(BUILD)/plugins/workflows.so: $(WF_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(LIB_JANSSON)

$(BUILD)/test-plugins/%.so: $(OBJ)/tests/plugins/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $<

ALL_LIBS := $(LIB_CLIENT) $(LIB_CLUSTER) $(LIB_WIRE) $(LIB_STATE) $(LIB_WS) $(LIB_CONF) $(LIB_IPC) $(LIB_COMMON)
$(BUILD)/tests/%: $(OBJ)/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(SUP_LDLIBS) $(LIB_HIREDIS) -lpthread

# The libFuzzer targets of tests/fuzz/, built with the replay driver
# tests/fuzz/driver.c (no libFuzzer needed) into $(BUILD)/tests/, where the
# unit suite runs them over their seed corpus tests/fuzz/corpus/<target>/.
FUZZ_SRC  := $(filter-out tests/fuzz/driver.c,$(call src_of,tests/fuzz))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/%,$(FUZZ_SRC))
$(BUILD)/tests/fuzz_%: $(OBJ)/tests/fuzz/fuzz_%.o $(OBJ)/tests/fuzz/driver.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(SUP_LDLIBS) $(LIB_HIREDIS)
tests: $(FUZZ_BINS)

# `make fuzz`: the same targets built with clang and libFuzzer (ASan+UBSan)
# into $(FUZZ_BUILD)/fuzz/ and each run for FUZZ_TIME seconds from its seed
# corpus (FUZZ_TARGETS="fuzz_ring fuzz_record" picks some). New inputs go
# to $(FUZZ_BUILD)/corpus/<target>/, a crashing one to
# $(FUZZ_BUILD)/crash-<target>-*, libFuzzer's output to
# $(FUZZ_BUILD)/<target>.log; the last line of each run gives the executions
# and the coverage (cov:). Needs clang (Debian: apt-get install clang);
# `make test` does not: it replays the corpus with gcc (above).
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_TIME    ?= 60
FUZZ_ARGS    ?= -max_len=16384
FUZZ_TARGETS ?= $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
.PHONY: fuzz fuzz-build
$(BUILD)/fuzz/fuzz_%: $(OBJ)/tests/fuzz/fuzz_%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(SUP_LDLIBS) $(LIB_HIREDIS)
fuzz-build:
	@command -v $(FUZZ_CC) >/dev/null || { \
	  echo "fuzz: $(FUZZ_CC) not found (Debian: apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT=-O1 \
	  SAN_FLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(addprefix $(FUZZ_BUILD)/fuzz/,$(FUZZ_TARGETS))
fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "== $$t: $(FUZZ_TIME) s"; \
	  $(FUZZ_BUILD)/fuzz/$$t $(FUZZ_ARGS) -max_total_time=$(FUZZ_TIME) \
	    -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
	    >$(FUZZ_BUILD)/$$t.log 2>&1 || failed="$$failed $$t"; \
	  grep -E '^#[0-9]+' $(FUZZ_BUILD)/$$t.log | tail -n 1; \
	done; \
	if [ -n "$$failed" ]; then \
	  echo "fuzz: crashed:$$failed (see $(FUZZ_BUILD)/<target>.log)"; exit 1; \
	fi

$(BUILD)/bench/%: $(OBJ)/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(SUP_LDLIBS) -lpthread

# ---- set-up -------------------------------------------------------------
# Installs the missing Debian packages when run as root (apt-get update
# first); otherwise prints the exact command and stops.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing || exit 1; \
	  else \
	    echo "deps: missing Debian packages. Run:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# The system user the children run as when bygated is root (pool.user,
# default "bygate"), created as packages do; skipped when not root (bygated
# then keeps its own uid for the children).
POOL_USER ?= bygate
user:
	@if [ "$$(id -u)" = 0 ] && ! getent passwd $(POOL_USER) >/dev/null; then \
	  echo "user: creating the system user $(POOL_USER)"; \
	  useradd --system --no-create-home --home-dir /nonexistent \
	    --shell /usr/sbin/nologin --user-group $(POOL_USER) || exit 1; \
	fi

run: deps user
	@$(MAKE) --no-print-directory all
	$(PYTHON) scripts/run.py --build $(BUILD) --config etc/bygate.conf

test: deps user
	@$(MAKE) --no-print-directory all tests
	$(PYTHON) tests/run.py --build $(BUILD)

unit-test: deps user
	@$(MAKE) --no-print-directory all tests
	$(PYTHON) tests/run.py --build $(BUILD) --unit-only

integration-test: deps user
	@$(MAKE) --no-print-directory all tests
	$(PYTHON) tests/run.py --build $(BUILD) --integration-only

# `make test-cluster`: the end-to-end, flow, control and recovery tests
# again, unchanged, on a private 3-master Redis Cluster (v2 keys;
# docs/cluster.md); a test that checks what only one server has is skipped
# and named. `make test` runs a representative subset of them
# (tests/integration/test_cluster_suite.py) and the cluster's own tests.
CLUSTER_SUITES := test_task_path test_agent_flows test_agent_routes \
  test_control test_recovery test_events test_workflows test_client \
  test_idempotency test_one_run test_suspects test_cancel_counters \
  test_queues test_triggers test_webhooks test_metrics_history \
  test_agent_flows_python
test-cluster: deps user
	@$(MAKE) --no-print-directory all tests
	BYGATE_TEST_REDIS=cluster $(PYTHON) tests/run.py --build $(BUILD) \
	  --integration-only $(foreach s,$(CLUSTER_SUITES),-k $(s).)

tests: $(UNIT_TESTS) $(BINS) $(PLUGINS) $(MEMWATCH) $(TEST_PLUGINS) $(BENCH_BINS)

asan: deps user
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PYTHON) tests/run.py --build build-asan

# The full chaos run (2,000 tasks, 10 kill -9 of bygated, random child kills;
# then with an exec agent sharing children; then on a Redis Cluster whose
# stream's master is killed mid-run);
# `make test` runs a small one (tests/integration/test_chaos.py).
crashtest: deps user
	@$(MAKE) --no-print-directory all tests
	$(PYTHON) tests/crash/chaos.py --build $(BUILD)
	$(PYTHON) tests/crash/chaos.py --build $(BUILD) --shared 8
	$(PYTHON) tests/crash/chaos.py --build $(BUILD) --cluster

bench: deps user
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	$(PYTHON) bench/run.py --build $(BUILD)

# The drain of 20,000 prefilled no-op tasks by bygated (noop plugin) and by
# BullMQ, interleaved, medians (issue 16; bench/README.md). BullMQ is
# installed with npm into bench/peers/node_modules when node is present;
# without node or npm only bygated's drain runs (exit status 0).
bench-peers: deps user
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	$(PYTHON) bench/peers/drain.py --build $(BUILD)

# `make install`: everything under $(DESTDIR)$(PREFIX), and the
# configuration and state directories under $(DESTDIR)$(SYSCONFDIR) and
# $(DESTDIR)$(LOCALSTATEDIR), which follow PREFIX ($(PREFIX)/etc and
# $(PREFIX)/var; /etc and /var for PREFIX=/usr) unless given:
#   bin/bygate bin/bygate-state sbin/bygated
#   libexec/bygate/bygate-child, libbygate-memwatch.so (bygated finds them
#     from its own path, sbin/../libexec/bygate: PREFIX is not compiled in)
#   lib/libbygate.a lib/pkgconfig/bygate.pc include/bygate/*.h
#   lib/bygate/plugins/*.so lib/systemd/system/bygated.service
#   share/bygate/python/ (bygate_agent.py and the example agents),
#   share/bygate/examples/workflows/, share/bygate/grafana/,
#   share/bygate/prometheus/, share/man/, share/doc/bygate/
#   $(SYSCONFDIR)/bygate/bygate.conf.example: etc/bygate.conf with the
#     installed paths (scripts/install_conf.py); it runs as installed
#   $(LOCALSTATEDIR)/lib/bygate/: its state and workspace directory
# Installing rebuilds nothing that `make BUILD=... all` built.
ifeq ($(PREFIX),/usr)
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
else
SYSCONFDIR    ?= $(PREFIX)/etc
LOCALSTATEDIR ?= $(PREFIX)/var
endif
I_BIN     := $(DESTDIR)$(PREFIX)/bin
I_SBIN    := $(DESTDIR)$(PREFIX)/sbin
I_LIBEXEC := $(DESTDIR)$(PREFIX)/libexec/bygate
I_LIB     := $(DESTDIR)$(PREFIX)/lib
I_SHARE   := $(DESTDIR)$(PREFIX)/share/bygate
I_MAN     := $(DESTDIR)$(PREFIX)/share/man
EXAMPLE_AGENTS := $(sort $(wildcard examples/python/*.py))

install: all user
	install -d $(I_BIN) $(I_SBIN) $(I_LIBEXEC) $(I_LIB)/pkgconfig \
	  $(I_LIB)/bygate/plugins $(I_LIB)/systemd/system \
	  $(DESTDIR)$(PREFIX)/include/bygate $(I_SHARE)/python \
	  $(I_SHARE)/examples/workflows $(I_SHARE)/grafana $(I_SHARE)/prometheus \
	  $(I_MAN)/man1 $(I_MAN)/man5 $(I_MAN)/man8 \
	  $(DESTDIR)$(PREFIX)/share/doc/bygate $(DESTDIR)$(SYSCONFDIR)/bygate
	install -d -m 0711 $(DESTDIR)$(LOCALSTATEDIR)/lib/bygate
	install -m 755 $(BUILD)/bygate $(BUILD)/bygate-state $(I_BIN)/
	install -m 755 $(BUILD)/bygated $(I_SBIN)/
	install -m 755 $(BUILD)/bygate-child $(I_LIBEXEC)/
	install -m 644 $(MEMWATCH) $(I_LIBEXEC)/
	install -m 644 $(PLUGINS) $(I_LIB)/bygate/plugins/
	install -m 644 include/bygate/*.h $(DESTDIR)$(PREFIX)/include/bygate/
	install -m 644 $(LIB_CLIENT_DIST) $(I_LIB)/libbygate.a
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	  etc/bygate.pc.in > $(I_LIB)/pkgconfig/bygate.pc
	sed -e 's|/usr/local|$(PREFIX)|g' \
	  -e 's|/etc/bygate/|$(SYSCONFDIR)/bygate/|g' \
	  -e 's|ReadWritePaths=/var/lib/bygate|ReadWritePaths=$(LOCALSTATEDIR)/lib/bygate|' \
	  etc/bygated.service > $(I_LIB)/systemd/system/bygated.service
	install -m 644 $(EXAMPLE_AGENTS) $(I_SHARE)/python/
	install -m 644 examples/workflows/*.json $(I_SHARE)/examples/workflows/
	install -m 644 etc/grafana/*.json $(I_SHARE)/grafana/
	install -m 644 etc/prometheus/*.yml $(I_SHARE)/prometheus/
	$(PYTHON) scripts/install_conf.py --prefix $(PREFIX) \
	  --localstatedir $(LOCALSTATEDIR) \
	  --installed-as $(SYSCONFDIR)/bygate/bygate.conf.example \
	  -o $(DESTDIR)$(SYSCONFDIR)/bygate/bygate.conf.example etc/bygate.conf
	install -m 644 docs/man/bygate.1 docs/man/bygate-state.1 $(I_MAN)/man1/
	install -m 644 docs/man/bygate.conf.5 $(I_MAN)/man5/
	install -m 644 docs/man/bygated.8 $(I_MAN)/man8/
	install -m 644 README.md $(wildcard docs/*.md) $(DESTDIR)$(PREFIX)/share/doc/bygate/

# .clang-format is the style of the tree: on a clean tree `make format`
# changes nothing, and `make format-check` says so (clang-format 14,
# Debian's clang-format package).
format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
