# sse_bridge: PostgreSQL extension (PGXS) and the bridge daemon.
#
#   make          build the extension and bridge/sse-bridge
#   make install  install both
#   make test     install missing packages, build, run every test (throwaway cluster),
#                 then the other PostgreSQL versions in Debian chroots (test/versions)
#   make test PG=17   one PostgreSQL version alone
#   make run      run the demo: throwaway cluster, sample jobs, bridge on :8080
#   make bench    side-by-side benchmarks (not part of make test)
#   make bench-scale STREAMS=N   N concurrent streams and one broadcast (bench/scale.sh)
#   make deb      Debian packages into dist/ (the extension per PostgreSQL
#                 version, and the daemon with its systemd units)

.DEFAULT_GOAL := all

EXTENSION   = sse_bridge
MODULE_big  = sse_bridge
OBJS        = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA        = $(wildcard sse_bridge--*.sql)
REGRESS     = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=sse_bridge
ISOLATION   = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --load-extension=sse_bridge
PG_CFLAGS   = -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-declaration-after-statement
PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK  = -ljansson
EXTRA_CLEAN = regression.diffs regression.out results output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

.PHONY: test run bench bench-scale torture deb
test:
	@scripts/test.sh
run:
	@scripts/run.sh
bench:
	@bench/run.sh
# make bench-scale STREAMS=N: N concurrent streams and one broadcast (bench/scale.sh)
.PHONY: bench-scale
STREAMS ?= 1000000
bench-scale:
	@STREAMS=$(STREAMS) bench/scale.sh
torture:
	@test/torture/torture.sh $(DURATION)
deb:
	@scripts/deb.sh

ifneq ($(PGXS),)
include $(PGXS)
# SSE_EXTENSION_ONLY=1: the extension alone (the Debian build, debian/rules)
ifeq ($(SSE_EXTENSION_ONLY),)
-include bridge/bridge.mk
endif
# The regression tests use PREPARE TRANSACTION: say so before pg_regress
# fails on it (a server that cannot be reached is left to pg_regress).
installcheck: installcheck-settings
.PHONY: installcheck-settings
installcheck-settings:
	@v=$$('$(bindir)/psql' -XAtqd postgres -c 'SHOW max_prepared_transactions' 2>/dev/null); \
	if [ "$$v" = 0 ]; then \
	  echo "make installcheck: the server has max_prepared_transactions = 0; the tests need it > 0" >&2; \
	  echo "  set max_prepared_transactions = 10 in postgresql.conf and restart (make test does this)" >&2; \
	  exit 1; \
	fi
else
all install installcheck clean:
	@echo "PostgreSQL server development files are missing; run: scripts/deps.sh" >&2; exit 1
endif

# A test-only module for the pg_regress suite (sql/security.sql loads it by
# name): built in test/regress and installed into $libdir before the tests
# run, like PostgreSQL's src/test/modules; `make install` leaves it out.
ifneq ($(PGXS),)
installcheck: install-test-modules
clean: clean-test-modules
uninstall: uninstall-test-modules
.PHONY: install-test-modules clean-test-modules uninstall-test-modules
install-test-modules:
	$(MAKE) -C test/regress PG_CONFIG='$(PG_CONFIG)' install
clean-test-modules:
	$(MAKE) -C test/regress PG_CONFIG='$(PG_CONFIG)' clean
uninstall-test-modules:
	$(MAKE) -C test/regress PG_CONFIG='$(PG_CONFIG)' uninstall
endif
