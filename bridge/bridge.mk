# bridge/bridge.mk - the sse-bridge daemon; included by the top-level Makefile
# after PGXS.  Objects go to bridge/build/ with the bridge's own flags (PGXS
# CFLAGS are for the server module and are not used here).
#
#   make                 builds bridge/sse-bridge and its man page
#                        bridge/sse-bridge.8 (part of `all`)
#   make install         installs it into $(BRIDGE_BINDIR) (default: /usr/local/bin,
#                        a directory on PATH; PostgreSQL's bindir is not)
#   make clean           removes it
#   make bridge-asan     builds bridge/build/asan/sse-bridge with ASan+UBSan

BRIDGE_CC      ?= $(if $(filter clang%,$(notdir $(CC))),$(CC),cc)
BRIDGE_PKGS    := libuv jansson libpq libcrypto libsystemd
BRIDGE_PKGCF   := $(shell pkg-config --cflags $(BRIDGE_PKGS) 2>/dev/null)
BRIDGE_PKGLIBS := $(shell pkg-config --libs $(BRIDGE_PKGS) 2>/dev/null)
BRIDGE_CFLAGS  ?= -O2 -g
BRIDGE_LDFLAGS ?=
BRIDGE_WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
BRIDGE_DEFS    := -D_GNU_SOURCE -Isrc -Ibridge $(if $(BRIDGE_PKGCF),$(BRIDGE_PKGCF),-I$(shell pg_config --includedir 2>/dev/null))
BRIDGE_LIBS    := $(if $(BRIDGE_PKGLIBS),$(BRIDGE_PKGLIBS),-luv -ljansson -lpq -lcrypto -lsystemd) -lhttp_parser
BRIDGE_SRCS    := $(sort $(wildcard bridge/*.c))
BRIDGE_SHARED  := src/sse_match.c src/sse_filter.c
BRIDGE_ASSETS  := client/sse-bridge.js client/sse-bridge.d.ts client/demo.html
BRIDGE_OBJS    := $(patsubst bridge/%.c,bridge/build/%.o,$(BRIDGE_SRCS)) \
                  $(patsubst src/%.c,bridge/build/shared_%.o,$(BRIDGE_SHARED))
BRIDGE_HDRS    := $(wildcard bridge/*.h) src/sse_match.h src/sse_filter.h
BRIDGE_BINDIR  ?= /usr/local/bin

all: bridge/sse-bridge bridge/sse-bridge.8
install: install-bridge
clean: clean-bridge

bridge/build/%.o: bridge/%.c $(BRIDGE_HDRS)
	@mkdir -p bridge/build
	$(BRIDGE_CC) $(BRIDGE_CFLAGS) $(BRIDGE_WARN) $(BRIDGE_DEFS) -c -o $@ $<

# The files served from memory (bridge/static.c): one C byte array per file,
# written with od and sed, so no tool beyond coreutils is needed.
bridge/build/static_assets.inc: $(BRIDGE_ASSETS) bridge/bridge.mk
	@mkdir -p bridge/build
	@for f in $(BRIDGE_ASSETS); do \
	  printf 'static const unsigned char %s[] = {\n' "$$(printf '%s' "$$f" | tr -c 'A-Za-z0-9' _)"; \
	  od -An -v -tx1 "$$f" | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  printf '};\n'; \
	done >$@.tmp && mv $@.tmp $@

bridge/build/static.o: bridge/build/static_assets.inc

bridge/build/shared_%.o: src/%.c $(BRIDGE_HDRS)
	@mkdir -p bridge/build
	$(BRIDGE_CC) $(BRIDGE_CFLAGS) $(BRIDGE_WARN) $(BRIDGE_DEFS) -c -o $@ $<

bridge/sse-bridge: $(BRIDGE_OBJS)
	$(BRIDGE_CC) $(BRIDGE_CFLAGS) $(BRIDGE_LDFLAGS) -o $@ $(BRIDGE_OBJS) $(BRIDGE_LIBS)

# sse-bridge(8) comes from the settings table --help prints (cfg_man), so
# the two cannot drift.
bridge/sse-bridge.8: bridge/sse-bridge
	./bridge/sse-bridge --man >$@.tmp && mv $@.tmp $@

.PHONY: install-bridge clean-bridge bridge-asan
install-bridge: bridge/sse-bridge
	install -d '$(DESTDIR)$(BRIDGE_BINDIR)'
	install -m 755 bridge/sse-bridge '$(DESTDIR)$(BRIDGE_BINDIR)/sse-bridge'

clean-bridge:
	rm -rf bridge/build bridge/sse-bridge bridge/sse-bridge.8

BRIDGE_SAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
bridge-asan: bridge/build/asan/sse-bridge
bridge/build/asan/sse-bridge: $(BRIDGE_SRCS) $(BRIDGE_SHARED) $(BRIDGE_HDRS) bridge/build/static_assets.inc
	@mkdir -p bridge/build/asan
	$(BRIDGE_CC) $(BRIDGE_SAN) $(BRIDGE_WARN) $(BRIDGE_DEFS) -o $@ $(BRIDGE_SRCS) $(BRIDGE_SHARED) $(BRIDGE_LIBS)

# bridge-fi: the sanitizer build with the allocation fault injector
# (bridge/mem.h: SSE_BRIDGE_FAIL_EVERY=N, SIGUSR1 arms, SIGUSR2 disarms).
BRIDGE_FI_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup
.PHONY: bridge-fi
bridge-fi: bridge/build/fi/sse-bridge
bridge/build/fi/sse-bridge: $(BRIDGE_SRCS) $(BRIDGE_SHARED) $(BRIDGE_HDRS)
	@mkdir -p bridge/build/fi
	$(BRIDGE_CC) $(BRIDGE_SAN) -DBRIDGE_FAULT_INJECT $(BRIDGE_WARN) $(BRIDGE_DEFS) -o $@ $(BRIDGE_SRCS) $(BRIDGE_SHARED) $(BRIDGE_LIBS) $(BRIDGE_FI_WRAP)

# Test builds of the search_path defences (test/abuse, check "trojan"): each
# drops one layer of bridge/logread.c so the other is tested alone; "bare"
# drops both and shows the planted objects would be reached.
.PHONY: bridge-variants
bridge-variants: bridge/build/nopin/sse-bridge bridge/build/unqual/sse-bridge bridge/build/bare/sse-bridge
bridge/build/nopin/sse-bridge: BRIDGE_VARIANT := -DLOGREAD_NO_PIN
bridge/build/unqual/sse-bridge: BRIDGE_VARIANT := -DLOGREAD_UNQUALIFIED
bridge/build/bare/sse-bridge: BRIDGE_VARIANT := -DLOGREAD_NO_PIN -DLOGREAD_UNQUALIFIED
bridge/build/nopin/sse-bridge bridge/build/unqual/sse-bridge bridge/build/bare/sse-bridge: \
		$(BRIDGE_SRCS) $(BRIDGE_SHARED) $(BRIDGE_HDRS) bridge/build/static_assets.inc
	@mkdir -p $(@D)
	$(BRIDGE_CC) -O0 -g $(BRIDGE_WARN) $(BRIDGE_DEFS) $(BRIDGE_VARIANT) -o $@ $(BRIDGE_SRCS) $(BRIDGE_SHARED) $(BRIDGE_LIBS)
