#!/usr/bin/env bash
# Builds the node components of the test bed (hack/node/up.sh) into a cache outside the clone,
# from the Go modules pinned under hack/node/: the kubelet, kube-proxy, kube-controller-manager
# and kube-scheduler of hack/node/kubernetes (one `go build`, sharing the compiled packages of
# hack/controlplane's kube-apiserver), and containerd, ctr and containerd-shim-runc-v2 of
# hack/node/containerd. Prints the directory that holds the binaries. A second run reuses the
# cache. Heavy the first time (about 10 minutes on 2 cores): callers run it under the lock.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=hack/kube-ldflags.sh
. "$root/hack/kube-ldflags.sh"
kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$root/hack/node/kubernetes/go.mod")
containerd_version=$(awk '$1 == "require" && $2 == "github.com/containerd/containerd/v2" {print $3}' "$root/hack/node/containerd/go.mod")
cache=${MAUTIC_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mautic-operator}
bin="$cache/node/kube-$kube_version-containerd-$containerd_version"
mkdir -p "$bin"

log() { echo "node build: $*" >&2; }

kube_bins=(kubelet kube-proxy kube-controller-manager kube-scheduler)
missing=0
for b in "${kube_bins[@]}"; do [ -x "$bin/$b" ] || missing=1; done
if [ "$missing" = 1 ]; then
  log "building ${kube_bins[*]} $kube_version into $bin (about 6 minutes the first time)"
  ldflags=$(kube_ldflags "$kube_version")
  tmp="$bin/kube.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  pkgs=()
  for b in "${kube_bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$root/hack/node/kubernetes" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  for b in "${kube_bins[@]}"; do mv "$tmp/$b" "$bin/$b"; done
  rmdir "$tmp"
fi

# The static, cgo-free build of containerd's release process; the shim also drops gRPC (it
# speaks ttrpc only).
tags="urfave_cli_no_docs osusergo netgo static_build no_btrfs"
cldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$containerd_version"
if [ ! -x "$bin/containerd" ] || [ ! -x "$bin/ctr" ]; then
  log "building containerd and ctr $containerd_version into $bin"
  tmp="$bin/containerd.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$root/hack/node/containerd" &&
    CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$cldflags" -o "$tmp/" \
      github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr)
  mv "$tmp/containerd" "$tmp/ctr" "$bin/"
  rmdir "$tmp"
fi
if [ ! -x "$bin/containerd-shim-runc-v2" ]; then
  log "building containerd-shim-runc-v2 $containerd_version into $bin"
  (cd "$root/hack/node/containerd" &&
    CGO_ENABLED=0 go build -trimpath -tags "$tags no_grpc" -ldflags "$cldflags" -o "$bin/containerd-shim-runc-v2.tmp" \
      github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2)
  mv "$bin/containerd-shim-runc-v2.tmp" "$bin/containerd-shim-runc-v2"
fi

echo "$bin"
