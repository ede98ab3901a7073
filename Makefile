# The two commands of the README's quick start, plus their building blocks.
.PHONY: demo test bench profile bench-revocation bench-shared-cache bench-stats bench-providers bench-invalidation bench-signin setup install fmt package deb fuzz soak

demo: setup
	scripts/demo.sh

# make test: PostgreSQL 15, 16 and 18; make test PG=16: one of them.
PG ?= 15 16 18
test: setup
	scripts/test-all.sh $(PG)

bench: setup
	scripts/bench.sh
	scripts/bench-stats.sh
	scripts/bench-providers.sh
	scripts/bench-invalidation.sh
	PG=18 scripts/bench-signin.sh

# make profile: where a pooled transaction's time goes (section 4c's workload under perf), by
# library and by pg_jwt function, per transaction. Findings, not targets; needs perf.
profile: setup
	scripts/profile.sh

bench-revocation: setup
	scripts/bench-revocation.sh

bench-shared-cache: setup
	scripts/bench-shared-cache.sh

# make bench-stats: a verification's cost with the statistics counters; good tokens during a
# flood of bad ones (writes its section of BENCHMARKS.md).
bench-stats: setup
	scripts/bench-stats.sh

# make bench-providers: 1 against 1,000 providers: per row, a verification found in the shared
# cache, a verification with its signature checked; the time to fetch 900 key sets.
bench-providers: setup
	scripts/bench-providers.sh

# make bench-invalidation: 20,000 users at random with and without one revocation per second.
bench-invalidation: setup
	scripts/bench-invalidation.sh

# make bench-signin: PostgreSQL 18 sign-in with a token against trust (connections per second).
bench-signin: setup
	PG=18 scripts/bench-signin.sh

# make fuzz: every fuzz target of the core for 60 s (FUZZ_SECONDS=600 make fuzz for longer).
fuzz: setup
	scripts/fuzz.sh

# make soak: 10 minutes of pooled tenant transactions under rotation, cancels and terminated
# backends, with memory sampled (SOAK_SECONDS=3600 make soak for longer). Not part of make test.
SOAK_SECONDS ?= 600
soak: setup
	SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh

setup:
	scripts/setup.sh

# make install PG_CONFIG=/usr/lib/postgresql/16/bin/pg_config: into an existing PostgreSQL 15-18
# (default: the system's 15). Needs only the Rust toolchain, clang and the server headers; none
# of the test tooling (scripts/install-deps.sh says what is missing).
install:
	PG_CONFIG="$(PG_CONFIG)" scripts/install-deps.sh
	PG_CONFIG="$(PG_CONFIG)" scripts/install.sh

fmt:
	cargo fmt --all

# make deb: a Debian package per PostgreSQL version in dist/ (make deb PG=15: one).
deb: setup
	scripts/deb.sh $(PG)

# make package: an installable tarball per PostgreSQL version in dist/ (make package PG=16: one).
package: setup
	scripts/package.sh $(PG)
