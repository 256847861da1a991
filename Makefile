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
APT_PACKAGES := etcd-server protobuf-compiler bind9-dnsutils dnsperf
CARGO ?= cargo
DEMO_DIR ?= $(CACHE)/demo

.PHONY: all deps bins build test lint fmt crds demo demo-down clean-cache

all: build

# Debian packages (etcd, protoc for etcd-client, dig, dnsperf) and Rust components.
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

# Regenerates crds/ from the Rust types (tests/crds.rs fails when they drift).
crds:
	rm -f crds/*.yaml
	$(CARGO) run -q -- crds -o crds

test: deps bins lint
	$(CARGO) test --all-targets
	$(CARGO) test --doc

demo: deps bins
	$(CARGO) build -q
	@if [ -f $(DEMO_DIR)/state.json ]; then ./target/debug/kubefed demo down --state-dir $(DEMO_DIR) >/dev/null || true; fi
	./target/debug/kubefed demo up --state-dir $(DEMO_DIR)
	@for ctx in $$(./target/debug/kubefed demo contexts --state-dir $(DEMO_DIR)); do \
	  echo "== kubectl --context $$ctx get ns"; \
	  $(BIN)/kubectl --kubeconfig $(DEMO_DIR)/kubeconfig --context $$ctx get ns; \
	done
	@echo
	@echo "Not there yet: joining the members, the DNS controllers and the DNS server (issues #3-#6)."
	@echo "Use it:  export KUBECONFIG=$(DEMO_DIR)/kubeconfig; $(BIN)/kubectl --context cluster2 get ns"
	@echo "Stop it: make demo-down"

demo-down:
	./target/debug/kubefed demo down --state-dir $(DEMO_DIR)

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
	BIN=$(BIN) bash tests/bench/dns.sh
