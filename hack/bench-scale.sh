#!/usr/bin/env bash
# Runs the scale harness (test/scale) against the manager binary and writes its markdown report to
# SCALE_REPORT (default bin/scale-report.md); docs/scale.md explains it and holds one run's report.
# SCALE_CONNECTIONS defaults to 1000 here; see test/scale/scale_test.go for the other variables.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
assets=$(hack/controlplane.sh)
export SCALE_CONNECTIONS="${SCALE_CONNECTIONS:-1000}"
export SCALE_REPORT="${SCALE_REPORT:-$root/bin/scale-report.md}"
export SCALE_COMMAND="${SCALE_COMMAND:-make bench-scale SCALE_CONNECTIONS=$SCALE_CONNECTIONS${SCALE_HOSTS:+ SCALE_HOSTS=$SCALE_HOSTS}${SCALE_UNRELATED_SECRETS:+ SCALE_UNRELATED_SECRETS=$SCALE_UNRELATED_SECRETS}${SCALE_CYCLE_LIFETIME:+ SCALE_CYCLE_LIFETIME=$SCALE_CYCLE_LIFETIME}${SCALE_MANAGER_ARGS:+ SCALE_MANAGER_ARGS=\"$SCALE_MANAGER_ARGS\"}${SCALE_MANAGER_ENV:+ SCALE_MANAGER_ENV=\"$SCALE_MANAGER_ENV\"}${SCALE_MANAGER_MEMORY_LIMIT:+ SCALE_MANAGER_MEMORY_LIMIT=$SCALE_MANAGER_MEMORY_LIMIT}}"
KUBEBUILDER_ASSETS="$assets" exec go test -count=1 -timeout 0 -v -run '^TestScale$' ./test/scale/
