# make demo  : a local federation of real API servers (see README.md)
# make test  : fmt, clippy and the whole suite against real etcd and kube-apiservers
#
# Both install what they need: Debian packages, kube-apiserver/kubectl built from the Go
# module proxy into .cache/bin (once per machine), and the Rust components.

SHELL := /bin/bash
CACHE := $(CURDIR)/.cache
BIN := $(CACHE)/bin
export KUBEFED_BIN_DIR := $(BIN)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := etcd-server protobuf-compiler bind9-dnsutils dnsperf umoci skopeo tinyproxy bind9 bind9-utils knot nsd
CARGO ?= cargo
DEMO_DIR ?= $(CACHE)/demo

.PHONY: all deps bins build test lint fmt crds image demo demo-up demo-down clean-cache

all: build

# Debian packages (etcd, protoc for etcd-client, dig, dnsperf; BIND, Knot and NSD as
# zone-transfer secondaries; tinyproxy for proxyURL; umoci/skopeo for the image) and
# Rust components.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v rustup >/dev/null && { rustup component list --installed | grep -q rustfmt || rustup component add rustfmt; \
	  rustup component list --installed | grep -q clippy || rustup component add clippy; } || true

# kube-apiserver and kubectl, built once from the Go module proxy (tests/peers/build-k8s.sh).
bins: deps
	@BIN=$(BIN) CACHE=$(CACHE) bash tests/peers/build-k8s.sh

build: deps
	$(CARGO) build

fmt:
	$(CARGO) fmt --all

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -q

