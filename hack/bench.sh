#!/usr/bin/env bash
# Runs the benchmarks as docs/benchmarks.md reports them. No benchmark needs the local control plane,
# but the TestMain of test/e2e and test/chaos exits without KUBEBUILDER_ASSETS, so it is set here
# (hack/controlplane.sh builds it on first use). Usage: hack/bench.sh [go test flags and packages], default ./...;
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
