#!/usr/bin/env bash
# Builds kube-apiserver and kubectl from the Go module proxy into $BIN (default .cache/bin).
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules
# (k8s.io/api, k8s.io/client-go, ...) with local paths. A throwaway wrapper module that
# requires k8s.io/kubernetes and replaces each staging module with its published v0.Y.Z
# builds the commands. The wrapper lives in the cache, never in the repository.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.34.4}
root=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-$root/.cache}
BIN=${BIN:-$CACHE/bin}
stamp="$BIN/.k8s-$K8S_VERSION-2"
if [[ -x $BIN/kube-apiserver && -x $BIN/kubectl && -f $stamp ]]; then exit 0; fi
command -v go >/dev/null || { echo "go not found: install Go (https://go.dev/doc/install) or 'apt-get install golang'" >&2; exit 1; }
export GOPATH=${GOPATH:-$CACHE/go} GOCACHE=${GOCACHE:-$CACHE/go-build} GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$BIN"
work="$CACHE/k8s-wrapper-$K8S_VERSION"
mkdir -p "$work"
cd "$work"
staging_minor="v0.${K8S_VERSION#v1.}"
go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module kubefed.local/k8s-wrapper"
  echo
  echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging' "$modfile" \
    | awk -v v="$staging_minor" '{print "replace " $1 " => " $1 " " v}'
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod tidy >/dev/null 2>&1 || true
# Stamp the real version: kubectl's skew warning and clients' discovery read it.
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
go build -trimpath -ldflags "$ld" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "$ld" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl
touch "$stamp"
# Built once per machine (the stamp): the compile cache is GiBs nobody reads again.
go clean -cache
echo "built kube-apiserver and kubectl $K8S_VERSION into $BIN"
