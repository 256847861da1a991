#!/usr/bin/env bash
# Builds helm (v3) from the Go module proxy into $BIN (default .cache/bin), for the chart
# tests in tests/deploy.rs (helm lint, helm template, server-side dry-run of the output).
# helm is a test tool, never a dependency of the product.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.21.4}
root=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-$root/.cache}
BIN=${BIN:-$CACHE/bin}
stamp="$BIN/.helm-$HELM_VERSION-2"
if [[ -x $BIN/helm && -f $stamp ]]; then exit 0; fi
command -v go >/dev/null || { echo "go not found: install Go (https://go.dev/doc/install) or 'apt-get install golang'" >&2; exit 1; }
export GOPATH=${GOPATH:-$CACHE/go} GOCACHE=${GOCACHE:-$CACHE/go-build} GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$BIN"
# Stamp what helm's own Makefile stamps: its version, and the Kubernetes version that
# `helm template` / `helm lint` assume offline (1.<minor of its client-go>; without it
# they assume v1.20 and refuse charts with a newer kubeVersion).
go mod download "helm.sh/helm/v3@$HELM_VERSION"
modfile=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
k8s_minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$modfile")
[[ -n $k8s_minor ]] || { echo "cannot read helm $HELM_VERSION's client-go version from $modfile" >&2; exit 1; }
ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ld="$ld -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
GOBIN="$BIN" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
"$BIN/helm" version --short | grep -q "^$HELM_VERSION" || { echo "built helm does not report $HELM_VERSION" >&2; exit 1; }
touch "$stamp"
# Built once per machine (the stamp): the compile cache is GiBs nobody reads again.
go clean -cache
echo "built helm $HELM_VERSION into $BIN"
