#!/usr/bin/env bash
# Runs the benchmarks as docs/benchmarks.md reports them. No benchmark needs the local control plane
# (a package starts it only for the tests that ask for one, see internal/testenv); KUBEBUILDER_ASSETS
# is set as `make test` sets it (hack/controlplane.sh builds it on first use). Usage: hack/bench.sh [go test flags and packages], default ./...;
# BENCH_COUNT sets -count (default 3). Packages run one at a time (-p 1), so that two benchmark
# binaries never share the CPUs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
assets=$(hack/controlplane.sh)
if [ $# -eq 0 ]; then
  set -- ./...
fi
KUBEBUILDER_ASSETS="$assets" exec go test -run '^$' -p 1 -bench . -benchmem -count="${BENCH_COUNT:-3}" "$@"
