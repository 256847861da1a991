#!/usr/bin/env bash
# Builds KubeFed v0.6.1's controller-manager (the last release with the multi-cluster DNS
# controllers) from the Go module proxy into $BIN, for the side-by-side scale benchmark
# (make bench-scale, docs/benchmarks.md). A test peer, never part of the product.
#
# It needs Go 1.16 (GOTOOLCHAIN fetches it from the proxy) and a wrapper module that
# replaces vbom.ml/util, whose vanity host is gone, by its GitHub copy.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-$root/.cache}
BIN=${BIN:-$CACHE/bin}
out="$BIN/kubefed-go-controller-manager"
stamp="$BIN/.kubefed-go-v0.6.1"
if [[ -x $out && -f $stamp ]]; then exit 0; fi
command -v go >/dev/null || { echo "go not found: apt-get install golang" >&2; exit 1; }
export GOTOOLCHAIN=go1.16.15 GOFLAGS=-mod=mod GOPATH=${GOPATH:-$CACHE/go} GOCACHE="$CACHE/go-build-kubefed-go"
work="$CACHE/kubefed-go"
mkdir -p "$work" "$BIN"
cd "$work"
cat > go.mod <<'EOF'
module kubefed.local/kubefed-go

go 1.16

require sigs.k8s.io/kubefed v0.6.1

replace vbom.ml/util => github.com/fvbommel/util v0.0.0-20160121211510-db5cfe13f5cc
EOF
cat > tools.go <<'EOF'
//go:build tools
// +build tools

package tools

import _ "sigs.k8s.io/kubefed/cmd/controller-manager"
EOF
go mod tidy >/dev/null 2>&1 || true
go build -o "$out" sigs.k8s.io/kubefed/cmd/controller-manager
touch "$stamp"
go clean -cache
echo "built KubeFed v0.6.1 controller-manager into $out"
