# codervpnd — native Linux tunnel for Coder Connect.
#
#   make               build codervpnd and codervpnctl into build/
#   make check         install test dependencies (Debian, as root), run every test,
#                      then the whole suite again under ASan+UBSan
#   make demo          install dependencies, build, run the demo
#   make fuzz          run the libFuzzer targets for FUZZ_SECONDS each
#   make bench         run the benchmarks in bench/

BUILD ?= build
PYTHON ?= /usr/bin/python3
CC ?= cc
FUZZ_SECONDS ?= 60

PKGS = libprotobuf-c libmnl libnl-route-3.0 libsystemd libcurl libsodium json-c
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
PROTO_INCLUDE ?= /usr/include

WARN = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
       -Wno-unused-parameter
CFLAGS ?= -O2 -g
ifeq ($(SANITIZE),1)
CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -D_GNU_SOURCE -MMD -MP \
             -I$(BUILD)/proto -Icommon -Iagent -Inetlink -Iresolved $(PKG_CFLAGS)

PROTOS = $(BUILD)/proto/vpn.pb-c.c $(BUILD)/proto/google/protobuf/timestamp.pb-c.c \
         $(BUILD)/proto/google/protobuf/duration.pb-c.c
AGENT_LIB_SRC = $(filter-out agent/codervpnd.c agent/codervpnctl.c,$(wildcard agent/*.c))
NETLINK_SRC = $(wildcard netlink/*.c)
RESOLVED_SRC = $(wildcard resolved/*.c)
LIB_OBJ = $(PROTOS:.c=.o) $(patsubst %.c,$(BUILD)/%.o,$(AGENT_LIB_SRC) $(NETLINK_SRC) $(RESOLVED_SRC))
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all check check-run check-unit check-python check-integration check-asan check-kernel lint \
        demo demo-run fuzz bench deps clean
all: $(BUILD)/codervpnd $(BUILD)/codervpnctl

$(BUILD)/proto/vpn.pb-c.c: proto/vpn.proto
	@mkdir -p $(BUILD)/proto
	protoc-c --c_out=$(BUILD)/proto -Iproto -I$(PROTO_INCLUDE) proto/vpn.proto \
		$(PROTO_INCLUDE)/google/protobuf/timestamp.proto $(PROTO_INCLUDE)/google/protobuf/duration.proto
$(BUILD)/proto/vpn.pb-c.h: $(BUILD)/proto/vpn.pb-c.c ;
$(BUILD)/proto/google/protobuf/%.pb-c.c: $(BUILD)/proto/vpn.pb-c.c ;

$(BUILD)/py/vpn_pb2.py: proto/vpn.proto
	@mkdir -p $(BUILD)/py
	protoc --python_out=$(BUILD)/py -Iproto proto/vpn.proto

# Generated code is not ours to warn about.
$(BUILD)/proto/%.o: $(BUILD)/proto/%.c
	$(CC) -std=gnu11 $(CFLAGS) -I$(BUILD)/proto $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/agent/%.o: agent/%.c $(BUILD)/proto/vpn.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/netlink/%.o: netlink/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/resolved/%.o: resolved/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c $(BUILD)/proto/vpn.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags cmocka) -c -o $@ $<

$(BUILD)/libagent.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/codervpnd: $(BUILD)/agent/codervpnd.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/codervpnctl: $(BUILD)/agent/codervpnctl.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)
$(BUILD)/tests/pbcodec: $(BUILD)/tests/tools/pbcodec.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/netapply: $(BUILD)/tests/tools/netapply.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/netcfg-tool: $(BUILD)/tests/tools/netcfg-tool.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/wgtool: $(BUILD)/tests/tools/wgtool.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/resolvconf-tool: $(BUILD)/tests/tools/resolvconf-tool.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/resolvedtool: $(BUILD)/tests/tools/resolvedtool.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/dnsresponder-tool: $(BUILD)/tests/tools/dnsresponder-tool.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/derpconn-tool: $(BUILD)/tests/tools/derpconn-tool.o $(BUILD)/tests/tools/toolcmd.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/derpclient-tool: $(BUILD)/tests/tools/derpclient-tool.o $(BUILD)/tests/tools/toolcmd.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/tests/pathmgr-tool: $(BUILD)/tests/tools/pathmgr-tool.o $(BUILD)/tests/tools/toolcmd.o $(BUILD)/libagent.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

deps:
	tools/install-deps

# The README's test command: everything, on a fresh Debian machine.
check: deps
	$(MAKE) lint
	$(MAKE) check-run
	$(MAKE) check-kernel
	$(MAKE) check-asan
	$(MAKE) fuzz FUZZ_SECONDS=10

check-run: check-unit check-python check-integration

check-unit: $(UNIT_BIN)
	@failed=""; for t in $(UNIT_BIN); do echo "== $$t"; $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "unit tests failed:$$failed"; exit 1; fi

check-python: $(BUILD)/tests/pbcodec $(BUILD)/py/vpn_pb2.py
	PYTHONPATH=$(BUILD)/py PBCODEC=$(BUILD)/tests/pbcodec \
		$(PYTHON) -m pytest -q tests/proto

TEST_TOOLS = $(BUILD)/tests/netapply $(BUILD)/tests/netcfg-tool $(BUILD)/tests/wgtool \
             $(BUILD)/tests/resolvconf-tool $(BUILD)/tests/resolvedtool $(BUILD)/tests/dnsresponder-tool \
             $(BUILD)/tests/derpconn-tool $(BUILD)/tests/pathmgr-tool
TEST_ENV = PYTHONPATH=$(BUILD)/py:tests/integration CODERVPND=$(BUILD)/codervpnd \
           CODERVPNCTL=$(BUILD)/codervpnctl NETAPPLY=$(BUILD)/tests/netapply \
           NETCFG_TOOL=$(BUILD)/tests/netcfg-tool WGTOOL=$(BUILD)/tests/wgtool \
           RESOLVCONF_TOOL=$(BUILD)/tests/resolvconf-tool RESOLVEDTOOL=$(BUILD)/tests/resolvedtool \
           DNSRESPONDER_TOOL=$(BUILD)/tests/dnsresponder-tool DERPCONN_TOOL=$(BUILD)/tests/derpconn-tool \
           PATHMGR_TOOL=$(BUILD)/tests/pathmgr-tool
TEST_TOOLS += $(BUILD)/tests/derpclient-tool
TEST_ENV += DERPCLIENT_TOOL=$(BUILD)/tests/derpclient-tool

check-integration: all $(TEST_TOOLS) $(BUILD)/py/vpn_pb2.py
	$(TEST_ENV) $(PYTHON) -m pytest -q tests/integration

check-asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 check-run

# The kernel WireGuard path, in a qemu VM booting a Debian kernel (tests/vm/README.md).
# The guest's / is read-only: /etc/netns must exist for the tests' tmpfs over it.
KERNEL_TESTS = tests/integration/test_netapply.py tests/integration/test_wg_kernel.py \
               tests/integration/test_derp_path.py tests/integration/test_engine.py \
               tests/integration/test_standalone_manager.py
check-kernel: all $(TEST_TOOLS) $(BUILD)/py/vpn_pb2.py
	mkdir -p /etc/netns
	tests/vm/vm-run -t 1500 -- env CODERVPN_WG_MODE=kernel $(TEST_ENV) \
		$(PYTHON) -m pytest -q -p no:cacheprovider $(KERNEL_TESTS)

FUZZ_CFLAGS = -std=gnu11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
              -I$(BUILD)/fuzz/proto -Icommon -Iagent -Inetlink -Iresolved $(PKG_CFLAGS)
FUZZ_LIB_SRC = $(AGENT_LIB_SRC) $(NETLINK_SRC) $(RESOLVED_SRC)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC) $(BUILD)/proto/vpn.pb-c.c
	@mkdir -p $(BUILD)/fuzz/proto
	cp -r $(BUILD)/proto/. $(BUILD)/fuzz/proto/
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(patsubst $(BUILD)/%,$(BUILD)/fuzz/%,$(PROTOS)) $(PKG_LIBS)

fuzz: $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
	@set -e; for f in $^; do \
		name=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$name; \
		echo "== $$name for $(FUZZ_SECONDS) s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/fuzz/corpus-$$name tests/fuzz/seeds/$$name; \
	done

# Benchmarks (bench/README.md): routes on this machine, WireGuard in the VM's kernel.
bench: all $(TEST_TOOLS) $(BUILD)/py/vpn_pb2.py
	$(PYTHON) bench/bench_routes.py $(BUILD)
	tests/vm/vm-run -t 1200 -- $(PYTHON) -u bench/bench_wg.py $(BUILD)
	$(PYTHON) -u bench/bench_derp.py $(BUILD)
	tests/vm/vm-run -t 1200 -- env CODERVPN_WG_MODE=kernel $(PYTHON) -u bench/bench_derp.py $(BUILD)

demo: deps
	$(MAKE) all
	tools/demo $(BUILD)

# Static analysis. cppcheck does not know __attribute__((cleanup)), which owns every
# resource here, so its leak checkers only report false positives.
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
		--suppress=missingIncludeSystem --suppress=memleak --suppress=resourceLeak \
		-Icommon -Iagent -Inetlink -Iresolved -I$(BUILD)/proto agent/ netlink/ resolved/

# Installing (README "Installing and packaging"). Unit, sysusers and tmpfiles directories
# come from systemd's pkg-config file (/lib/systemd/system on Debian 12), else the usual ones.
PREFIX ?= /usr
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/codervpnd
systemd_var = $(or $(shell pkg-config --variable=$(1) systemd 2>/dev/null),$(2))
SYSTEMDUNITDIR ?= $(call systemd_var,systemdsystemunitdir,/usr/lib/systemd/system)
SYSUSERSDIR ?= $(call systemd_var,sysusersdir,/usr/lib/sysusers.d)
TMPFILESDIR ?= $(call systemd_var,tmpfilesdir,/usr/lib/tmpfiles.d)
NETWORKDDIR ?= /usr/lib/systemd/network
NMCONFDIR ?= /usr/lib/NetworkManager/conf.d

.PHONY: install package
install: all
	install -D -m 0755 $(BUILD)/codervpnd $(DESTDIR)$(SBINDIR)/codervpnd
	install -D -m 0755 $(BUILD)/codervpnctl $(DESTDIR)$(BINDIR)/codervpnctl
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/sbin/codervpnd|$(SBINDIR)/codervpnd|g' systemd/codervpnd.service \
		>$(DESTDIR)$(SYSTEMDUNITDIR)/codervpnd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/codervpnd.service
	install -D -m 0644 systemd/codervpnd.sysusers $(DESTDIR)$(SYSUSERSDIR)/codervpnd.conf
	install -D -m 0644 systemd/codervpnd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/codervpnd.conf
	install -D -m 0644 systemd/50-codervpnd.network $(DESTDIR)$(NETWORKDDIR)/50-codervpnd.network
	install -D -m 0644 systemd/NetworkManager-codervpnd.conf $(DESTDIR)$(NMCONFDIR)/codervpnd.conf
	install -D -m 0644 man/codervpnd.8 $(DESTDIR)$(MANDIR)/man8/codervpnd.8
	install -D -m 0644 man/codervpnctl.1 $(DESTDIR)$(MANDIR)/man1/codervpnctl.1
	if [ -f man/codervpnd.conf.5 ]; then \
		install -D -m 0644 man/codervpnd.conf.5 $(DESTDIR)$(MANDIR)/man5/codervpnd.conf.5; fi
	if [ -f examples/codervpnd.conf ]; then \
		install -D -m 0644 examples/codervpnd.conf $(DESTDIR)$(DOCDIR)/examples/codervpnd.conf; fi

# The Debian package, built in a copy of the tree (tracked and new files, nothing ignored)
# so that this one stays clean; the .deb lands in $(BUILD)/. Our make variables (BUILD,
# SANITIZE=1 from check-asan) must not reach the package build through MAKEFLAGS.
package:
	@mkdir -p $(BUILD)
	@set -e; tmp=$$(mktemp -d /tmp/codervpnd-pkg.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/src"; \
	git ls-files -co --exclude-standard | while read -r f; do [ ! -e "$$f" ] || echo "$$f"; done | \
		tar -T - -cf - | tar -xf - -C "$$tmp/src"; \
	(cd "$$tmp/src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u SANITIZE \
		dpkg-buildpackage -us -uc -b); \
	rm -f $(BUILD)/codervpnd_*.deb $(BUILD)/codervpnd-dbgsym_*.deb; \
	cp "$$tmp"/*.deb "$$tmp"/*.buildinfo "$$tmp"/*.changes $(BUILD)/; \
	ls -l $(BUILD)/*.deb

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