# Regenerates crds/ from the Rust types and copies them into the chart (tests/crds.rs
# and tests/deploy.rs fail when they drift).
crds:
	rm -f crds/*.yaml deploy/helm/kubefed/crds/*.yaml
	$(CARGO) run -q -- crds --output-dir crds
	cp crds/*.yaml deploy/helm/kubefed/crds/

# The container image as an OCI archive, with no daemon and no registry (umoci):
# target/image/kubefed.tar, tagged with the crate version (docs/deploy.md).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image: deps
	$(CARGO) build --release --bin kubefed
	bash deploy/image/build-oci.sh target/release/kubefed target/image/kubefed $(VERSION)

test: deps bins peers-dns peers-helm peers-externaldns lint fuzz-short
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# Seed 004's multi-cluster DNS workflow on a local federation; stays up until Ctrl-C.
# `kubefed demo --once` checks the answers and exits 0/1 (tests/demo_once.rs).
demo: deps bins
	$(CARGO) build -q
	./target/debug/kubefed demo --state-dir $(DEMO_DIR)

# A bare federation (no controllers) left running for a shell session.
demo-up: deps bins
	$(CARGO) build -q
	./target/debug/kubefed demo up --state-dir $(DEMO_DIR)-up

demo-down:
	./target/debug/kubefed demo down --state-dir $(DEMO_DIR)-up

clean-cache:
	rm -rf $(CACHE)

# --- DNS server (issue 5) ---
.PHONY: peers-dns bench-dns

# CoreDNS (its etcd plugin is built in) from the Go module proxy into .cache/bin, for the
# differential test (tests/dns_server_coredns.rs) and the DNS benchmark.
peers-dns: deps
	@BIN=$(BIN) CACHE=$(CACHE) bash tests/peers/build-coredns.sh

# DNS benchmark (docs/benchmarks.md): kubefed vs CoreDNS etcd (with/without cache) vs Knot.
bench-dns: deps peers-dns
	@dpkg -s knot >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq knot >/dev/null; }
	$(CARGO) build --release
	BIN=$(BIN) BENCH_NAMES=$${BENCH_NAMES:-10000} BENCH_QPS=$${BENCH_QPS:-20000} BENCH_ROUNDS=$${BENCH_ROUNDS:-3} \
	  bash tests/bench/dns.sh

# --- deploy (helm) ---
.PHONY: peers-helm

# helm v3 from the Go module proxy into .cache/bin, for the chart tests (tests/deploy.rs).
peers-helm: deps
	@BIN=$(BIN) CACHE=$(CACHE) bash tests/peers/build-helm.sh

# --- interop (issue 6) ---
.PHONY: peers-externaldns bench-propagation

# ExternalDNS v0.20.0 and v0.23.0 from the Go module proxy into .cache/bin, for
# tests/externaldns_interop.rs and the propagation benchmark (docs/interop.md).
peers-externaldns: deps
	@BIN=$(BIN) CACHE=$(CACHE) bash tests/peers/build-external-dns.sh

# Propagation benchmark (docs/benchmarks.md, "Propagation"): embedded DNS vs skydns writer
# + kubefed dns-server vs ExternalDNS + CoreDNS, one run.
bench-propagation: deps bins peers-dns peers-externaldns
	BIN=$(BIN) bash tests/bench/propagation.sh

# --- scale (issue 16) ---
.PHONY: peers-kubefed-go bench-scale

# KubeFed v0.6.1's controller-manager (Go 1.16 from the module proxy) into .cache/bin.
peers-kubefed-go: deps
	@BIN=$(BIN) CACHE=$(CACHE) bash tests/peers/build-kubefed-go.sh

# Scale benchmark (docs/benchmarks.md, "Scale"): ours and KubeFed v0.6.1, side by side.
# Knobs: BENCH_MEMBERS, BENCH_SERVICES (a list), BENCH_FEDS, BENCH_CONTROLLERS,
# BENCH_STEADY_S, BENCH_CHANGES, BENCH_CSV (see tests/scale.rs).
bench-scale: deps bins peers-kubefed-go
	GOPATH=$(CACHE)/go $(CARGO) test --release --test scale -- --ignored --nocapture

# --- DNS hardening (issue 11) ---
.PHONY: fuzz-tools fuzz-short fuzz-campaign bench-dns-shapes

FUZZ_TARGETS := dns_answer dns_xfr skydns_value skydns_key
FUZZ_SECONDS ?= 20
FUZZ_RUNS ?= 10000000
FUZZ_CAMPAIGN_SECONDS ?= 7200

# cargo-fuzz and the nightly toolchain it needs (fuzz/ is its own workspace).
fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@$(CARGO) +nightly fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

# Each fuzz target for FUZZ_SECONDS (CI); fails on the first crash. The short run builds
# unoptimised and without AddressSanitizer (FUZZ_SHORT_FLAGS): an optimised ASAN build of
# the whole kube stack costs CI about 20 minutes, and the panics these targets look for in
# safe Rust need neither. The campaign keeps cargo-fuzz's optimised ASAN build.
FUZZ_SHORT_FLAGS ?= --dev --sanitizer none
fuzz-short: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  (cd fuzz && $(CARGO) +nightly fuzz run $(FUZZ_SHORT_FLAGS) $$t -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

# The documented campaign (docs/reliability.md, "Fuzzing"): each target in turn, up to
# FUZZ_RUNS executions or FUZZ_CAMPAIGN_SECONDS, one at a time. Optimised; without
# AddressSanitizer by default (FUZZ_CAMPAIGN_FLAGS=  for cargo-fuzz's ASAN build): the
# targets are safe Rust, where what can go wrong is a panic, and dns_answer ran at about
# 1 000 executions/s with ASAN against 36 000 without (10 million runs: 3 hours or 5 minutes).
FUZZ_CAMPAIGN_FLAGS ?= --sanitizer none
fuzz-campaign: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t: $(FUZZ_RUNS) runs"; \
	  (cd fuzz && $(CARGO) +nightly fuzz run $(FUZZ_CAMPAIGN_FLAGS) $$t -- -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_CAMPAIGN_SECONDS) -print_final_stats=1) || exit 1; \
	done

# CPU per query of the expensive question shapes next to the ordinary mix, at 10 000
# and 200 000 names (docs/benchmarks.md, "Question shapes"). Not run in CI.
bench-dns-shapes: deps
	$(CARGO) test --release --test dns_shapes -- --ignored --nocapture
