# The two commands of the README's quick start, plus their building blocks.
.PHONY: demo test bench bench-revocation setup install fmt

demo: setup
	scripts/demo.sh

test: setup
	scripts/test.sh

bench: setup
	scripts/bench.sh

bench-revocation: setup
	scripts/bench-revocation.sh

setup:
	scripts/setup.sh

install: setup
	scripts/install.sh

fmt:
	cargo fmt --all
