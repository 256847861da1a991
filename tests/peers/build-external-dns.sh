#!/usr/bin/env bash
# Builds ExternalDNS from the Go module proxy into $BIN (default .cache/bin) as
# external-dns-<version>, for the interop tests (tests/externaldns_interop.rs) and the
# propagation benchmark (tests/bench/propagation.sh). A test peer, never a dependency.
#
# Two versions, because its CRD source changed: up to v0.20 it reads DNSEndpoints of any
# group (--crd-source-apiversion/--crd-source-kind); from v0.21 only
# externaldns.k8s.io/v1alpha1 (external-dns#6414).
#
# How (docs/interop.md): the module's source is downloaded from the proxy
# (`go mod download`; a module whose go line is newer than the local Go gets that
# toolchain from the proxy, golang.org/toolchain), copied into the cache and narrowed to
# the DNS providers in $EXTERNALDNS_KEEP_PROVIDERS by tests/peers/trim-external-dns (the
# provider selection loses the other providers' entries, so their cloud SDKs are neither
# downloaded nor compiled: a fraction of the disk and time of `go install`). The CRD
# source, the registry, the planner and the coredns provider are ExternalDNS's code
# unchanged. Modules the proxy refuses are pinned to a downloadable version per release
# (replacements below; v0.23.0 imports an openshift/api pseudo-version whose zip answers
# 403 here). The copy lives in the cache, never in the repository.
set -euo pipefail
VERSIONS=${EXTERNALDNS_VERSIONS:-"v0.20.0 v0.23.0"}
EXTERNALDNS_KEEP_PROVIDERS=${EXTERNALDNS_KEEP_PROVIDERS:-coredns,inmemory,webhook}
root=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-$root/.cache}
BIN=${BIN:-$CACHE/bin}
command -v go >/dev/null || { echo "go not found: install Go (https://go.dev/doc/install) or 'apt-get install golang'" >&2; exit 1; }
export GOPATH=${GOPATH:-$CACHE/go} GOCACHE=${GOCACHE:-$CACHE/go-build} GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$BIN"

# Modules a release needs that the proxy will not serve, as old=new@version.
replacements() {
  case $1 in
    v0.23.0) echo "github.com/openshift/api=github.com/openshift/api@v0.0.0-20260709102940-580f1c1ba691" ;;
  esac
}

build_one() {
  local v=$1 out="$BIN/external-dns-$1" stamp="$BIN/.external-dns-$1"
  if [[ -x $out && -f $stamp ]]; then return 0; fi
  local dir modfile goline have
  # The first download fetches go.mod even when the local Go is too old for the module.
  modfile=$( (go mod download -json "sigs.k8s.io/external-dns@$v" || true) | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f $modfile ]] || { echo "cannot download sigs.k8s.io/external-dns@$v from the Go module proxy" >&2; exit 1; }
  goline=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$modfile")
  have=$(go env GOVERSION); have=${have#go}
  if [[ $(printf '%s\n' "$goline" "$have" | sort -V | head -1) != "$goline" ]]; then
    export GOTOOLCHAIN="go$goline"
    echo "sigs.k8s.io/external-dns@$v needs Go $goline (local $have): using GOTOOLCHAIN=$GOTOOLCHAIN"
  fi
  dir=$(go mod download -json "sigs.k8s.io/external-dns@$v" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  local ld="-s -w -X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=$v"
  local src="$CACHE/external-dns-src-$v"
  rm -rf "$src"; cp -r "$dir" "$src"; chmod -R u+w "$src"
  GOFLAGS= go run "$root/tests/peers/trim-external-dns/main.go" -keep "$EXTERNALDNS_KEEP_PROVIDERS" "$src"
  (
    cd "$src"
    for r in $(replacements "$v"); do go mod edit -replace "$r"; done
    go build -trimpath -ldflags "$ld" -o "$out" .
  )
  rm -rf "$src"
  # ExternalDNS's own DNSEndpoint CRD, for reference (tests/fixtures holds the copy used).
  if [[ -f $dir/config/crd/standard/dnsendpoints.externaldns.k8s.io.yaml ]]; then
    install -m 644 "$dir/config/crd/standard/dnsendpoints.externaldns.k8s.io.yaml" "$BIN/dnsendpoints.externaldns.k8s.io-$v.yaml"
  fi
  "$out" --version >/dev/null 2>&1 || { echo "$out does not run" >&2; exit 1; }
  touch "$stamp"
  echo "built external-dns $v into $out"
}

# A subshell each: GOTOOLCHAIN is per version.
for v in $VERSIONS; do (build_one "$v"); done
# Built once per machine (the stamps): the compile cache is GiBs nobody reads again.
go clean -cache
