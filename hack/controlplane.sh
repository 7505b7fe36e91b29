#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver and etcd) that envtest, the
# e2e suite and `make demo` run against, from the Go modules pinned under
# hack/controlplane/, into a cache outside the clone. Prints the directory that
# holds the binaries (for KUBEBUILDER_ASSETS). A second run reuses the cache.
#
# No container engine and no release-page downloads exist on our build
# machines, so everything comes from the Go module proxy.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/kube-ldflags.sh
. "$root/hack/kube-ldflags.sh"
kube_version=v1.37.2
etcd_version=$(awk '/go.etcd.io\/etcd\/server\/v3/ {print $NF}' "$root/hack/controlplane/etcd/go.mod")
cache=${MAUTIC_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mautic-operator}
bin="$cache/controlplane/kube-$kube_version-etcd-$etcd_version"
mkdir -p "$bin"

log() { echo "controlplane: $*" >&2; }

if [ ! -x "$bin/kube-apiserver" ]; then
  log "building kube-apiserver $kube_version into $bin (about 6 minutes the first time)"
  ldflags=$(kube_ldflags "$kube_version")
  (cd "$root/hack/controlplane/kube-apiserver" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
fi

if [ ! -x "$bin/etcd" ]; then
  log "building etcd $etcd_version into $bin"
  (cd "$root/hack/controlplane/etcd" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp" "$bin/etcd"
fi

echo "$bin"
