#!/usr/bin/env bash
# Propagation benchmark (docs/benchmarks.md, "Propagation"): how long a member Service's
# new load balancer IP takes to be answered by DNS, for the embedded server
# (controller-manager --dns-listen), our skydns writer + kubefed dns-server, and
# ExternalDNS + CoreDNS, in one run on one local federation.
#
# The measuring code is the ignored test `propagation_benchmark` in
# tests/externaldns_interop.rs (it shares that binary's set-up), built in release mode.
# Knobs (environment): BENCH_CHANGES (30), BENCH_PAUSE_MS (6000), BENCH_TIMEOUT_S (150),
# BENCH_EXTERNALDNS_VERSION (v0.23.0), BENCH_EXTERNALDNS_ARGS ("--events"; "" for
# ExternalDNS's pure defaults, i.e. a sync every --interval=1m), BENCH_OUT (a file for the
# result table).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export KUBEFED_BIN_DIR=${KUBEFED_BIN_DIR:-${BIN:-$root/.cache/bin}}
for b in coredns "external-dns-${BENCH_EXTERNALDNS_VERSION:-v0.23.0}" kube-apiserver; do
  [[ -x $KUBEFED_BIN_DIR/$b ]] || { echo "$KUBEFED_BIN_DIR/$b missing: run make bins peers-dns peers-externaldns" >&2; exit 1; }
done
echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores; $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
${CARGO:-cargo} test --release --test externaldns_interop -- --ignored --exact propagation_benchmark --nocapture
