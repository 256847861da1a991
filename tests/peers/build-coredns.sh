#!/usr/bin/env bash
# Builds CoreDNS from the Go module proxy into $BIN (default .cache/bin). Its etcd plugin
# (the skydns reader we are compatible with) is compiled in by default. CoreDNS is a test
# peer for the differential test and the DNS benchmark, never a dependency.
set -euo pipefail
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4}
root=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-$root/.cache}
BIN=${BIN:-$CACHE/bin}
stamp="$BIN/.coredns-$COREDNS_VERSION"
if [[ -x $BIN/coredns && -f $stamp ]]; then exit 0; fi
command -v go >/dev/null || { echo "go not found: install Go (https://go.dev/doc/install) or 'apt-get install golang'" >&2; exit 1; }
export GOPATH=${GOPATH:-$CACHE/go} GOCACHE=${GOCACHE:-$CACHE/go-build} GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$BIN"
GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
"$BIN/coredns" -plugins | grep -qxE '[[:space:]]*(dns\.)?etcd' || { echo "coredns $COREDNS_VERSION was built without the etcd plugin" >&2; exit 1; }
touch "$stamp"
# Built once per machine (the stamp): the compile cache is GiBs nobody reads again.
go clean -cache
echo "built coredns $COREDNS_VERSION into $BIN"
