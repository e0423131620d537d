# Atoll developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= auto

.PHONY: all deps build demo bench test fmt-check fmt clippy doc nextest nix-check clean

all: build

## Install the Debian packages and tools the build needs (when missing).
deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --workspace --locked

## A local swarm on embedded defaults: add a file on one node, fetch it on others.
demo: deps
	@scripts/demo.sh

## Benchmarks (release builds; prints figures and ratios).
bench: deps
	$(CARGO) bench -p atoll-swarm --bench swarm
	$(CARGO) bench -p atoll-swarm --bench payment
	$(CARGO) bench -p atoll-relay --bench admission

## Everything CI checks: formatting, lints, docs, every test, the Nix files.
test: deps fmt-check clippy doc nextest nix-check
	@echo "make test: all checks passed"

fmt-check:
	$(CARGO) fmt --all --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

# The scenario tests run the workspace's binaries: build them first.
nextest:
	$(CARGO) build --workspace --bins --locked
	$(CARGO) nextest run --workspace --locked --profile ci

nix-check:
	@scripts/nix-check.sh

clean:
	$(CARGO) clean
